//! The models this version knows, one row each, for `mdbook-imagegen models`: the current
//! models of each kind and every model with an announced shutdown, with its state on a given
//! day, what it takes, and where and when each fact was read. Pure: the day comes in as a value.

use serde::Serialize;

use super::{Day, Ids, Lifecycle, NOTICES, Source, lifecycle, openai_model};
use crate::vocab::{Negative, ProviderKind, QUALITIES};

/// One model as `mdbook-imagegen models` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownModel {
    /// The provider kind, as `book.toml` names it.
    pub kind: &'static str,
    /// The model's id (`imagen-…` for every model of a family).
    pub model: String,
    /// `current`, `deprecated` or `retired`, on the day asked about.
    pub state: &'static str,
    /// The announced shutdown (`YYYY-MM-DD`), if any.
    pub shutdown: Option<String>,
    /// Whether `shutdown` is only the earliest day the provider may turn it off.
    pub earliest: bool,
    /// What the provider names as its replacement, if it is going.
    pub replacement: Option<&'static str>,
    /// What a request to it may carry, in a line.
    pub takes: String,
    /// Where the facts were read.
    pub source: &'static str,
    /// The day they were read.
    pub read: &'static str,
}

/// A model with no announced shutdown, and where it was read.
struct Current {
    kind: ProviderKind,
    ids: &'static [&'static str],
    source: Source,
}

const OPENAI_MODELS: Source = Source {
    url: "https://developers.openai.com/api/docs/models",
    read: "2026-12-05",
};
const GEMINI_MODELS: Source = Source {
    url: "https://ai.google.dev/gemini-api/docs/models",
    read: "2026-12-05",
};
const BFL_MODELS: Source = Source {
    url: "https://docs.bfl.ai",
    read: "2026-12-05",
};

/// The current models of each kind (the kinds whose models the user names freely —
/// `openai-compatible`, `automatic1111`, `command`, `openrouter` — have none here).
const CURRENT: &[Current] = &[
    Current {
        kind: ProviderKind::OpenAi,
        ids: &[
            "gpt-image-2",
            "gpt-image-2.5-flare",
            "gpt-image-2.5-sunburst",
            "gpt-image-2.6-flare",
            "gpt-image-2.6-sunburst",
            "gpt-6-luna",
        ],
        source: OPENAI_MODELS,
    },
    Current {
        kind: ProviderKind::Gemini,
        ids: &[
            "gemini-3.1-flash-image",
            "gemini-3-pro-image",
            "gemini-3.5-flash-lite",
        ],
        source: GEMINI_MODELS,
    },
    Current {
        kind: ProviderKind::Stability,
        ids: &[
            "core",
            "ultra",
            "sd3.5-large",
            "sd3.5-large-turbo",
            "sd3.5-medium",
        ],
        source: Source {
            url: "https://platform.stability.ai/docs/api-reference",
            read: "2026-12-05",
        },
    },
    Current {
        kind: ProviderKind::Bfl,
        ids: &[
            "flux-2-pro",
            "flux-2-max",
            "flux-2-flex",
            "flux-2-klein-4b",
            "flux-2-klein-9b",
            "flux-3-image",
            "flux-pro-1.1",
            "flux-pro-1.1-ultra",
            "flux-kontext-pro",
            "flux-kontext-max",
            "flux-pro",
            "flux-dev",
        ],
        source: BFL_MODELS,
    },
    Current {
        kind: ProviderKind::Recraft,
        ids: &[
            "recraftv4_1",
            "recraftv4_1_vector",
            "recraftv4_1_pro",
            "recraftv4",
            "recraftv4_vector",
            "recraftv3",
            "recraftv3_vector",
            "recraftv2",
        ],
        source: Source {
            url: "https://www.recraft.ai/docs/api-reference/getting-started",
            read: "2026-11-29",
        },
    },
    Current {
        kind: ProviderKind::Ideogram,
        ids: &["ideogram-v3"],
        source: Source {
            url: "https://developer.ideogram.ai/api-reference/api-reference/generate-v3",
            read: "2026-12-05",
        },
    },
    Current {
        kind: ProviderKind::Ideogram,
        ids: &["ideogram-vector-1"],
        source: Source {
            url: "https://developer.ideogram.ai/api-reference/vectors",
            read: "2026-12-05",
        },
    },
    Current {
        kind: ProviderKind::Xai,
        ids: &["grok-imagine-image-2.0", "grok-imagine-image"],
        source: Source {
            url: "https://docs.x.ai/developers/model-capabilities/images/generation",
            read: "2026-12-05",
        },
    },
];

