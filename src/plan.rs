//! From a directive and the book's settings to a job: the exact request a provider receives and
//! the cache key that names its image.
//!
//! The cache key is blake3 over a canonical, length-prefixed encoding of [`CACHE_VERSION`] and
//! every input that changes the image: provider kind, model, the prompt as sent (after prefix,
//! style and suffix), negative prompt, size, quality, seed and the profile's image settings
//! (steps, sampler, background, …). It never covers API keys, base URLs, timeouts, prices or
//! the rest of `book.toml`, so `mdbook serve` (which changes the config it passes) and teammates
//! with other local servers or output settings share images. No I/O here.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{Config, ProviderKind, Size};
use crate::directive::{Directive, fold_whitespace};
use crate::models::{self, Day};

/// The version of the cache key's encoding and of the cache's stored format.
///
/// Bump it when any hashed input, the encoding, or the layout of records and masters changes:
/// every image is then generated again, so do it only on purpose. `tests::golden_cache_key`
/// fails whenever the hash changes, as a reminder.
pub(crate) const CACHE_VERSION: u32 = 2;

/// Everything a provider needs to generate one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Which implementation generates it.
    pub(crate) kind: ProviderKind,
    /// The profile's name, for messages only (not hashed: two profiles of the same kind and
    /// model share images).
    pub(crate) profile: String,
    pub(crate) model: String,
    /// The prompt exactly as sent.
    pub(crate) prompt: String,
    pub(crate) negative: Option<String>,
    pub(crate) size: Size,
    pub(crate) quality: Option<String>,
    pub(crate) seed: Option<u64>,
    /// The profile's settings that change the image, by their `book.toml` names.
    pub(crate) params: BTreeMap<String, String>,
}

/// The requests tried for one directive, in order: its profile, then each fallback profile.
pub(crate) type Chain = Vec<(CacheKey, Request)>;

/// A content address: the blake3 hash of a request's canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CacheKey(pub(crate) [u8; 32]);

