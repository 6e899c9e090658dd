//! The `[preprocessor.imagegen]` table of `book.toml`, read and validated.
//!
//! `RawConfig` mirrors the TOML exactly (kebab-case, unknown keys rejected); `Config` is what the
//! rest of the crate uses, with defaults filled in and every value checked. No I/O here: mdBook
//! hands us the table as JSON inside its context.
//!
//! By subject: `profiles` (provider profiles, the default and the fallbacks), `storage` (the
//! shared remote cache), `styles` (named prompt presets), `alt` (alt text and the describer),
//! `directories` (the cache and assets directories), `limits` (on-error, concurrency, budgets,
//! retries and the size limits of settings). Each reads its keys out of `RawConfig`; `try_from`
//! calls them in a fixed order, which decides the error reported when several keys are wrong.

mod alt;
mod dark;
mod directories;
mod judge;
mod limits;
mod profiles;
mod storage;
mod styles;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
pub(crate) use crate::vocab::{ProviderKind, Size, SizeSetting};
pub(crate) use alt::DescribeWith;
pub(crate) use dark::{Dark, DarkMode};
pub(crate) use judge::{Judge, JudgeMode, MAX_RETRIES};
pub(crate) use limits::{OnError, RetryPolicy};
pub(crate) use profiles::Profile;
#[cfg(test)]
pub(crate) use storage::CLAIM_TTL;
pub(crate) use storage::{Mode, Scheme, Storage};
pub(crate) use styles::{NO_STYLE, Style};

use alt::RawDescribe;
use dark::RawDark;
use judge::RawJudge;
use profiles::RawProfile;
use storage::RawStorage;
use styles::RawStyle;

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
    pub(crate) default_size: SizeSetting,
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
    /// The judge, unless `[judge]` is absent or `mode = "off"`.
    pub(crate) judge: Option<Judge>,
    /// Dark twins of figures (`[dark]`).
    pub(crate) dark: Dark,
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
    judge: Option<RawJudge>,
    dark: Option<RawDark>,
    // mdBook's own keys for every preprocessor: accepted here, used by mdBook.
    command: Option<serde_json::Value>,
    renderers: Option<serde_json::Value>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    optional: Option<serde_json::Value>,
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

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(mut raw: RawConfig) -> Result<Config> {
        let config_error = |(key, message): (String, String)| Error::Config {
            key: format!("preprocessor.imagegen.{key}"),
            message,
        };
        limits::setting_sizes(&raw).map_err(config_error)?;
        let (default_profile, profiles) = profiles::profiles(&mut raw).map_err(config_error)?;
        let (cache_dir, assets_dir) = directories::directories(&mut raw).map_err(config_error)?;
        let (styles, default_style) = styles::styles(&mut raw).map_err(config_error)?;
        let retry = limits::retry(&mut raw).map_err(config_error)?;
        let (on_error, max_concurrency) = limits::limits(&raw).map_err(config_error)?;
        let config_error = |key: &str, message: String| config_error((key.to_owned(), message));

        let default_size = match raw.size {
            None => SizeSetting::Exact(Size::default()),
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
            .map(storage::storage)
            .transpose()
            .map_err(|(key, message)| config_error(&format!("storage.{key}"), message))?;
        let describe = alt::alt_text(raw.alt_text.take(), raw.describe.take(), &profiles)
            .map_err(|(key, message)| config_error(&key, message))?;
        let judge = judge::judge(raw.judge.take(), &profiles)
            .map_err(|(key, message)| config_error(&key, message))?;
        let dark = dark::dark(raw.dark.take(), &profiles)
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
            judge,
            dark,
        })
    }
}

type Invalid = (String, String);
