//! The text record kept beside each master: what was asked, what came back, what it cost.
//!
//! One small JSON file per generated image, at a path no other image can take, so that two
//! branches that each add images merge without a conflict. Records are never edited after they
//! are written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::CACHE_VERSION;

/// One generated image, as committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Record {
    /// The cache format version the record was written under.
    pub(crate) format: u32,
    /// The cache key, 64 hex digits.
    pub(crate) key: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// The prompt exactly as sent.
    pub(crate) prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) negative: Option<String>,
    /// The size asked for, `WIDTHxHEIGHT`.
    pub(crate) size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
    /// The profile's settings that changed the image (steps, sampler, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) params: BTreeMap<String, String>,
    /// The seed the provider says it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) provider_seed: Option<u64>,
    /// The prompt as the provider rewrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revised_prompt: Option<String>,
    /// The exact model version that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model_version: Option<String>,
    /// The provider's id for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    /// The size as the provider was asked for it, when that differs from `size`: fitted to
    /// the model's rules (`1536x1024`), or an aspect ratio and tier (`16:9 2K`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sent_size: Option<String>,
    /// How many requests it took (retries included).
    #[serde(default = "one")]
    pub(crate) attempts: u32,
    /// The blake3 hash of the master's bytes, 64 hex digits.
    pub(crate) master: String,
    pub(crate) media_type: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bytes: u64,
    pub(crate) generation_ms: u64,
    pub(crate) cost_usd: f64,
    /// When the image was generated, RFC 3339 in UTC.
    pub(crate) created_at: String,
    /// The reference images it was made from, in order, as the author named them (for an
    /// edit: the image it edits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) references: Vec<Reference>,
    /// The mask of an edit, as the author named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mask: Option<Reference>,
    /// Which candidate of a directive's `variants` it is, from 1, for all but the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) candidate: Option<u32>,
    /// Which new attempt it is at a figure a judge scored below `min-score`, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry: Option<u32>,
    /// For a dark twin: the hash of the light image's master it is the twin of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dark_of: Option<String>,
    /// The provider's batch it was made in (`mdbook-imagegen batch`); its `cost-usd` is the
    /// batch price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) batch: Option<String>,
}

/// A reference image as a record names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Reference {
    /// As written: a path, or `#id`.
    pub(crate) label: String,
    /// The blake3 hash of its bytes.
    pub(crate) hash: String,
}

fn one() -> u32 {
    1
}

/// The largest record file read; a record with the longest prompt an API takes is well under it.
pub(crate) const MAX_RECORD_BYTES: u64 = crate::request::MAX_RECORD_BYTES as u64;

/// The longest text field a record may hold (a prompt, a revised prompt).
const MAX_TEXT_CHARS: usize = crate::request::MAX_PROMPT_CHARS;

impl Record {
    /// Its cache key (a record [`Record::parse`] read always has one).
    pub(crate) fn cache_key(&self) -> Option<super::key::CacheKey> {
        super::key::CacheKey::from_hex(&self.key)
    }

    /// Reads a record under the build's rules: JSON of this cache format whose key is 64 hex
    /// digits and starts its file's name, naming a master by its 64-hex hash and a known image
    /// type, of sane dimensions and bounded text. Every reader (builds, the remote cache, the
    /// team commands, `verify`) applies exactly these, so a crafted record either passes all of
    /// them or none; the reason says what is wrong.
    pub(crate) fn parse(bytes: &[u8], file_name: &str) -> Result<Record, String> {
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(format!("{} bytes, more than a record holds", bytes.len()));
        }
        let record: Record =
            serde_json::from_slice(bytes).map_err(|e| format!("not a record: {e}"))?;
        if record.format != CACHE_VERSION {
            return Err(format!("written by cache format {}", record.format));
        }
        if !super::is_hash(&record.key) {
            return Err("its key is not 64 hex digits".into());
        }
        if !super::is_hash(&record.master) {
            return Err("its master is not named by a 64-hex hash".into());
        }
        if !crate::vocab::is_master_type(&record.media_type) {
            return Err(format!(
                "its master's type `{}` is not png, jpeg or webp",
                crate::outside::for_terminal(&record.media_type)
            ));
        }
        if !is_name_of(file_name, &record.key, &record.master) {
            return Err(
                "its file name does not start with its key and its master's hash (moved, renamed or crafted)".into(),
            );
        }
        let side = 1..=crate::provider::MAX_SIDE;
        if !side.contains(&record.width) || !side.contains(&record.height) {
            return Err(format!(
                "its master's size {}x{} is out of range",
                record.width, record.height
            ));
        }
        let texts = [
            Some(&record.prompt),
            record.negative.as_ref(),
            record.revised_prompt.as_ref(),
            Some(&record.model),
            Some(&record.provider),
            Some(&record.size),
        ];
        if texts
            .into_iter()
            .flatten()
            .any(|t| t.chars().count() > MAX_TEXT_CHARS)
        {
            return Err("a text field is longer than any provider takes".into());
        }
        if !(record.cost_usd.is_finite() && record.cost_usd >= 0.0) {
            return Err("its cost is not an amount".into());
        }
        record.check_made_from()?;
        Ok(record)
    }

    /// What it was made from: references, mask, candidate, new attempt, light image.
    fn check_made_from(&self) -> Result<(), String> {
        let record = self;
        let bad = |r: &Reference| !super::is_hash(&r.hash) || r.label.chars().count() > 1024;
        if record.references.len() > crate::directive::MAX_REFERENCES
            || record.references.iter().any(bad)
        {
            return Err("its references are not a list of labels and hashes".into());
        }
        if record.mask.as_ref().is_some_and(bad) {
            return Err("its mask is not a label and a hash".into());
        }
        if record
            .candidate
            .is_some_and(|c| !(2..=crate::directive::MAX_VARIANTS).contains(&c))
        {
            return Err(format!(
                "its candidate is not a number from 2 to {}",
                crate::directive::MAX_VARIANTS
            ));
        }
        if record
            .retry
            .is_some_and(|r| !(1..=crate::config::MAX_RETRIES).contains(&r))
        {
            return Err("its retry is not a number from 1 to 5".into());
        }
        if record
            .dark_of
            .as_deref()
            .is_some_and(|h| !super::is_hash(h))
        {
            return Err("its dark-of is not a master's 64-hex hash".into());
        }
        if record.batch.as_deref().is_some_and(|id| {
            !crate::outside::is_clean(id, crate::outside::ID_CHARS)
                || !id.strip_prefix("batches/").map_or_else(
                    || crate::batch::state::plain_id(id),
                    crate::batch::state::plain_id,
                )
        }) {
            return Err("its batch is not a batch id".into());
        }
        Ok(())
    }

    /// The record as pretty JSON with a final newline, one field per line for readable diffs.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a record always serialises");
        text.push(b'\n');
        text
    }
}

