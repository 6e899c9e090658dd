//! Which models a provider's batch API takes (half price, within 24 hours), as read from the
//! provider's own pages, each with its source and the day it was read (also in
//! `docs/big-books.md`). A model the table does not name is not sent in a batch unless its
//! profile says `batch = true`.

use super::{Ids, Source, covers};
use crate::vocab::ProviderKind;

/// One fact: these models of this kind are taken by its batch API.
struct Taken {
    kind: ProviderKind,
    ids: Ids,
    source: Source,
}

/// The models known to be taken (retired ones stay listed: a retired model fails before
/// anything is sent, with its own reason).
const TAKEN: &[Taken] = &[
    Taken {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-image-2"]),
        source: Source {
            url: "https://developers.openai.com/api/docs/models/gpt-image-2",
            read: "2026-12-06",
        },
    },
    Taken {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&[
            "gpt-image-1",
            "gpt-image-1-mini",
            "gpt-image-1.5",
            "chatgpt-image-latest",
        ]),
        source: Source {
            url: "https://help.openai.com/en/articles/9197833-batch-api-faq",
            read: "2026-12-06",
        },
    },
    Taken {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-3.1-flash-lite-image", "gemini-2.5-flash-image"]),
        source: Source {
            url: "https://ai.google.dev/gemini-api/docs/batch-api",
            read: "2026-12-06",
        },
    },
];

/// Whether this version can send a kind's images in batches.
pub(crate) fn has_batch_api(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::OpenAi | ProviderKind::Gemini)
}

/// Whether `model` of `kind` may go in a batch: `Ok` with where that was read (or that the
/// profile says so), else why not, in words that say what to do.
pub(crate) fn batchable(
    kind: ProviderKind,
    model: &str,
    asserted: Option<bool>,
) -> Result<&'static str, String> {
    if !has_batch_api(kind) {
        return Err(format!(
            "the `{}` kind has no batch API this version sends to (only `openai` and `gemini` do)",
            kind.as_str()
        ));
    }
    match asserted {
        Some(false) => return Err("its profile says `batch = false`".to_owned()),
        Some(true) => return Ok("the profile's `batch = true`"),
        None => {}
    }
    TAKEN
        .iter()
        .find(|t| t.kind == kind && covers(&t.ids, model))
        .map(|t| t.source.url)
        .ok_or_else(|| {
            format!(
                "this version does not know whether {}'s batch API takes `{model}`; if it does, set `batch = true` in the profile",
                kind.spec().vendor
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_profile_decide_what_goes_in_a_batch() {
        use ProviderKind::*;
        assert!(batchable(OpenAi, "gpt-image-2", None).is_ok());
        assert!(batchable(OpenAi, "gpt-image-1.5-2025-12-16", None).is_ok());
        assert!(batchable(Gemini, "gemini-3.1-flash-lite-image", None).is_ok());
        let unknown = batchable(OpenAi, "gpt-image-2.6-sunburst", None).unwrap_err();
        assert!(unknown.contains("batch = true"), "{unknown}");
        assert!(batchable(OpenAi, "gpt-image-2.6-sunburst", Some(true)).is_ok());
        assert!(batchable(OpenAi, "gpt-image-2", Some(false)).is_err());
        let kind = batchable(Stability, "core", Some(true)).unwrap_err();
        assert!(kind.contains("no batch API"), "{kind}");
    }
}
