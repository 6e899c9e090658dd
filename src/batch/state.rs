//! A submitted batch as committed: `.imagegen/batches/<kind>-<id>.json`.
//!
//! One file per batch, written once when the provider has accepted it and deleted when it has
//! been collected, so two branches (or two CI runs) that each submit merge without a conflict,
//! and a teammate who pulls can collect. Read as hostile: a pull request can add one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::cache::key::CacheKey;
use crate::models::batch::has_batch_api;
use crate::vocab::ProviderKind;

/// The format of a batch file.
pub(crate) const FORMAT: u32 = 1;

/// The largest batch file read: 50,000 lines of up to about 500 bytes (a 300-character place),
/// with room, so that every file this version writes reads back.
pub(crate) const MAX_STATE_BYTES: u64 = 32 << 20;

/// The most lines a batch file may hold (OpenAI's and Gemini's per-batch limit).
pub(crate) const MAX_LINES: usize = 50_000;

/// The longest place (`src/guide/intro.md:12`) a line may name.
const MAX_PLACE_CHARS: usize = 300;

/// A batch a provider accepted, and the image each of its lines makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct State {
    pub(crate) format: u32,
    /// The book's profile that submitted it (whose key and `base-url` collect it).
    pub(crate) profile: String,
    /// The profile's kind when submitted.
    pub(crate) provider: String,
    pub(crate) model: String,
    /// The provider's id of the batch (`batch_…`, `batches/…`).
    pub(crate) id: String,
    /// What its lines call (`/v1/images/generations`, `/v1/images/edits`, `batchGenerateContent`).
    pub(crate) endpoint: String,
    /// RFC 3339, UTC.
    pub(crate) submitted_at: String,
    /// When the provider gives up on what is unfinished, RFC 3339, UTC.
    pub(crate) expires_at: String,
    pub(crate) lines: Vec<Line>,
}

/// One line of a batch: one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Line {
    /// The image's cache key, 64 hex digits: the line's `custom_id` (OpenAI) or `key` (Gemini).
    pub(crate) key: String,
    /// The directive that asked for it, as `plan` shows it (`src/guide/intro.md:12`).
    pub(crate) place: String,
    /// Whether it replaces a cached image (`regenerate --batch`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) again: bool,
    /// What the line is expected to cost at the batch price, in US dollars.
    pub(crate) price_usd: f64,
}

impl State {
    /// The file it is kept in: the kind and the id, with `/` as `-`.
    pub(crate) fn file_name(&self) -> String {
        file_name(&self.provider, &self.id)
    }

