//! The `[preprocessor.imagegen]` table of `book.toml`, read and validated.
//!
//! `RawConfig` mirrors the TOML exactly (kebab-case, unknown keys rejected); `Config` is what the
//! rest of the crate uses, with defaults filled in and every value checked. No I/O here: mdBook
//! hands us the table as JSON inside its context.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
pub(crate) use crate::vocab::{ProviderKind, Size, list};

/// The built-in provider profile that needs no key and no network.
pub(crate) const PLACEHOLDER: &str = "placeholder";

/// The highest `max-concurrency` accepted; more only invites rate limiting.
const MAX_CONCURRENCY_LIMIT: usize = 64;

/// The validated settings of one book.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The profile a directive uses when it names none.
    pub(crate) default_profile: String,
    /// Every provider profile by name; always holds `placeholder`.
    pub(crate) profiles: BTreeMap<String, Profile>,
    /// The cache directory, relative to the book root.
    pub(crate) cache_dir: PathBuf,
    /// The assets directory, relative to the book's source directory, with `/` separators.
    pub(crate) assets_dir: String,
    /// What a failed directive becomes.
    pub(crate) on_error: OnError,
    /// When true, a directive whose image is not cached fails instead of calling a provider.
    pub(crate) offline: bool,
    /// How many images are generated at once.
    pub(crate) max_concurrency: usize,
    /// The size of an image whose directive gives none.
    pub(crate) default_size: Size,
    /// Named prompt presets: `style="diagram"` appends the preset's text to the prompt.
    pub(crate) styles: BTreeMap<String, Style>,
    /// The style of a directive that names none (`style = "house"`); `style="none"` opts out.
    pub(crate) default_style: Option<String>,
    /// Profiles tried in order when the chosen one fails for a reason that is not the prompt.
    pub(crate) fallback: Vec<String>,
    /// Text put before every prompt.
    pub(crate) prompt_prefix: Option<String>,
    /// Text put after every prompt.
    pub(crate) prompt_suffix: Option<String>,
    /// A negative prompt added to every request.
    pub(crate) negative_prompt: Option<String>,
    /// How patiently each request is retried.
    pub(crate) retry: RetryPolicy,
    /// Prices per image in US dollars by `model` or `model:quality`, over the built-in table.
    pub(crate) prices: BTreeMap<String, f64>,
    /// Which web files are made from each master.
    pub(crate) output: crate::assets::Output,
    /// The most images one build may generate with a provider (placeholders do not count).
    pub(crate) max_images_per_build: Option<usize>,
    /// The most one build may spend, in US dollars, by the price estimates.
    pub(crate) max_cost_per_build: Option<f64>,
    /// The shared remote cache, when `[preprocessor.imagegen.storage]` is set.
    pub(crate) storage: Option<Storage>,
    /// Whether a figure with neither an author's nor a described alt fails the build.
    pub(crate) require_alt: bool,
    /// The describer, when `alt-text = "describe"` (with `"author"`, the default, alt text
    /// without an author comes from the prompt).
    pub(crate) describe: Option<DescribeWith>,
}

/// `alt-text`: where a figure's alt text comes from when its directive has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum AltText {
    /// Derived from the prompt.
    #[default]
    Author,
    /// Written by a vision model from the image (`[describe]`), else derived from the prompt.
    Describe,
}

/// `[preprocessor.imagegen.describe]`, checked: a profile whose kind can read images, and the
/// model it describes with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DescribeWith {
    pub(crate) profile: String,
    pub(crate) model: String,
    /// JSON fields merged into every describe request (the profile's own `extra` is for its
    /// images, and is not sent).
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
    /// The price of one description, over the token prices of the built-in table.
    pub(crate) price: Option<f64>,
}

/// Where the shared remote cache lives: `[preprocessor.imagegen.storage]`. Credentials are never
/// here; they come from each cloud's standard environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Storage {
    pub(crate) scheme: Scheme,
    /// The bucket (S3, GCS) or container (Azure); empty for `fs`.
    pub(crate) bucket: String,
    pub(crate) region: Option<String>,
    /// The service's URL, for S3-compatible stores, emulators and sovereign clouds.
    pub(crate) endpoint: Option<String>,
    /// The prefix of every object, without leading or trailing `/` (for `fs`: the directory,
    /// relative to the book root when not absolute).
    pub(crate) root: String,
    /// Where a browser finds the objects under `root`, without a trailing `/`; figures point
    /// here when set.
    pub(crate) public_url: Option<String>,
    pub(crate) mode: Mode,
    /// Reads without credentials (a public bucket); only with `mode = "read-only"`.
    pub(crate) anonymous: bool,
}

/// The kind of object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    S3,
    Gcs,
    Azblob,
    Fs,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gcs",
            Scheme::Azblob => "azblob",
            Scheme::Fs => "fs",
        }
    }
}

/// Whether builds may write to the remote cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    ReadWrite,
    ReadOnly,
}

/// A named prompt preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Style {
    /// Words appended to the prompt (empty for a style of reference images only).
    pub(crate) prompt: String,
    /// Words added to the negative prompt.
    pub(crate) negative: Option<String>,
    /// Reference images, relative to the book's root, given before a directive's own.
    pub(crate) reference: Vec<String>,
}

/// How a failing request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The longest single wait; a provider that asks for more gets no retry.
    pub(crate) max_wait: Duration,
    /// How long one request may take, from connecting to the last byte.
    pub(crate) timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(600),
        }
    }
}

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
}

impl Profile {
    /// A profile of a kind with every setting at its default.
    pub(crate) fn new(kind: ProviderKind, model: &str) -> Profile {
        Profile {
            kind,
            model: model.to_owned(),
            base_url: kind.default_base_url().to_owned(),
            api_key_env: kind
                .default_key_env()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            key_required: !kind.default_key_env().is_empty(),
            quality: None,
            params: BTreeMap::new(),
            extra: serde_json::Map::new(),
            command: Vec::new(),
            price: None,
            timeout: None,
        }
    }
}