/// Every model this version knows, in the order of the kinds, its current models first, with
/// its state on `today`.
pub(crate) fn known_models(today: Day) -> Vec<KnownModel> {
    let mut rows = Vec::new();
    for kind in ProviderKind::ALL {
        let current = CURRENT.iter().filter(|c| c.kind == *kind);
        for entry in current {
            for id in entry.ids {
                rows.push(row(*kind, id, entry.source, today));
            }
        }
        for notice in NOTICES.iter().filter(|n| n.kind == *kind) {
            let ids: Vec<String> = match notice.ids {
                Ids::Exact(ids) => ids.iter().map(|id| (*id).to_owned()).collect(),
                Ids::Prefix(prefix) => vec![format!("{prefix}…")],
            };
            for id in ids {
                rows.push(row(*kind, &id, notice.source, today));
            }
        }
    }
    rows
}

fn row(kind: ProviderKind, model: &str, source: Source, today: Day) -> KnownModel {
    // A family's row (`imagen-…`) stands for its members.
    let probe = model.trim_end_matches('…');
    let (state, shutdown, earliest, replacement) = match lifecycle(kind, probe, today) {
        Lifecycle::Current => ("current", None, false, None),
        Lifecycle::Deprecated {
            shutdown,
            earliest,
            replacement,
            ..
        } => (
            "deprecated",
            Some(shutdown.to_string()),
            earliest,
            Some(replacement),
        ),
        Lifecycle::Retired {
            on, replacement, ..
        } => ("retired", Some(on.to_string()), false, Some(replacement)),
    };
    KnownModel {
        kind: kind.as_str(),
        model: model.to_owned(),
        state,
        shutdown,
        earliest,
        replacement,
        takes: takes(kind, probe),
        source: source.url,
        read: source.read,
    }
}

/// What a request to `model` may carry, in a line: its sizes, qualities, options, references,
/// images per request and the longest prompt.
pub(crate) fn takes(kind: ProviderKind, model: &str) -> String {
    if reads_only(kind, model) {
        return "an image to describe or judge (`[describe]`, `[judge]`); draws nothing".into();
    }
    let spec = kind.spec();
    let mut parts: Vec<String> = vec![sizes(kind, model)];
    match kind {
        ProviderKind::OpenAi => {
            let accepts = openai_model(model);
            let qualities: Vec<&str> = QUALITIES
                .iter()
                .copied()
                .filter(|q| accepts.extended_quality || !["xhigh", "max"].contains(q))
                .collect();
            parts.push(format!("quality {}", qualities.join("/")));
            for (has, what) in [
                (accepts.transparent, "transparent background"),
                (accepts.complexity, "complexity"),
                (accepts.svg, "SVG output"),
                (!accepts.input_fidelity.is_empty(), "input-fidelity"),
            ] {
                if has {
                    parts.push(what.to_owned());
                }
            }
            parts.push(format!("prompt ≤ {} chars", accepts.max_prompt_chars));
        }
        ProviderKind::Xai if super::xai_is_v2(model) => {
            parts.push("quality low/medium".into());
        }
        ProviderKind::Ideogram if model.contains("vector") => {
            parts.push("quality low/medium/high; SVG output".into());
        }
        ProviderKind::Ideogram => parts.push("quality low/medium/high (speed)".into()),
        ProviderKind::Recraft if model.ends_with("_vector") => parts.push("SVG output".into()),
        _ => {}
    }
    match kind.reference_limit(model) {
        Some(limit) => parts.push(format!("{limit} reference image{}", plural(limit))),
        None => parts.push("no reference images".into()),
    }
    if kind.takes_n(model) {
        parts.push(format!(
            "up to {} images a request",
            crate::directive::MAX_VARIANTS
        ));
    }
    parts.push(
        match (spec.negative)(model) {
            Negative::Field => "negative prompt",
            Negative::Folded => "negative prompt in the prompt",
            Negative::Ignored => "no negative prompt",
        }
        .to_owned(),
    );
    if spec.seed {
        parts.push("seed".into());
    }
    parts.join("; ")
}

