//! The `[preprocessor.imagegen]` table of `book.toml`, read and validated.
//!
//! `RawConfig` mirrors the TOML exactly (kebab-case, unknown keys rejected); `Config` is what the
//! rest of the crate uses, with defaults filled in and every value checked. No I/O here: mdBook
//! hands us the table as JSON inside its context.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};

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
    pub(crate) styles: BTreeMap<String, String>,
}

/// One `[preprocessor.imagegen.providers.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Which provider implementation serves this profile.
    pub(crate) kind: ProviderKind,
    /// The model asked for; every kind has a default.
    pub(crate) model: String,
}

/// The provider implementations this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    /// Draws a labelled placeholder image locally.
    Placeholder,
}

impl ProviderKind {
    /// The name used in `book.toml`, records and cache keys.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Placeholder => "placeholder",
        }
    }

    /// The model used when a profile names none.
    fn default_model(self) -> &'static str {
        match self {
            ProviderKind::Placeholder => crate::provider::placeholder::MODEL,
        }
    }

    const ALL: [ProviderKind; 1] = [ProviderKind::Placeholder];
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

/// An image size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Size {
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl Size {
    /// The smallest side accepted.
    pub(crate) const MIN: u32 = 16;
    /// The largest side accepted.
    pub(crate) const MAX: u32 = 4096;
}

impl Default for Size {
    fn default() -> Self {
        Size {
            width: 1024,
            height: 1024,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "`{text}` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side {} to {} pixels",
                Size::MIN,
                Size::MAX
            )
        };
        let (w, h) = text.split_once(['x', 'X']).ok_or_else(expected)?;
        let side = |s: &str| -> Result<u32, String> {
            let n: u32 = s.trim().parse().map_err(|_| expected())?;
            if (Size::MIN..=Size::MAX).contains(&n) {
                Ok(n)
            } else {
                Err(expected())
            }
        };
        Ok(Size {
            width: side(w)?,
            height: side(h)?,
        })
    }
}

impl Config {
    /// Reads the `[preprocessor.imagegen]` table as mdBook passes it (JSON), or the defaults when
    /// the table is absent.
    pub fn from_table(table: Option<&serde_json::Value>) -> Result<Config> {
        let raw = match table {
            None | Some(serde_json::Value::Null) => RawConfig::default(),
            Some(value) => RawConfig::deserialize(value).map_err(|e| Error::Config {
                key: "preprocessor.imagegen".into(),
                message: e.to_string(),
            })?,
        };
        Config::try_from(raw)
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
    cache_dir: Option<String>,
    assets_dir: Option<String>,
    on_error: Option<String>,
    offline: Option<bool>,
    max_concurrency: Option<usize>,
    size: Option<String>,
    providers: BTreeMap<String, RawProfile>,
    styles: BTreeMap<String, String>,
    // mdBook's own keys for every preprocessor: accepted here, used by mdBook.
    command: Option<serde_json::Value>,
    renderers: Option<serde_json::Value>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    optional: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawProfile {
    kind: String,
    model: Option<String>,
}

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(raw: RawConfig) -> Result<Config> {
        let config_error = |key: &str, message: String| Error::Config {
            key: format!("preprocessor.imagegen.{key}"),
            message,
        };

        let mut profiles = BTreeMap::new();
        for (name, profile) in raw.providers {
            let key = format!("providers.{name}.kind");
            let kind = ProviderKind::ALL
                .into_iter()
                .find(|k| k.as_str() == profile.kind)
                .ok_or_else(|| {
                    config_error(
                        &key,
                        format!(
                            "unknown provider kind `{}`; this version knows: {}",
                            profile.kind,
                            list(ProviderKind::ALL.iter().map(|k| k.as_str()))
                        ),
                    )
                })?;
            let model = match profile.model {
                Some(model) if model.trim().is_empty() => {
                    return Err(config_error(
                        &format!("providers.{name}.model"),
                        "the model is empty; remove the key to use the default".into(),
                    ));
                }
                Some(model) => model,
                None => kind.default_model().to_owned(),
            };
            profiles.insert(name, Profile { kind, model });
        }
        profiles
            .entry(PLACEHOLDER.to_owned())
            .or_insert_with(|| Profile {
                kind: ProviderKind::Placeholder,
                model: ProviderKind::Placeholder.default_model().to_owned(),
            });

        let default_profile = raw.provider.unwrap_or_else(|| PLACEHOLDER.to_owned());
        if !profiles.contains_key(&default_profile) {
            return Err(config_error(
                "provider",
                format!(
                    "no profile named `{default_profile}`; define `[preprocessor.imagegen.providers.{default_profile}]` or use one of: {}",
                    list(profiles.keys())
                ),
            ));
        }

        let cache_dir = PathBuf::from(raw.cache_dir.unwrap_or_else(|| ".imagegen".to_owned()));
        if cache_dir.as_os_str().is_empty() {
            return Err(config_error(
                "cache-dir",
                "the path is empty; remove the key to use `.imagegen`".into(),
            ));
        }

        let assets_dir = raw.assets_dir.unwrap_or_else(|| "imagegen".to_owned());
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

        let max_concurrency = raw.max_concurrency.unwrap_or(4);
        if !(1..=MAX_CONCURRENCY_LIMIT).contains(&max_concurrency) {
            return Err(config_error(
                "max-concurrency",
                format!("{max_concurrency} is out of range; use 1 to {MAX_CONCURRENCY_LIMIT}"),
            ));
        }

        let default_size = match raw.size {
            None => Size::default(),
            Some(text) => text.parse().map_err(|e| config_error("size", e))?,
        };

        for (name, text) in &raw.styles {
            if text.trim().is_empty() {
                return Err(config_error(
                    &format!("styles.{name}"),
                    "the style is empty; write the words it adds to the prompt".into(),
                ));
            }
        }

        Ok(Config {
            default_profile,
            profiles,
            cache_dir,
            assets_dir,
            on_error,
            offline: raw.offline.unwrap_or(false),
            max_concurrency,
            default_size,
            styles: raw.styles,
        })
    }
}

/// Formats names as a comma-separated list of code spans.
pub(crate) fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