/// What a directive that cannot be turned into an image becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OnError {
    /// The build fails and lists every failed directive with its file and line.
    #[default]
    Fail,
    /// The directive becomes a visible figure that shows the error; the build goes on.
    Placeholder,
}

impl Config {
    /// Reads the `[preprocessor.imagegen]` table as mdBook passes it (JSON), or the defaults when
    /// the table is absent.
    pub fn from_table(table: Option<&serde_json::Value>) -> Result<Config> {
        let raw = match table {
            None | Some(serde_json::Value::Null) => RawConfig::default(),
            Some(value) => {
                if let Some(path) = null_in(value, "") {
                    return Err(Error::Config {
                        key: format!("preprocessor.imagegen{path}"),
                        message: "not a number mdbook-imagegen can use (`nan` and `inf` reach it as nothing); write a finite number".into(),
                    });
                }
                serde_path_to_error::deserialize(value).map_err(|e| {
                    let path = e.path().to_string();
                    Error::Config {
                        key: if path == "." || path.is_empty() {
                            "preprocessor.imagegen".to_owned()
                        } else {
                            format!("preprocessor.imagegen.{path}")
                        },
                        message: e.into_inner().to_string(),
                    }
                })?
            }
        };
        Config::try_from(raw)
    }

    /// Checks where the cache lives against the book's layout: inside the book root, and
    /// outside its source directory (whose files are published) and its build directory
    /// (which every build empties).
    pub(crate) fn check_layout(&self, src: &str, build_dir: &str) -> Result<()> {
        // Already inside the book and normalized when the table was read.
        let cache = &self.cache_dir;
        for (name, dir) in [("source", src), ("build", build_dir)] {
            let Some(dir) = crate::files::join_inside(Path::new(""), Path::new(dir)) else {
                continue;
            };
            if dir.as_os_str().is_empty() || cache.starts_with(&dir) || dir.starts_with(cache) {
                return Err(Error::Config {
                    key: "preprocessor.imagegen.cache-dir".into(),
                    message: format!(
                        "`{}` overlaps the book's {name} directory `{}`, which {}; use a directory of its own, such as `.imagegen`",
                        cache.display(),
                        dir.display(),
                        if name == "source" {
                            "is published with the book"
                        } else {
                            "every build empties"
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Every environment variable a profile of the book reads its key from.
    pub(crate) fn key_vars(&self) -> impl Iterator<Item = &str> {
        self.profiles
            .values()
            .flat_map(|p| p.api_key_env.iter().map(String::as_str))
    }

    /// The id of the describer whose descriptions figures show (`alt-text = "describe"`).
    pub(crate) fn describer_id(&self) -> Option<String> {
        let with = self.describe.as_ref()?;
        let kind = self.profiles[&with.profile].kind;
        Some(crate::description::describer_id(kind, &with.model))
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

impl Default for Config {
    fn default() -> Self {
        Config::try_from(RawConfig::default()).expect("the default configuration is valid")
    }
}

/// The table exactly as written in `book.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
struct RawConfig {
    provider: Option<String>,
    fallback: Vec<String>,
    cache_dir: Option<String>,
    assets_dir: Option<String>,
    on_error: Option<String>,
    offline: Option<bool>,
    max_concurrency: Option<usize>,
    max_images_per_build: Option<usize>,
    max_cost_per_build: Option<f64>,
    size: Option<String>,
    prompt_prefix: Option<String>,
    prompt_suffix: Option<String>,
    negative_prompt: Option<String>,
    retries: Option<u32>,
    max_retry_wait: Option<String>,
    timeout: Option<String>,
    prices: BTreeMap<String, f64>,
    providers: BTreeMap<String, RawProfile>,
    styles: BTreeMap<String, RawStyle>,
    style: Option<String>,
    output: Option<crate::assets::RawOutput>,
    storage: Option<RawStorage>,
    alt_text: Option<String>,
    require_alt: Option<bool>,
    describe: Option<RawDescribe>,
    // mdBook's own keys for every preprocessor: accepted here, used by mdBook.
    command: Option<serde_json::Value>,
    renderers: Option<serde_json::Value>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    optional: Option<serde_json::Value>,
}

/// A style is either the words it adds, or a table with a negative prompt too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStyle {
    Words(String),
    Table {
        #[serde(default)]
        prompt: String,
        #[serde(default)]
        negative: Option<String>,
        #[serde(default)]
        reference: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDescribe {
    profile: String,
    model: Option<String>,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
    price: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawProfile {
    kind: String,
    model: Option<String>,
    base_url: Option<String>,
    api_key_env: Option<String>,
    quality: Option<String>,
    background: Option<String>,
    moderation: Option<String>,
    output_format: Option<String>,
    style_preset: Option<String>,
    steps: Option<u32>,
    cfg_scale: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    command: Vec<String>,
    price: Option<f64>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawStorage {
    scheme: String,
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    root: Option<String>,
    public_url: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    anonymous: bool,
}

/// Validates `[preprocessor.imagegen.storage]`; errors name the key (under `storage.`).
// Long by design: one check per key, in the order the docs list them.
fn storage(raw: RawStorage) -> Result<Storage, (&'static str, String)> {
    let scheme = match raw.scheme.as_str() {
        "s3" => Scheme::S3,
        "gcs" => Scheme::Gcs,
        "azblob" => Scheme::Azblob,
        "fs" => Scheme::Fs,
        other => {
            return Err((
                "scheme",
                format!(
                    "`{other}` is not a store; use `\"s3\"`, `\"gcs\"`, `\"azblob\"` or `\"fs\"`"
                ),
            ));
        }
    };
    let bucket = raw.bucket.unwrap_or_default().trim().to_owned();
    match scheme {
        Scheme::Fs if !bucket.is_empty() => {
            return Err((
                "bucket",
                "the `fs` store has no bucket; set `root` to its directory".into(),
            ));
        }
        Scheme::S3 | Scheme::Gcs | Scheme::Azblob if bucket.is_empty() => {
            let what = if scheme == Scheme::Azblob {
                "container"
            } else {
                "bucket"
            };
            return Err((
                "bucket",
                format!(
                    "the `{}` store needs the name of its {what}",
                    scheme.as_str()
                ),
            ));
        }
        _ => {}
    }
    let endpoint = raw.endpoint.map(|e| store_url("endpoint", e)).transpose()?;
    if scheme == Scheme::Fs && endpoint.is_some() {
        return Err(("endpoint", "the `fs` store has no endpoint".into()));
    }
    let public_url = raw
        .public_url
        .map(|u| store_url("public-url", u))
        .transpose()?;
    let root = store_root(scheme, raw.root.unwrap_or_default())?;
    let mode = match raw.mode.as_deref() {
        None | Some("read-write") => Mode::ReadWrite,
        Some("read-only") => Mode::ReadOnly,
        Some(other) => {
            return Err((
                "mode",
                format!("`{other}` is not a mode; use `\"read-write\"` or `\"read-only\"`"),
            ));
        }
    };
    if raw.anonymous && mode == Mode::ReadWrite {
        return Err((
            "anonymous",
            "anonymous access can only read; add `mode = \"read-only\"`".into(),
        ));
    }
    if raw.anonymous && scheme == Scheme::Fs {
        return Err(("anonymous", "the `fs` store has no credentials".into()));
    }
    Ok(Storage {
        scheme,
        bucket,
        region: raw
            .region
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
        endpoint,
        root,
        public_url,
        mode,
        anonymous: raw.anonymous,
    })
}

/// A store's `endpoint` or `public-url`: http(s), with no credentials, query or fragment in it.
fn store_url(key: &'static str, text: String) -> Result<String, (&'static str, String)> {
    let text = text.trim().trim_end_matches('/').to_owned();
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return Err((
            key,
            format!("`{text}` is not an `http://` or `https://` URL"),
        ));
    };
    if rest.contains(['?', '#']) {
        return Err((
            key,
            "must not have a query or fragment (a signed URL?); credentials come from the environment".into(),
        ));
    }
    if rest.is_empty()
        || rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains('@'))
    {
        return Err((
            key,
            "must be a URL without a user name or password; credentials come from the environment"
                .into(),
        ));
    }
    Ok(text)
}

/// A store's `root`: the directory of an `fs` store, or a plain prefix in a bucket.
fn store_root(scheme: Scheme, root: String) -> Result<String, (&'static str, String)> {
    if scheme == Scheme::Fs {
        let root = root.trim().trim_end_matches('/').to_owned();
        if root.is_empty() {
            return Err((
                "root",
                "the `fs` store needs its directory, such as `\"/mnt/shared/imagegen\"`".into(),
            ));
        }
        Ok(root)
    } else {
        let root = root.trim().trim_matches('/').to_owned();
        if root.split('/').any(|part| part == "." || part == "..") {
            return Err((
                "root",
                format!("`{root}` must be a plain prefix such as `imagegen`"),
            ));
        }
        Ok(if root.is_empty() {
            "imagegen".to_owned()
        } else {
            root
        })
    }
}

/// Reads a duration such as `90s` or `10m`; zero is refused (no request finishes in no time,
/// and a zero wait would turn retries off: `retries = 0` says that).
fn duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("`{text}` is not a duration; write it like `90s` or `10m`"))?;
    if duration.is_zero() {
        return Err(format!(
            "`{text}` is no time at all; write a duration such as `90s` or `10m` (to turn retries off, set `retries = 0`)"
        ));
    }
    Ok(duration)
}

/// The path (`.a.b`) of the first `null` in a table, if any. TOML has no null: a `nan` or `inf`
/// written in `book.toml` is what reaches a preprocessor as one.
fn null_in(value: &serde_json::Value, at: &str) -> Option<String> {
    match value {
        serde_json::Value::Null => Some(at.to_owned()),
        serde_json::Value::Object(map) => map
            .iter()
            .find_map(|(key, value)| null_in(value, &format!("{at}.{key}"))),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, value)| null_in(value, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Checks one profile table and fills in the defaults of its kind.
fn profile(name: &str, mut raw: RawProfile) -> Result<Profile, (String, String)> {
    let at = |key: &str| format!("providers.{name}.{key}");
    let kind = ProviderKind::ALL
        .into_iter()
        .find(|k| k.as_str() == raw.kind)
        .ok_or_else(|| {
            (
                at("kind"),
                format!(
                    "unknown provider kind `{}`; this version knows: {}",
                    raw.kind,
                    list(ProviderKind::ALL.iter().map(|k| k.as_str()))
                ),
            )
        })?;
    let model = match (raw.model.take(), kind.default_model()) {
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
            if kind == ProviderKind::Placeholder || kind == ProviderKind::Command {
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
        None if profile.base_url.is_empty()
            && kind != ProviderKind::Placeholder
            && kind != ProviderKind::Command =>
        {
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
        if matches!(kind, ProviderKind::Placeholder | ProviderKind::Command) {
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
        ("style-preset", raw.style_preset.take()),
        ("steps", steps),
        ("cfg-scale", cfg_scale),
        ("sampler", raw.sampler.take()),
        ("scheduler", raw.scheduler.take()),
    ];
    for (key, value) in given {
        let Some(value) = value else { continue };
        if !kind.params().contains(&key) {
            return Err((
                at(key),
                format!(
                    "a profile of kind `{}` has no `{key}` setting; {}",
                    kind.as_str(),
                    match kind.params() {
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
        kind,
        &profile.model,
        profile.quality.as_deref(),
        profile.params.get("background").map(String::as_str),
        profile.params.get("output-format").map(String::as_str),
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
        if !matches!(
            kind,
            ProviderKind::OpenAi
                | ProviderKind::OpenAiCompatible
                | ProviderKind::Automatic1111
                | ProviderKind::Bfl
                | ProviderKind::OpenRouter
                | ProviderKind::Recraft
        ) {
            return Err((
                at("extra"),
                format!(
                    "a profile of kind `{}` takes no `extra` fields; only JSON APIs (openai, openai-compatible, automatic1111, bfl, openrouter, recraft) do",
                    kind.as_str()
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

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(mut raw: RawConfig) -> Result<Config> {
        let config_error = |(key, message): (String, String)| Error::Config {
            key: format!("preprocessor.imagegen.{key}"),
            message,
        };
        setting_sizes(&raw).map_err(config_error)?;
        let (default_profile, profiles) = profiles(&mut raw).map_err(config_error)?;
        let (cache_dir, assets_dir) = directories(&mut raw).map_err(config_error)?;
        let (styles, default_style) = styles(&mut raw).map_err(config_error)?;
        let retry = retry(&mut raw).map_err(config_error)?;
        let (on_error, max_concurrency) = limits(&raw).map_err(config_error)?;
        let config_error = |key: &str, message: String| config_error((key.to_owned(), message));

        let default_size = match raw.size {
            None => Size::default(),
            Some(text) => text.parse().map_err(|e| config_error("size", e))?,
        };

        let text = |value: Option<String>| {
            value
                .map(|v| crate::vocab::fold_whitespace(&v))
                .filter(|v| !v.is_empty())
        };

        for (model, price) in &raw.prices {
            if !(price.is_finite() && *price >= 0.0) {
                return Err(config_error(
                    &format!("prices.{model}"),
                    format!("{price} is not a price in US dollars"),
                ));
            }
        }

        let output = match raw.output {
            Some(raw) => crate::assets::Output::from_raw(raw)
                .map_err(|(key, message)| config_error(&format!("output.{key}"), message))?,
            None => crate::assets::Output::default(),
        };
        let storage = raw
            .storage
            .map(storage)
            .transpose()
            .map_err(|(key, message)| config_error(&format!("storage.{key}"), message))?;
        let describe = alt_text(raw.alt_text.take(), raw.describe.take(), &profiles)
            .map_err(|(key, message)| config_error(&key, message))?;
        Ok(Config {
            default_profile,
            profiles,
            cache_dir,
            assets_dir,
            on_error,
            offline: raw.offline.unwrap_or(false),
            max_concurrency,
            default_size,
            styles,
            default_style,
            fallback: raw.fallback,
            prompt_prefix: text(raw.prompt_prefix),
            prompt_suffix: text(raw.prompt_suffix),
            negative_prompt: text(raw.negative_prompt),
            retry,
            prices: raw.prices,
            output,
            max_images_per_build: raw.max_images_per_build,
            max_cost_per_build: raw.max_cost_per_build,
            storage,
            require_alt: raw.require_alt.unwrap_or(false),
            describe,
        })
    }
}

type Invalid = (String, String);

/// The most characters of a text setting that goes into every prompt (`prompt-prefix`,
/// `prompt-suffix`, `negative-prompt`, a style's `prompt` and `negative`).
pub(crate) const MAX_SETTING_CHARS: usize = 16_000;

/// The most bytes of a profile's `extra` (or the describer's), written as JSON.
pub(crate) const MAX_EXTRA_BYTES: usize = 16 << 10;

/// Refuses text settings that would make every record larger than the cache reads back (the
/// image would be paid for again on every build), naming the key.
fn setting_sizes(raw: &RawConfig) -> std::result::Result<(), Invalid> {
    let mut texts: Vec<(String, &str)> = Vec::new();
    for (key, value) in [
        ("prompt-prefix", &raw.prompt_prefix),
        ("prompt-suffix", &raw.prompt_suffix),
        ("negative-prompt", &raw.negative_prompt),
    ] {
        if let Some(value) = value {
            texts.push((key.to_owned(), value));
        }
    }
    for (name, style) in &raw.styles {
        match style {
            RawStyle::Words(prompt) => texts.push((format!("styles.{name}"), prompt)),
            RawStyle::Table {
                prompt, negative, ..
            } => {
                texts.push((format!("styles.{name}.prompt"), prompt));
                if let Some(negative) = negative {
                    texts.push((format!("styles.{name}.negative"), negative));
                }
            }
        }
    }
    for (key, text) in texts {
        let chars = text.chars().count();
        if chars > MAX_SETTING_CHARS {
            return Err((
                key,
                format!(
                    "{chars} characters; at most {MAX_SETTING_CHARS} go into every prompt (the cache keeps each image's prompt in its record, and reads back records of bounded size)"
                ),
            ));
        }
    }
    let extras = raw
        .providers
        .iter()
        .map(|(name, p)| (format!("providers.{name}.extra"), &p.extra))
        .chain(
            raw.describe
                .iter()
                .map(|d| ("describe.extra".to_owned(), &d.extra)),
        );
    for (key, extra) in extras {
        let bytes = serde_json::to_string(extra).map_or(0, |t| t.len());
        if bytes > MAX_EXTRA_BYTES {
            return Err((
                key,
                format!(
                    "{} KB of JSON; at most {} KB (it is kept in each image's record)",
                    bytes.div_ceil(1024),
                    MAX_EXTRA_BYTES >> 10
                ),
            ));
        }
    }
    Ok(())
}

/// `alt-text` and `[describe]`: a describer is a profile whose kind can read images; its model
/// is `[describe] model`, else the profile's, unless that is the kind's default image model,
/// which describes nothing (then the kind's default vision model).
fn alt_text(
    mode: Option<String>,
    raw: Option<RawDescribe>,
    profiles: &BTreeMap<String, Profile>,
) -> std::result::Result<Option<DescribeWith>, Invalid> {
    let mode = match mode.as_deref() {
        None | Some("author") => AltText::Author,
        Some("describe") => AltText::Describe,
        Some(other) => {
            return Err((
                "alt-text".into(),
                format!(
                    "unknown value `{other}`; use \"author\" (alt derived from the prompt when the directive has none) or \"describe\" (written by a vision model)"
                ),
            ));
        }
    };
    let Some(raw) = raw else {
        if mode == AltText::Describe {
            return Err((
                "alt-text".into(),
                "\"describe\" needs a describer: add `[preprocessor.imagegen.describe]` with `profile = \"NAME\"`, naming a provider profile of kind openai, gemini, openai-compatible or command".into(),
            ));
        }
        return Ok(None);
    };
    let kinds = list(crate::description::KINDS.iter().map(|k| k.as_str()));
    let profile = profiles.get(&raw.profile).ok_or_else(|| {
        (
            "describe.profile".to_owned(),
            format!(
                "no profile named `{}`; define `[preprocessor.imagegen.providers.{}]` with a kind that can read images ({kinds})",
                raw.profile, raw.profile
            ),
        )
    })?;
    if !crate::description::KINDS.contains(&profile.kind) {
        return Err((
            "describe.profile".into(),
            format!(
                "profile `{}` is of kind `{}`, which cannot describe images; use a profile of kind {kinds}",
                raw.profile,
                profile.kind.as_str()
            ),
        ));
    }
    let model = match raw.model.map(|m| m.trim().to_owned()) {
        Some(model) if model.is_empty() => {
            return Err((
                "describe.model".into(),
                "the model is empty; name a vision model, such as `gpt-6-luna`".into(),
            ));
        }
        Some(model) => model,
        None if Some(profile.model.as_str()) == profile.kind.default_model() => {
            crate::description::default_describer_model(profile.kind)
                .unwrap_or(&profile.model)
                .to_owned()
        }
        None => profile.model.clone(),
    };
    if let Some(price) = raw.price.filter(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err((
            "describe.price".into(),
            format!("{price} is not a price in US dollars"),
        ));
    }
    // Checked either way; used only when descriptions are asked for.
    let with = DescribeWith {
        profile: raw.profile,
        model,
        extra: raw.extra,
        price: raw.price,
    };
    Ok((mode == AltText::Describe).then_some(with))
}

/// The provider profiles (the built-in placeholder added), and the default profile's name; the
/// default and every fallback must name one.
fn profiles(
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

/// `cache-dir` (kept normalized, inside the book) and `assets-dir` (inside the source directory).
fn directories(raw: &mut RawConfig) -> std::result::Result<(PathBuf, String), Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let cache_dir = PathBuf::from(
        raw.cache_dir
            .take()
            .unwrap_or_else(|| ".imagegen".to_owned()),
    );
    if cache_dir.as_os_str().is_empty() {
        return Err(config_error(
            "cache-dir",
            "the path is empty; remove the key to use `.imagegen`".into(),
        ));
    }
    // Kept normalized (`./a/../b` is `b`), so that it compares with the book's directories.
    let cache_dir = crate::files::join_inside(Path::new(""), &cache_dir)
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or_else(|| {
            config_error(
                "cache-dir",
                format!(
                    "`{}` is not a directory inside the book; use a relative path such as `.imagegen`",
                    cache_dir.display()
                ),
            )
        })?;

    let assets_dir = raw
        .assets_dir
        .take()
        .unwrap_or_else(|| "imagegen".to_owned());
    let assets_dir = assets_dir.trim_matches('/').to_owned();
    if assets_dir.is_empty()
        || !Path::new(&assets_dir)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(config_error(
            "assets-dir",
            format!(
                "`{assets_dir}` must be a relative path inside the book's source directory, such as `imagegen`"
            ),
        ));
    }

    Ok((cache_dir, assets_dir))
}

/// The word a directive's `style` takes to use no style, not even the book's default.
pub(crate) const NO_STYLE: &str = "none";

/// The book's named styles (words added to the prompt and to the negative prompt, reference
/// images) and the default style.
type Styles = (BTreeMap<String, Style>, Option<String>);

/// The book's named styles and its default style.
fn styles(raw: &mut RawConfig) -> std::result::Result<Styles, Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let mut styles = BTreeMap::new();
    for (name, raw_style) in std::mem::take(&mut raw.styles) {
        let style = match raw_style {
            RawStyle::Words(prompt) => Style {
                prompt,
                negative: None,
                reference: Vec::new(),
            },
            RawStyle::Table {
                prompt,
                negative,
                reference,
            } => Style {
                prompt,
                negative,
                reference,
            },
        };
        let key = format!("styles.{name}");
        if name == NO_STYLE {
            return Err(config_error(
                &key,
                format!(
                    "`{NO_STYLE}` is the word with which a directive opts out of the book's style; give this style another name"
                ),
            ));
        }
        if style.prompt.trim().is_empty() && style.reference.is_empty() {
            return Err(config_error(
                &key,
                "the style is empty; write the words it adds to the prompt, or its `reference` images".into(),
            ));
        }
        if style.reference.len() > crate::directive::MAX_REFERENCES {
            return Err(config_error(
                &format!("{key}.reference"),
                format!(
                    "{} images; providers take at most {}",
                    style.reference.len(),
                    crate::directive::MAX_REFERENCES
                ),
            ));
        }
        let mut reference = Vec::new();
        for path in &style.reference {
            reference.push(
                crate::directive::check_reference_path(path, "the book's root")
                    .map_err(|e| config_error(&format!("{key}.reference"), e))?,
            );
        }
        styles.insert(name, Style { reference, ..style });
    }
    let default = raw.style.take();
    if let Some(default) = &default
        && !styles.contains_key(default)
    {
        return Err(config_error(
            "style",
            if styles.is_empty() {
                format!(
                    "the book defines no style `{default}`; define it in `[preprocessor.imagegen.styles.{default}]`"
                )
            } else {
                format!(
                    "the book defines no style `{default}`; it defines {}",
                    crate::vocab::list(styles.keys())
                )
            },
        ));
    }
    Ok((styles, default))
}

/// `on-error`, `max-cost-per-build` and `max-concurrency`.
fn limits(raw: &RawConfig) -> std::result::Result<(OnError, usize), Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let on_error = match raw.on_error.as_deref() {
        None | Some("fail") => OnError::Fail,
        Some("placeholder") => OnError::Placeholder,
        Some(other) => {
            return Err(config_error(
                "on-error",
                format!("`{other}` is not a choice; use `\"fail\"` or `\"placeholder\"`"),
            ));
        }
    };

    if let Some(cost) = raw.max_cost_per_build
        && !(cost.is_finite() && cost >= 0.0)
    {
        return Err(config_error(
            "max-cost-per-build",
            format!("{cost} is not an amount; use a number of US dollars such as `5.0`"),
        ));
    }

    let max_concurrency = raw.max_concurrency.unwrap_or(4);
    if !(1..=MAX_CONCURRENCY_LIMIT).contains(&max_concurrency) {
        return Err(config_error(
            "max-concurrency",
            format!("{max_concurrency} is out of range; use 1 to {MAX_CONCURRENCY_LIMIT}"),
        ));
    }

    Ok((on_error, max_concurrency))
}

/// `retries`, `max-retry-wait` and `timeout`.
fn retry(raw: &mut RawConfig) -> std::result::Result<RetryPolicy, Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let mut retry = RetryPolicy::default();
    if let Some(retries) = raw.retries.take() {
        if retries > 10 {
            return Err(config_error(
                "retries",
                format!("{retries} is out of range; use 0 to 10"),
            ));
        }
        retry.retries = retries;
    }
    if let Some(wait) = raw.max_retry_wait.take() {
        retry.max_wait = duration(&wait).map_err(|e| config_error("max-retry-wait", e))?;
    }
    if let Some(timeout) = raw.timeout.take() {
        retry.timeout = duration(&timeout).map_err(|e| config_error("timeout", e))?;
    }
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(table: serde_json::Value) -> String {
        Config::from_table(Some(&table)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_need_no_table() {
        let config = Config::from_table(None).unwrap();
        assert_eq!(config.default_profile, "placeholder");
        assert_eq!(config.cache_dir, PathBuf::from(".imagegen"));
        assert_eq!(config.assets_dir, "imagegen");
        assert_eq!(config.on_error, OnError::Fail);
        assert!(!config.offline);
        assert_eq!(config.max_concurrency, 4);
        assert_eq!(
            config.default_size,
            Size {
                width: 1024,
                height: 1024
            }
        );
        assert_eq!(
            config.profiles["placeholder"].kind,
            ProviderKind::Placeholder
        );
    }

    #[test]
    fn reads_every_key_and_accepts_mdbooks_own() {
        let config = Config::from_table(Some(&json!({
        "command": "mdbook-imagegen", "renderers": ["html"], "before": [], "after": ["links"], "optional": true,
        "provider": "drafts", "cache-dir": "cache", "assets-dir": "/img/gen/", "on-error": "placeholder",
        "offline": true, "max-concurrency": 8, "size": "640x480",
        "providers": { "drafts": { "kind": "placeholder", "model": "m" } },
        "styles": { "ink": "ink drawing" }
    })))
    .unwrap();
        assert_eq!(config.default_profile, "drafts");
        assert_eq!(config.assets_dir, "img/gen");
        assert_eq!(config.on_error, OnError::Placeholder);
        assert!(config.offline);
        assert_eq!(config.max_concurrency, 8);
        assert_eq!(config.profiles["drafts"].model, "m");
    }

    #[test]
    fn settings_that_would_outgrow_a_record_are_refused_naming_the_key() {
        let long = "x".repeat(MAX_SETTING_CHARS + 1);
        let extra: serde_json::Map<String, serde_json::Value> =
            [("blob".to_owned(), json!("y".repeat(MAX_EXTRA_BYTES)))]
                .into_iter()
                .collect();
        for (table, key) in [
            (json!({ "prompt-prefix": long }), "prompt-prefix"),
            (json!({ "prompt-suffix": long }), "prompt-suffix"),
            (json!({ "negative-prompt": long }), "negative-prompt"),
            (json!({ "styles": { "ink": long } }), "styles.ink"),
            (
                json!({ "styles": { "ink": { "prompt": "ink", "negative": long } } }),
                "styles.ink.negative",
            ),
            (
                json!({ "providers": { "art": { "kind": "openai", "extra": extra } } }),
                "providers.art.extra",
            ),
        ] {
            let message = error(table);
            assert!(
                message.starts_with(&format!("in `book.toml`, `preprocessor.imagegen.{key}`:")),
                "{message}"
            );
        }
        let fits = "x".repeat(MAX_SETTING_CHARS);
        Config::from_table(Some(&json!({ "prompt-prefix": fits }))).unwrap();
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let message = error(json!({ "cache-directory": "x" }));
        assert!(message.starts_with("in `book.toml`, `preprocessor.imagegen.cache-directory`: unknown field `cache-directory`, expected one of `provider`, `fallback`, `cache-dir`, `assets-dir`"), "{message}");
    }

    #[test]
    fn bad_values_say_how_to_fix_them() {
        let cases = [
            (
                json!({ "on-error": "ignore" }),
                "in `book.toml`, `preprocessor.imagegen.on-error`: `ignore` is not a choice; use `\"fail\"` or `\"placeholder\"`",
            ),
            (
                json!({ "provider": "openai" }),
                "in `book.toml`, `preprocessor.imagegen.provider`: no profile named `openai`; define `[preprocessor.imagegen.providers.openai]` or use one of: `placeholder`",
            ),
            (
                json!({ "providers": { "x": { "kind": "dalle" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.x.kind`: unknown provider kind `dalle`; this version knows: `placeholder`, `openai`, `openai-compatible`, `gemini`, `stability`, `automatic1111`, `command`, `bfl`, `openrouter`, `recraft`",
            ),
            (
                json!({ "max-concurrency": 0 }),
                "in `book.toml`, `preprocessor.imagegen.max-concurrency`: 0 is out of range; use 1 to 64",
            ),
            (
                json!({ "assets-dir": "../outside" }),
                "in `book.toml`, `preprocessor.imagegen.assets-dir`: `../outside` must be a relative path inside the book's source directory, such as `imagegen`",
            ),
            (
                json!({ "size": "huge" }),
                "in `book.toml`, `preprocessor.imagegen.size`: `huge` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels",
            ),
            (
                json!({ "providers": { "local": { "kind": "automatic1111" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.local.model`: a profile of kind `automatic1111` needs `model`: the name of the model the server runs, such as `sd-turbo` (it is part of every image's cache key)",
            ),
            (
                json!({ "providers": { "sd": { "kind": "openai-compatible", "model": "sd" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.sd.base-url`: a profile of kind `openai-compatible` needs `base-url`, the server's address, such as `http://127.0.0.1:8080/v1`",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "api-key-env": "sk-abc123 secret" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.api-key-env`: `sk-abc123 secret` is not an environment variable's name; keys are read only from the environment, never written in `book.toml`",
            ),
            (
                json!({ "providers": { "g": { "kind": "gemini", "steps": 20 } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.g.steps`: a profile of kind `gemini` has no `steps` setting; it takes none",
            ),
            (
                json!({ "providers": { "c": { "kind": "command", "model": "m" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.c.command`: a profile of kind `command` needs `command`, the program and its arguments, such as `[\"python3\", \"scripts/draw.py\"]`",
            ),
            (
                json!({ "fallback": ["nope"] }),
                "in `book.toml`, `preprocessor.imagegen.fallback`: no profile named `nope`; define `[preprocessor.imagegen.providers.nope]` or use one of: `placeholder`",
            ),
            (
                json!({ "timeout": "soon" }),
                "in `book.toml`, `preprocessor.imagegen.timeout`: `soon` is not a duration; write it like `90s` or `10m`",
            ),
            (
                json!({ "styles": { "ink": " " } }),
                "in `book.toml`, `preprocessor.imagegen.styles.ink`: the style is empty; write the words it adds to the prompt, or its `reference` images",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "background": "clear" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.background`: `clear` is not a choice; use `transparent`, `opaque`, `auto`",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "moderation": "high" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.moderation`: `high` is not a choice; use `low`, `auto`",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "output-format": "gif" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.output-format`: `gif` is not a choice; use `png`, `jpeg`, `webp`",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "background": "transparent" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.background`: `gpt-image-2` cannot make a transparent background; use `opaque` or `auto`, or a model that can, such as `gpt-image-2.6-sunburst`",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "model": "gpt-image-2.5-flare", "background": "transparent", "output-format": "jpeg" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.background`: a transparent background needs `output-format = \"png\"` or `\"webp\"`; JPEG has no transparency",
            ),
            (
                json!({ "providers": { "o": { "kind": "openai", "quality": "max" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.o.quality`: `gpt-image-2` does not take quality `max` (only gpt-image-2.5 and later do); use `low`, `medium`, `high` or `auto`, or a newer model such as `gpt-image-2.6-sunburst`",
            ),
        ];
        for (table, expected) in cases {
            assert_eq!(error(table), expected);
        }
    }

    #[test]
    fn profiles_get_their_kinds_defaults() {
        let config = Config::from_table(Some(&json!({
            "provider": "openai", "fallback": ["gemini", "local"],
            "prompt-prefix": "  A drawing of ", "negative-prompt": "text, watermark",
            "retries": 5, "max-retry-wait": "30s", "timeout": "2m",
            "prices": { "gpt-image-1.5:high": 0.2 },
            "providers": {
                "openai": { "kind": "openai", "quality": "high", "background": "opaque" },
                "gemini": { "kind": "gemini", "api-key-env": "MY_GEMINI" },
                "local": { "kind": "automatic1111", "model": "sdxl", "steps": 30, "cfg-scale": 6.5,
                           "base-url": "http://127.0.0.1:7860/", "timeout": "30m" },
            },
            "styles": { "ink": { "prompt": "ink drawing", "negative": "colour" } }
        })))
        .unwrap();
        let openai = &config.profiles["openai"];
        assert_eq!(openai.model, "gpt-image-2");
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!(openai.api_key_env, ["OPENAI_API_KEY"]);
        assert!(openai.key_required);
        assert_eq!(openai.quality.as_deref(), Some("high"));
        assert_eq!(openai.params["background"], "opaque");
        let gemini = &config.profiles["gemini"];
        assert_eq!(gemini.api_key_env, ["MY_GEMINI"]);
        let local = &config.profiles["local"];
        assert_eq!(local.base_url, "http://127.0.0.1:7860");
        assert!(!local.key_required);
        assert_eq!(local.params["steps"], "30");
        assert_eq!(local.params["cfg-scale"], "6.5");
        assert_eq!(local.timeout, Some(Duration::from_secs(1800)));
        assert_eq!(config.fallback, ["gemini", "local"]);
        assert_eq!(config.prompt_prefix.as_deref(), Some("A drawing of"));
        assert_eq!(config.retry.retries, 5);
        assert_eq!(config.retry.max_wait, Duration::from_secs(30));
        assert_eq!(config.retry.timeout, Duration::from_secs(120));
        assert_eq!(config.styles["ink"].negative.as_deref(), Some("colour"));
    }

    #[test]
    fn storage_reads_each_scheme_with_defaults() {
        let config = Config::from_table(Some(&json!({
        "storage": {"scheme": "s3", "bucket": "my-book", "region": "eu-west-1",
                    "endpoint": "https://s3.example.com/", "public-url": "https://img.example.com/x/"}
    })))
    .unwrap();
        let storage = config.storage.unwrap();
        assert_eq!(storage.scheme, Scheme::S3);
        assert_eq!(storage.bucket, "my-book");
        assert_eq!(storage.root, "imagegen");
        assert_eq!(storage.endpoint.as_deref(), Some("https://s3.example.com"));
        assert_eq!(
            storage.public_url.as_deref(),
            Some("https://img.example.com/x")
        );
        assert_eq!(storage.mode, Mode::ReadWrite);

        let fs = Config::from_table(Some(
            &json!({"storage": {"scheme": "fs", "root": "../shared/"}}),
        ))
        .unwrap()
        .storage
        .unwrap();
        assert_eq!((fs.scheme, fs.root.as_str()), (Scheme::Fs, "../shared"));
        let azure = Config::from_table(Some(&json!({
            "storage": {"scheme": "azblob", "bucket": "c", "root": "/books/a/", "mode": "read-only"}
        })))
        .unwrap()
        .storage
        .unwrap();
        assert_eq!(
            (azure.root.as_str(), azure.mode),
            ("books/a", Mode::ReadOnly)
        );
    }

    #[test]
    fn storage_mistakes_say_how_to_fix_them() {
        let cases = [
            (
                json!({"scheme": "ftp", "bucket": "b"}),
                "storage.scheme`: `ftp` is not a store",
            ),
            (
                json!({"scheme": "s3"}),
                "storage.bucket`: the `s3` store needs the name of its bucket",
            ),
            (
                json!({"scheme": "azblob"}),
                "needs the name of its container",
            ),
            (
                json!({"scheme": "fs"}),
                "the `fs` store needs its directory",
            ),
            (
                json!({"scheme": "fs", "root": "x", "bucket": "b"}),
                "the `fs` store has no bucket",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "endpoint": "s3.example.com"}),
                "is not an `http://` or `https://` URL",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "endpoint": "https://key:secret@s3.example.com"}),
                "without a user name or password",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "mode": "rw"}),
                "`rw` is not a mode",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "anonymous": true}),
                "anonymous access can only read",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "root": "a/../b"}),
                "must be a plain prefix",
            ),
            (
                json!({"scheme": "s3", "bucket": "b", "key": "x"}),
                "unknown field `key`",
            ),
        ];
        for (table, expected) in cases {
            let message = error(json!({ "storage": table }));
            assert!(
                message.contains(expected),
                "{message}\nshould contain: {expected}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn every_error_names_the_full_key() {
        let cases = [
            (
                json!({ "providers": { "oa": { "kind": "openai", "timeout": -1 } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.oa.timeout`: invalid type: integer `-1`, expected a string",
            ),
            (
                json!({ "providers": { "oa": { "model": "x" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.oa`: missing field `kind`",
            ),
            (
                json!({ "providers": { "oa": { "kind": "openai", "tiemout": "1s" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.oa.tiemout`: unknown field `tiemout`, expected one of",
            ),
            (
                json!({ "max-concurrency": -1 }),
                "in `book.toml`, `preprocessor.imagegen.max-concurrency`: invalid value: integer `-1`, expected usize",
            ),
            (
                json!({ "output": { "widths": [480, "wide"] } }),
                "in `book.toml`, `preprocessor.imagegen.output.widths[1]`: invalid type: string \"wide\", expected i64",
            ),
            // `nan` and `inf` reach a preprocessor as JSON null.
            (
                json!({ "max-cost-per-build": null }),
                "in `book.toml`, `preprocessor.imagegen.max-cost-per-build`: not a number mdbook-imagegen can use",
            ),
            (
                json!({ "providers": { "oa": { "kind": "openai", "price": null } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.oa.price`: not a number",
            ),
            (
                json!({ "timeout": "0s" }),
                "in `book.toml`, `preprocessor.imagegen.timeout`: `0s` is no time at all",
            ),
            (
                json!({ "providers": { "oa": { "kind": "openai", "timeout": "0ms" } } }),
                "in `book.toml`, `preprocessor.imagegen.providers.oa.timeout`: `0ms` is no time at all",
            ),
            (
                json!({ "max-retry-wait": "0s" }),
                "in `book.toml`, `preprocessor.imagegen.max-retry-wait`: `0s` is no time at all",
            ),
            (
                json!({ "max-cost-per-build": -2.0 }),
                "in `book.toml`, `preprocessor.imagegen.max-cost-per-build`: -2 is not an amount",
            ),
            (
                json!({ "cache-dir": "../elsewhere" }),
                "in `book.toml`, `preprocessor.imagegen.cache-dir`: `../elsewhere` is not a directory inside the book",
            ),
            (
                json!({ "cache-dir": "/tmp/cache" }),
                "in `book.toml`, `preprocessor.imagegen.cache-dir`: `/tmp/cache` is not a directory inside the book",
            ),
            (
                json!({ "cache-dir": "a/../.." }),
                "in `book.toml`, `preprocessor.imagegen.cache-dir`: `a/../..` is not a directory inside the book",
            ),
            (
                json!({ "cache-dir": "." }),
                "in `book.toml`, `preprocessor.imagegen.cache-dir`: `.` is not a directory inside the book",
            ),
        ];
        for (table, expected) in cases {
            let message = error(table.clone());
            assert!(message.starts_with(expected), "{table}:\n{message}");
        }
    }

    #[test]
    fn the_cache_stays_out_of_the_source_and_build_directories() {
        let layout = |cache: &str, src: &str, build: &str| {
            Config::from_table(Some(&json!({ "cache-dir": cache })))
                .unwrap()
                .check_layout(src, build)
                .map_err(|e| e.to_string())
        };
        assert!(layout(".imagegen", "src", "book").is_ok());
        assert!(layout("cache/images", "./src/", "out").is_ok());
        for (cache, src, build) in [
            ("book/.imagegen", "src", "book"),
            ("src/.imagegen", "src", "book"),
            ("./src/x/../.imagegen", "src", "book"),
            ("docs", "docs/src", "book"),
            ("out", "src", "out/html"),
        ] {
            let message = layout(cache, src, build).unwrap_err();
            assert!(
                message.contains("overlaps the book's"),
                "{cache}: {message}"
            );
        }
    }
}