/// Whether a model of a kind is one that reads images rather than draws them (the describers
/// and judges among the lifecycle notices).
fn reads_only(kind: ProviderKind, model: &str) -> bool {
    match kind {
        ProviderKind::OpenAi => !["gpt-image", "chatgpt-image", "dall-e"]
            .iter()
            .any(|family| model.starts_with(family)),
        ProviderKind::Gemini => !model.contains("-image") && !model.starts_with("imagen"),
        _ => false,
    }
}

/// The sizes a model is asked for, in words.
fn sizes(kind: ProviderKind, model: &str) -> String {
    match kind {
        ProviderKind::OpenAi => match openai_model(model).sizes {
            super::SizeRules::Listed(_) => "1024x1024, 1536x1024 or 1024x1536".into(),
            super::SizeRules::Flexible(_) => {
                "any size on a 16-pixel grid (≤ 3840, ≤ 3:1, 0.66–8.3 MP) or auto".into()
            }
        },
        ProviderKind::Bfl if model.starts_with("flux-3") => "aspect ratio + resolution tier".into(),
        ProviderKind::Bfl if model.contains("ultra") || model.contains("kontext") => {
            "aspect ratio".into()
        }
        ProviderKind::Bfl if ["flux-pro-1.1", "flux-pro", "flux-dev"].contains(&model) => {
            "width and height on a 32-pixel grid, 256–1440".into()
        }
        ProviderKind::Bfl => "width and height on a 16-pixel grid, ≤ 4 MP".into(),
        ProviderKind::Gemini if model.starts_with("gemini-2") => "aspect ratio".into(),
        ProviderKind::Gemini => "aspect ratio + 1K/2K/4K".into(),
        ProviderKind::Xai => "aspect ratio + 1k/2k".into(),
        ProviderKind::Stability | ProviderKind::Ideogram => "aspect ratio".into(),
        ProviderKind::Recraft => "its listed sizes".into(),
        _ => "the size asked for".into(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_source_a_date_and_a_state() {
        let rows = known_models(Day::parse("2026-12-05").unwrap());
        assert!(rows.len() > 40, "{}", rows.len());
        for row in &rows {
            assert!(row.source.starts_with("https://"), "{row:?}");
            assert!(Day::parse(row.read).is_some(), "{row:?}");
            assert!(!row.takes.is_empty());
            assert_eq!(row.state == "current", row.shutdown.is_none(), "{row:?}");
        }
        let find = |model: &str| rows.iter().find(|r| r.model == model).unwrap();
        assert_eq!(find("gpt-image-1.5").state, "retired");
        assert_eq!(find("gpt-image-2.6-flare").state, "current");
        assert!(find("gpt-image-2.6-flare").takes.contains("SVG output"));
        assert!(!find("gpt-image-2").takes.contains("xhigh"));
        assert!(find("gpt-6-luna").takes.contains("draws nothing"));
        assert_eq!(find("grok-imagine-image-quality").state, "retired");
        assert_eq!(
            find("grok-imagine-image-quality").replacement,
            Some("grok-imagine-image-2.0")
        );
        assert_eq!(find("imagen-…").state, "retired");
        assert_eq!(find("gemini-2.5-flash-image").state, "deprecated");
        assert!(find("gemini-2.5-flash-image").earliest);
        // A model's rows agree with the lifecycle a build acts on.
        assert_eq!(find("gpt-5-mini").state, "deprecated");
        assert_eq!(
            known_models(Day::parse("2026-12-12").unwrap())
                .iter()
                .find(|r| r.model == "gpt-5-mini")
                .unwrap()
                .state,
            "retired"
        );
    }
}
