//! Provider profiles: `[preprocessor.imagegen.providers.NAME]` tables, each checked against its
//! kind and filled in with the kind's defaults, plus the built-in `placeholder` profile; `provider`
//! and `fallback` must name one of them. Also `Config`'s look-ups of a profile and of the key
//! variables.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::limits::duration;
use super::{Config, Invalid, RawConfig};
use crate::error::Result;
use crate::vocab::{BaseUrl, Key, ProviderKind, list};

/// The built-in provider profile that needs no key and no network.
pub(crate) const PLACEHOLDER: &str = "placeholder";

/// One `[preprocessor.imagegen.providers.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profile {
    /// Which provider implementation serves this profile.
    pub(crate) kind: ProviderKind,
    /// The model asked for.
    pub(crate) model: String,
    /// Where the provider's API lives, without a trailing `/`.
    pub(crate) base_url: String,
    /// The environment variables that may hold the key, in order; empty when none is needed.
    pub(crate) api_key_env: Vec<String>,
    /// Whether a request without a key is refused before it is sent.
    pub(crate) key_required: bool,
    /// The quality used when a directive asks for none.
    pub(crate) quality: Option<String>,
    /// Settings sent to the provider that change the image (background, steps, sampler, …),
    /// by their `book.toml` names. They are part of the cache key.
    pub(crate) params: BTreeMap<String, String>,
    /// Extra JSON fields merged into the request body as they are.
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
    /// The program and its arguments, for the `command` kind.
    pub(crate) command: Vec<String>,
    /// The price of one image, over the built-in table.
    pub(crate) price: Option<f64>,
    /// A timeout for this profile, over the book's.
    pub(crate) timeout: Option<Duration>,
    /// `batch = true`: its model goes in batches though the table does not know it does;
    /// `false`: never in a batch. Unset: as the table says (`models::batch`).
    pub(crate) batch: Option<bool>,
}

impl Profile {
    /// A profile of a kind with every setting at its default.
    pub(crate) fn new(kind: ProviderKind, model: &str) -> Profile {
        Profile {
            kind,
            model: model.to_owned(),
            base_url: match kind.spec().base_url {
                BaseUrl::Default(url) => url.to_owned(),
                BaseUrl::None | BaseUrl::Given => String::new(),
            },
            api_key_env: kind
                .spec()
                .key
                .vars()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            key_required: matches!(kind.spec().key, Key::Required(_)),
            quality: None,
            params: BTreeMap::new(),
            extra: serde_json::Map::new(),
            command: Vec::new(),
            price: None,
            timeout: None,
            batch: None,
        }
    }
}

impl Profile {
    /// The kind whose request rules the profile follows: its own, but an `openai-compatible`
    /// profile pointed at OpenAI's own API follows OpenAI's (what its models take, what they
    /// refuse), since that is the server that reads the request.
    pub(crate) fn rules(&self) -> ProviderKind {
        if self.kind == ProviderKind::OpenAiCompatible && is_openai_host(&self.base_url) {
            ProviderKind::OpenAi
        } else {
            self.kind
        }
    }
}

/// Whether a base URL is OpenAI's own API (`api.openai.com`, or a regional host under
/// `openai.com`).
pub(crate) fn is_openai_host(base_url: &str) -> bool {
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))
        .unwrap_or(base_url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    host == "openai.com" || host.ends_with(".openai.com")
}

impl Config {
    /// Every environment variable a profile of the book reads its key from.
    pub(crate) fn key_vars(&self) -> impl Iterator<Item = &str> {
        self.profiles
            .values()
            .flat_map(|p| p.api_key_env.iter().map(String::as_str))
    }