/// Whether `name` is the file name of a record of `key` whose master is `master`:
/// `{key}-{first 16 digits of master}-{8 hex digits}.json`.
pub(crate) fn is_name_of(name: &str, key: &str, master: &str) -> bool {
    is_record_name(name) && name[..64] == *key && master.get(..16) == Some(&name[65..81])
}

/// Whether `name` has the shape of a record's file name (see [`is_name_of`]).
pub(crate) fn is_record_name(name: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    name.is_ascii()
        && name.len() == 64 + 1 + 16 + 1 + 8 + 5
        && name.ends_with(".json")
        && name.as_bytes()[64] == b'-'
        && name.as_bytes()[81] == b'-'
        && hex(&name[..64])
        && hex(&name[65..81])
        && hex(&name[82..90])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "7f3a000000000000000000000000000000000000000000000000000000000001";
    const MASTER: &str = "ab12000000000000000000000000000000000000000000000000000000000002";

    fn record() -> serde_json::Value {
        serde_json::json!({
            "format": CACHE_VERSION, "key": KEY, "provider": "openai", "model": "gpt-image-2",
            "prompt": "A lighthouse", "size": "1024x1024", "master": MASTER,
            "media-type": "image/png", "width": 1024, "height": 1024, "bytes": 10,
            "generation-ms": 1, "cost-usd": 0.05, "created-at": "2026-11-29T10:00:00.000Z"
        })
    }

    fn name() -> String {
        format!("{KEY}-{}-0badc0de.json", &MASTER[..16])
    }

    #[test]
    fn a_record_passes_only_every_rule() {
        let bytes = |v: &serde_json::Value| serde_json::to_vec(v).unwrap();
        assert!(Record::parse(&bytes(&record()), &name()).is_ok());
        let broken = [
            ("master", serde_json::json!("../../../../etc/passwd")),
            (
                "master",
                serde_json::json!(
                    "AB12000000000000000000000000000000000000000000000000000000000002"
                ),
            ),
            ("key", serde_json::json!("7f3a")),
            ("media-type", serde_json::json!("text/html")),
            ("width", serde_json::json!(0)),
            ("height", serde_json::json!(100_000)),
            ("format", serde_json::json!(1)),
            ("prompt", serde_json::json!("x".repeat(70_000))),
            ("cost-usd", serde_json::json!(-1.0)),
            ("dark-of", serde_json::json!("../light.png")),
        ];
        for (field, value) in broken {
            let mut record = record();
            record[field] = value;
            assert!(Record::parse(&bytes(&record), &name()).is_err(), "{field}");
        }
        // A dark twin names its light master by its hash.
        let mut twin = record();
        twin["dark-of"] = serde_json::json!(MASTER);
        assert_eq!(
            Record::parse(&bytes(&twin), &name())
                .unwrap()
                .dark_of
                .as_deref(),
            Some(MASTER)
        );
        // An image made in a batch names the batch by the provider's id.
        let mut batched = record();
        batched["batch"] = serde_json::json!("batch_69a1");
        assert!(Record::parse(&bytes(&batched), &name()).is_ok());
        batched["batch"] = serde_json::json!("../x");
        assert!(Record::parse(&bytes(&batched), &name()).is_err());
        // Its name must be its own: under another key, or another master, it is refused.
        let other = format!("{}-{}-0badc0de.json", MASTER, &MASTER[..16]);
        assert!(Record::parse(&bytes(&record()), &other).is_err());
        assert!(Record::parse(&bytes(&record()), "x.json").is_err());
        assert!(Record::parse(&vec![b' '; 300 << 10], &name()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any bytes under any name: refused or accepted, never a panic; and what is accepted
        /// names its master by a hash, so no path built from it leaves the cache.
        #[test]
        fn any_record_file_is_read_or_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            file in "\\PC{0,100}",
        ) {
            if let Ok(record) = Record::parse(&bytes, &file) {
                prop_assert!(super::super::is_hash(&record.master));
            }
        }

        #[test]
        fn mutated_records_are_read_or_refused(field in 0usize..14, text in "\\PC{0,30}") {
            let mut value = record();
            let key = value.as_object().unwrap().keys().nth(field).unwrap().clone();
            value[&key] = serde_json::Value::from(text);
            let bytes = serde_json::to_vec(&value).unwrap();
            if let Ok(record) = Record::parse(&bytes, &name()) {
                prop_assert!(super::super::is_hash(&record.master));
                prop_assert_eq!(record.key.as_str(), KEY);
            }
        }
    }
}