impl CacheKey {
    /// The key as 64 lower-case hex digits.
    pub(crate) fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Option<CacheKey> {
        blake3::Hash::from_hex(text)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

/// Builds the request for a directive with its own profile, then with each fallback profile,
/// or says why it cannot be built.
pub(crate) fn chain(directive: &Directive, config: &Config) -> Result<Chain, String> {
    let first = directive
        .attrs
        .provider
        .as_deref()
        .unwrap_or(&config.default_profile);
    let mut names = vec![first];
    names.extend(
        config
            .fallback
            .iter()
            .map(String::as_str)
            .filter(|name| *name != first),
    );
    names
        .into_iter()
        .enumerate()
        .map(|(link, name)| {
            let request = request_with(directive, config, name, link == 0)?;
            Ok((cache_key(&request), request))
        })
        .collect()
}

/// Builds the request for a directive with its own profile.
#[cfg(test)]
pub(crate) fn request(directive: &Directive, config: &Config) -> Result<Request, String> {
    chain(directive, config).map(|mut chain| chain.swap_remove(0).1)
}

/// Builds the request for a directive sent to the profile `profile_name`; `own` when that is
/// the directive's own profile rather than a fallback.
fn request_with(
    directive: &Directive,
    config: &Config,
    profile_name: &str,
    own: bool,
) -> Result<Request, String> {
    let attrs = &directive.attrs;
    let profile = config.profile(profile_name)?;

    let style = match &attrs.style {
        None => None,
        Some(style) => Some(config.styles.get(style).ok_or_else(|| {
            if config.styles.is_empty() {
                format!(
                    "unknown style `{style}`; define it in `[preprocessor.imagegen.styles]`, e.g. {style} = \"flat vector illustration\""
                )
            } else {
                format!(
                    "unknown style `{style}`; the book defines {}",
                    crate::config::list(config.styles.keys())
                )
            }
        })?),
    };

    let mut prompt = directive.prompt.clone();
    if let Some(style) = style {
        prompt = format!("{prompt}, {}", fold_whitespace(&style.prompt));
    }
    if let Some(prefix) = &config.prompt_prefix {
        prompt = format!("{prefix} {prompt}");
    }
    if let Some(suffix) = &config.prompt_suffix {
        if suffix.starts_with([',', '.', ';', ':']) {
            prompt.push_str(suffix);
        } else {
            prompt = format!("{prompt} {suffix}");
        }
    }

    let negatives: Vec<String> = [
        attrs.negative.clone(),
        style.and_then(|s| s.negative.as_deref().map(fold_whitespace)),
        config.negative_prompt.clone(),
    ]
    .into_iter()
    .flatten()
    .filter(|n| !n.is_empty())
    .collect();
    let negative = (!negatives.is_empty()).then(|| negatives.join(", "));

    let mut params = profile.params.clone();
    if !profile.extra.is_empty() {
        params.insert(
            "extra".to_owned(),
            canonical_json(&serde_json::Value::Object(profile.extra.clone())),
        );
    }

    // Only the kinds that send a quality have it in their key, so that `quality="high"` on a
    // directive for a provider that has no such setting never pays for an identical image.
    let quality = match profile.kind {
        ProviderKind::Gemini | ProviderKind::Stability | ProviderKind::Automatic1111 => None,
        _ => attrs.quality.clone().or_else(|| profile.quality.clone()),
    };

    // A directive's `model` names a model of its own provider, not of the fallbacks.
    let model = match &attrs.model {
        Some(model) if own => model.clone(),
        _ => profile.model.clone(),
    };
    crate::models::check_options(
        profile.kind,
        &model,
        quality.as_deref(),
        params.get("background").map(String::as_str),
        params.get("output-format").map(String::as_str),
    )
    .map_err(|(_, message)| format!("profile `{profile_name}`: {message}"))?;

    Ok(Request {
        kind: profile.kind,
        profile: profile_name.to_owned(),
        model,
        prompt,
        negative,
        size: attrs.size.unwrap_or(config.default_size),
        quality,
        seed: attrs.seed,
        params,
    })
}

/// Why a chain must not be sent on `day`: one of its links names a model its provider has
/// retired. Checked only for images that must be generated, so an image a retired model made
/// keeps serving from the cache.
pub(crate) fn retired(chain: &Chain, config: &Config, day: Day) -> Option<String> {
    chain.iter().find_map(|(_, request)| {
        models::lifecycle(request.kind, &request.model, day)
            .refusal(&request.model, &model_setting(request, config))
    })
}

/// Warns about each deprecated model of a chain, once per build (`warned` holds what was said).
pub(crate) fn warn_deprecations(
    chain: &Chain,
    config: &Config,
    day: Day,
    warned: &mut std::collections::BTreeSet<String>,
) {
    for warning in deprecations(chain, config, day) {
        if warned.insert(warning.clone()) {
            tracing::warn!("imagegen: {warning}");
        }
    }
}

/// The warnings for a chain's links whose model is deprecated on `day`.
pub(crate) fn deprecations(chain: &Chain, config: &Config, day: Day) -> Vec<String> {
    chain
        .iter()
        .filter_map(|(_, request)| {
            models::lifecycle(request.kind, &request.model, day)
                .warning(&request.model, &model_setting(request, config))
        })
        .collect()
}

/// Where a request's model was chosen, as the fix for a retired model says it.
fn model_setting(request: &Request, config: &Config) -> String {
    match config.profiles.get(&request.profile) {
        Some(profile) if profile.model == request.model => format!(
            "set `model` in `[preprocessor.imagegen.providers.{}]`",
            request.profile
        ),
        _ => "change the directive's `model` attribute".to_owned(),
    }
}

/// JSON with every object's keys sorted, so that the same value always hashes the same.
fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<_> = map.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The cache key of a request.
pub(crate) fn cache_key(request: &Request) -> CacheKey {
    let mut hasher = blake3::Hasher::new();
    let mut field = |name: &str, value: &[u8]| {
        hasher.update(&(name.len() as u32).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(&(value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    let seed = request.seed.map(|s| s.to_string());
    field("cache-version", &CACHE_VERSION.to_le_bytes());
    field("provider", request.kind.as_str().as_bytes());
    field("model", request.model.as_bytes());
    field("prompt", request.prompt.as_bytes());
    field("negative", optional(&request.negative));
    field("size", request.size.to_string().as_bytes());
    field("quality", optional(&request.quality));
    field("seed", optional(&seed));
    field("params", &(request.params.len() as u64).to_le_bytes());
    for (name, value) in &request.params {
        field(name, value.as_bytes());
    }
    CacheKey(*hasher.finalize().as_bytes())
}

/// An absent value hashes as a single 0xFF byte, which no UTF-8 text can equal.
fn optional(value: &Option<String>) -> &[u8] {
    value.as_deref().map_or(&[0xFF], str::as_bytes)
}

#[cfg(test)]
mod tests;