    /// Resolves a profile name, with a message that lists the defined profiles when it is unknown.
    pub(crate) fn profile(&self, name: &str) -> Result<&Profile, String> {
        self.profiles.get(name).ok_or_else(|| {
            format!(
                "unknown provider `{name}`; define `[preprocessor.imagegen.providers.{name}]` or use one of: {}",
                list(self.profiles.keys())
            )
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawProfile {
    kind: String,
    model: Option<String>,
    base_url: Option<String>,
    api_key_env: Option<String>,
    quality: Option<String>,
    background: Option<String>,
    moderation: Option<String>,
    output_format: Option<String>,
    complexity: Option<String>,
    input_fidelity: Option<String>,
    style_preset: Option<String>,
    steps: Option<u32>,
    cfg_scale: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    #[serde(default)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    command: Vec<String>,
    price: Option<f64>,
    timeout: Option<String>,
    batch: Option<bool>,
}

/// Checks one profile table and fills in the defaults of its kind.
fn profile(name: &str, mut raw: RawProfile) -> Result<Profile, (String, String)> {
    let at = |key: &str| format!("providers.{name}.{key}");
    let kind = ProviderKind::parse(&raw.kind).ok_or_else(|| {
        (
            at("kind"),
            format!(
                "unknown provider kind `{}`; this version knows: {}",
                raw.kind,
                list(ProviderKind::ALL.iter().map(|k| k.as_str()))
            ),
        )
    })?;
    let model = match (raw.model.take(), kind.spec().default_model) {
        (Some(model), _) if model.trim().is_empty() => {
            return Err((
                at("model"),
                "the model is empty; name the model (it is part of every image's cache key)".into(),
            ));
        }
        (Some(model), _) => model.trim().to_owned(),
        (None, Some(default)) => default.to_owned(),
        (None, None) => {
            return Err((
                at("model"),
                format!(
                    "a profile of kind `{}` needs `model`: the name of the model the server runs, such as `sd-turbo` (it is part of every image's cache key)",
                    kind.as_str()
                ),
            ));
        }
    };
    if kind == ProviderKind::Stability
        && !(model == "core" || model == "ultra" || model.starts_with("sd3"))
    {
        return Err((
            at("model"),
            format!(
                "`{model}` is not a Stability model; use `core`, `ultra`, `sd3.5-large`, `sd3.5-large-turbo` or `sd3.5-medium`"
            ),
        ));
    }

    let mut profile = Profile::new(kind, &model);
    endpoint(&at, &mut raw, &mut profile)?;
    settings(&at, &mut raw, &mut profile)?;
    program(&at, &mut raw, &mut profile)?;
    if let Some(price) = raw.price {
        if !(price.is_finite() && price >= 0.0) {
            return Err((at("price"), format!("{price} is not a price in US dollars")));
        }
        profile.price = Some(price);
    }
    if let Some(text) = raw.timeout.take() {
        profile.timeout = Some(duration(&text).map_err(|e| (at("timeout"), e))?);
    }
    if raw.batch == Some(true) && !crate::models::batch::has_batch_api(kind) {
        return Err((
            at("batch"),
            format!(
                "the `{}` kind has no batch API this version sends to (only `openai` and `gemini` do); remove the key",
                kind.as_str()
            ),
        ));
    }
    profile.batch = raw.batch;
    Ok(profile)
}

/// How `profile` names a key of the profile in its errors.
type At<'a> = &'a dyn Fn(&str) -> String;

/// A profile's `base-url` and `api-key-env`.
fn endpoint(
    at: At<'_>,
    raw: &mut RawProfile,
    profile: &mut Profile,
) -> Result<(), (String, String)> {
    let kind = profile.kind;
    match raw.base_url.take() {
        Some(url) => {
            let url = url.trim().trim_end_matches('/').to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    at("base-url"),
                    format!("`{url}` is not an http:// or https:// address"),
                ));
            }
            if kind.spec().base_url == BaseUrl::None {
                return Err((
                    at("base-url"),
                    format!(
                        "a profile of kind `{}` has no base URL; remove the key",
                        kind.as_str()
                    ),
                ));
            }
            profile.base_url = url;
        }
        None if kind.spec().base_url == BaseUrl::Given && profile.base_url.is_empty() => {
            return Err((
                at("base-url"),
                format!(
                    "a profile of kind `{}` needs `base-url`, the server's address, such as `http://127.0.0.1:8080/v1`",
                    kind.as_str()
                ),
            ));
        }
        None => {}
    }

    if let Some(env) = raw.api_key_env.take() {
        let env = env.trim().to_owned();
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((
                at("api-key-env"),
                format!(
                    "`{env}` is not an environment variable's name; keys are read only from the environment, never written in `book.toml`"
                ),
            ));
        }
        if kind.spec().key == Key::None {
            return Err((
                at("api-key-env"),
                format!(
                    "a profile of kind `{}` takes no key; remove the key",
                    kind.as_str()
                ),
            ));
        }
        profile.api_key_env = vec![env];
        profile.key_required = true;
    }

    Ok(())
}

