//! The text record kept beside each master: what was asked, what came back, what it cost.
//!
//! One small JSON file per generated image, at a path no other image can take, so that two
//! branches that each add images merge without a conflict. Records are never edited after they
//! are written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
}

fn one() -> u32 {
    1
}

impl Record {
    /// The record as pretty JSON with a final newline, one field per line for readable diffs.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a record always serialises");
        text.push(b'\n');
        text
    }
}