    /// Every line's key.
    pub(crate) fn keys(&self) -> impl Iterator<Item = CacheKey> + '_ {
        self.lines.iter().filter_map(|l| CacheKey::from_hex(&l.key))
    }

    /// The file as written: pretty JSON, a newline at the end.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a state always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Reads a batch file under the rules every reader applies: this format, a known kind that
    /// has a batch API, an id of the provider's alphabet that names the file, lines of distinct
    /// 64-hex keys with clean places and sane prices, times in RFC 3339. The reason says what
    /// is wrong. Whether its profile exists is the caller's to check (it knows the book).
    pub(crate) fn parse(bytes: &[u8], file_name: &str) -> Result<State, String> {
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(format!(
                "{} bytes, more than a batch file holds",
                bytes.len()
            ));
        }
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a batch file: {}", short(&e.to_string())))?;
        if state.format != FORMAT {
            return Err(format!(
                "format {} is not this version's ({FORMAT})",
                state.format
            ));
        }
        let kind = ProviderKind::parse(&state.provider)
            .filter(|k| has_batch_api(*k))
            .ok_or_else(|| format!("`provider` = {:?} has no batch API", short(&state.provider)))?;
        if !valid_id(kind, &state.id) {
            return Err(format!("`id` = {:?} is not a batch id", short(&state.id)));
        }
        if state.file_name() != file_name {
            return Err(format!(
                "it names batch {:?}, which belongs in `{}`",
                short(&state.id),
                state.file_name()
            ));
        }
        for (field, text) in [
            ("profile", &state.profile),
            ("model", &state.model),
            ("endpoint", &state.endpoint),
        ] {
            if text.is_empty() || !crate::outside::is_clean(text, crate::outside::ID_CHARS) {
                return Err(format!("`{field}` is not a clean name"));
            }
        }
        for (field, text) in [
            ("submitted-at", &state.submitted_at),
            ("expires-at", &state.expires_at),
        ] {
            humantime::parse_rfc3339(text)
                .map_err(|_| format!("`{field}` = {:?} is not an RFC 3339 time", short(text)))?;
        }
        if state.lines.is_empty() || state.lines.len() > MAX_LINES {
            return Err(format!(
                "{} lines; a batch holds 1 to {MAX_LINES}",
                state.lines.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for line in &state.lines {
            let key = CacheKey::from_hex(&line.key)
                .filter(|k| k.to_hex() == line.key)
                .ok_or_else(|| format!("line key {:?} is not 64 hex digits", short(&line.key)))?;
            if !seen.insert(key) {
                return Err(format!("key {} is in two lines", line.key));
            }
            if !crate::outside::is_clean(&line.place, MAX_PLACE_CHARS) {
                return Err(format!("the place of key {} is not clean text", line.key));
            }
            if !(line.price_usd.is_finite() && (0.0..=1000.0).contains(&line.price_usd)) {
                return Err(format!("the price of key {} is not sane", line.key));
            }
        }
        Ok(state)
    }
}

/// The file name of batch `id` of `kind`.
pub(crate) fn file_name(kind: &str, id: &str) -> String {
    format!("{kind}-{}.json", id.replace('/', "-"))
}

/// Whether `id` is a batch id of `kind`'s alphabet: OpenAI's `batch_…`, Gemini's `batches/…`
/// (each at most 128 characters of letters, digits, `_` and `-`). It goes into URLs, so nothing
/// else passes.
pub(crate) fn valid_id(kind: ProviderKind, id: &str) -> bool {
    let name = match kind {
        ProviderKind::OpenAi => id,
        ProviderKind::Gemini => match id.strip_prefix("batches/") {
            Some(name) => name,
            None => return false,
        },
        _ => return false,
    };
    plain_id(name)
}

/// Letters, digits, `_` and `-`, 1 to 128 of them: an id that may go into a URL's path.
pub(crate) fn plain_id(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Outside text, short, for a message about it.
fn short(text: &str) -> String {
    crate::outside::clean(text, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            format: FORMAT,
            profile: "openai".into(),
            provider: "openai".into(),
            model: "gpt-image-1.5".into(),
            id: "batch_abc123".into(),
            endpoint: "/v1/images/generations".into(),
            submitted_at: "2026-12-06T10:00:00Z".into(),
            expires_at: "2026-12-07T10:00:00Z".into(),
            lines: vec![Line {
                key: "ab".repeat(32),
                place: "src/intro.md:3".into(),
                again: false,
                price_usd: 0.0265,
            }],
        }
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let state = state();
        assert_eq!(state.file_name(), "openai-batch_abc123.json");
        let bytes = state.to_bytes();
        assert_eq!(State::parse(&bytes, &state.file_name()), Ok(state.clone()));
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("again"), "{text}");
        let mut gemini = state;
        gemini.provider = "gemini".into();
        gemini.id = "batches/x1-y2".into();
        assert_eq!(gemini.file_name(), "gemini-batches-x1-y2.json");
        assert!(State::parse(&gemini.to_bytes(), &gemini.file_name()).is_ok());
    }

    #[test]
    fn crafted_states_are_refused_with_a_reason() {
        let bad = |change: &dyn Fn(&mut State), why: &str| {
            let mut s = state();
            change(&mut s);
            let name = file_name(&s.provider, &s.id);
            let err = State::parse(&s.to_bytes(), &name).unwrap_err();
            assert!(err.contains(why), "{err}");
        };
        bad(&|s| s.id = "../../etc".into(), "not a batch id");
        bad(&|s| s.id = "batch?x=1".into(), "not a batch id");
        bad(&|s| s.provider = "stability".into(), "no batch API");
        bad(&|s| s.format = 9, "format 9");
        bad(&|s| s.lines[0].key = "zz".into(), "64 hex");
        bad(&|s| s.lines.push(s.lines[0].clone()), "two lines");
        bad(&|s| s.lines[0].place = "a\nb".into(), "not clean");
        bad(&|s| s.lines[0].price_usd = -1.0, "not sane");
        bad(&|s| s.lines.clear(), "0 lines");
        bad(&|s| s.expires_at = "tomorrow".into(), "RFC 3339");
        bad(&|s| s.profile = String::new(), "`profile`");
        let s = state();
        assert!(
            State::parse(&s.to_bytes(), "openai-other.json")
                .unwrap_err()
                .contains("belongs in")
        );
        assert!(
            State::parse(b"{", "x.json")
                .unwrap_err()
                .contains("not a batch file")
        );
        let unknown = String::from_utf8(s.to_bytes())
            .unwrap()
            .replace("\"format\"", "\"extra\": 1, \"format\"");
        assert!(State::parse(unknown.as_bytes(), &s.file_name()).is_err());
    }
}