/// A profile's `quality` and the settings of its kind, checked against what its model accepts.
fn settings(
    at: At<'_>,
    raw: &mut RawProfile,
    profile: &mut Profile,
) -> Result<(), (String, String)> {
    let kind = profile.kind;
    if let Some(quality) = raw.quality.take() {
        if !crate::vocab::QUALITIES.contains(&quality.as_str()) {
            return Err((
                at("quality"),
                format!(
                    "`{quality}` is not a quality; use one of {}",
                    list(crate::vocab::QUALITIES)
                ),
            ));
        }
        profile.quality = Some(quality);
    }

    let steps = raw.steps.take().map(|n| n.to_string());
    let cfg_scale = raw.cfg_scale.take().map(|n| n.to_string());
    let given = [
        ("background", raw.background.take()),
        ("moderation", raw.moderation.take()),
        ("output-format", raw.output_format.take()),
        ("complexity", raw.complexity.take()),
        ("input-fidelity", raw.input_fidelity.take()),
        ("style-preset", raw.style_preset.take()),
        ("steps", steps),
        ("cfg-scale", cfg_scale),
        ("sampler", raw.sampler.take()),
        ("scheduler", raw.scheduler.take()),
    ];
    for (key, value) in given {
        let Some(value) = value else { continue };
        if !kind.spec().params.contains(&key) {
            return Err((
                at(key),
                format!(
                    "a profile of kind `{}` has no `{key}` setting; {}",
                    kind.as_str(),
                    match kind.spec().params {
                        [] => "it takes none".to_owned(),
                        keys => format!("it takes {}", list(keys)),
                    }
                ),
            ));
        }
        profile
            .params
            .insert(key.to_owned(), value.trim().to_owned());
    }

    for (key, choices) in [
        ("background", &crate::vocab::BACKGROUNDS[..]),
        ("moderation", &crate::vocab::MODERATIONS[..]),
        ("output-format", &crate::vocab::OUTPUT_FORMATS[..]),
        ("complexity", &crate::models::COMPLEXITIES[..]),
        ("input-fidelity", &crate::models::INPUT_FIDELITIES[..]),
    ] {
        if let Some(value) = profile.params.get(key)
            && !choices.contains(&value.as_str())
        {
            return Err((
                at(key),
                format!("`{value}` is not a choice; use {}", list(choices)),
            ));
        }
    }
    crate::models::check_options(
        profile.rules(),
        &profile.model,
        profile.quality.as_deref(),
        &profile.params,
    )
    .map_err(|(key, message)| (at(key), message))?;

    Ok(())
}

/// A profile's `extra` JSON fields and the `command` of the `command` kind.
fn program(
    at: At<'_>,
    raw: &mut RawProfile,
    profile: &mut Profile,
) -> Result<(), (String, String)> {
    let kind = profile.kind;
    if !raw.extra.is_empty() {
        if !kind.spec().extra {
            return Err((
                at("extra"),
                format!(
                    "a profile of kind `{}` takes no `extra` fields; only JSON APIs ({}) do",
                    kind.as_str(),
                    ProviderKind::names_where(|s| s.extra)
                ),
            ));
        }
        profile.extra = std::mem::take(&mut raw.extra);
    }

    match (kind, raw.command.is_empty()) {
        (ProviderKind::Command, true) => {
            return Err((
                at("command"),
                "a profile of kind `command` needs `command`, the program and its arguments, such as `[\"python3\", \"scripts/draw.py\"]`".into(),
            ));
        }
        (ProviderKind::Command, false) => profile.command = std::mem::take(&mut raw.command),
        (_, false) => {
            return Err((
                at("command"),
                format!(
                    "only a profile of kind `command` runs a program; this one is `{}`",
                    kind.as_str()
                ),
            ));
        }
        (_, true) => {}
    }

    Ok(())
}

/// The provider profiles (the built-in placeholder added), and the default profile's name; the
/// default and every fallback must name one.
pub(super) fn profiles(
    raw: &mut RawConfig,
) -> std::result::Result<(String, BTreeMap<String, Profile>), Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let mut profiles = BTreeMap::new();
    for (name, raw_profile) in std::mem::take(&mut raw.providers) {
        let profile = profile(&name, raw_profile)?;
        profiles.insert(name, profile);
    }
    profiles.entry(PLACEHOLDER.to_owned()).or_insert_with(|| {
        Profile::new(ProviderKind::Placeholder, crate::vocab::PLACEHOLDER_MODEL)
    });

    let default_profile = raw
        .provider
        .take()
        .unwrap_or_else(|| PLACEHOLDER.to_owned());
    let named = std::iter::once(("provider", &default_profile))
        .chain(raw.fallback.iter().map(|name| ("fallback", name)));
    for (key, name) in named {
        if !profiles.contains_key(name) {
            return Err(config_error(
                key,
                format!(
                    "no profile named `{name}`; define `[preprocessor.imagegen.providers.{name}]` or use one of: {}",
                    list(profiles.keys())
                ),
            ));
        }
    }

    Ok((default_profile, profiles))
}
