//! Alt text: `alt-text` (from the prompt, or written by a vision model) and
//! `[preprocessor.imagegen.describe]`, the describer: a profile whose kind can read images and the
//! model it describes with. Also `Config`'s id of that describer.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, Invalid, Profile};
use crate::vocab::ProviderKind;

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

impl Config {
    /// The id of the describer whose descriptions figures show (`alt-text = "describe"`).
    pub(crate) fn describer_id(&self) -> Option<String> {
        let with = self.describe.as_ref()?;
        let kind = self.profiles[&with.profile].kind;
        Some(crate::description::describer_id(kind, &with.model))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawDescribe {
    pub(super) profile: String,
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
    pub(super) price: Option<f64>,
}

/// The model of a profile that reads images, for the table `table` (`describe`, `judge`): its
/// `model`, else the profile's, unless that is the kind's default image model, which reads
/// nothing (then the kind's default vision model).
pub(super) fn vision_model(
    table: &str,
    model: Option<String>,
    profile: &Profile,
) -> Result<String, Invalid> {
    Ok(match model.map(|m| m.trim().to_owned()) {
        Some(model) if model.is_empty() => {
            return Err((
                format!("{table}.model"),
                "the model is empty; name a vision model, such as `gpt-6-luna`".into(),
            ));
        }
        Some(model) => model,
        None if Some(profile.model.as_str()) == profile.kind.spec().default_model => profile
            .kind
            .spec()
            .describe
            .and_then(|d| d.default_model)
            .unwrap_or(&profile.model)
            .to_owned(),
        None => profile.model.clone(),
    })
}

/// `alt-text` and `[describe]`: a describer is a profile whose kind can read images; its model
/// is `[describe] model`, else the profile's, unless that is the kind's default image model,
/// which describes nothing (then the kind's default vision model).
pub(super) fn alt_text(
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
                format!(
                    "\"describe\" needs a describer: add `[preprocessor.imagegen.describe]` with `profile = \"NAME\"`, naming a provider profile of kind {}",
                    ProviderKind::names_where(|s| s.describe.is_some())
                ),
            ));
        }
        return Ok(None);
    };
    // Checked either way; used only when descriptions are asked for.
    let with = vision_setup("describe", raw, profiles)?;
    Ok((mode == AltText::Describe).then_some(with))
}

/// A table that names a profile which reads images (`[describe]`, `[judge]`), checked: the
/// profile exists and its kind reads images, the model (see [`vision_model`]), the price.
pub(super) fn vision_setup(
    table: &str,
    raw: RawDescribe,
    profiles: &BTreeMap<String, Profile>,
) -> Result<DescribeWith, Invalid> {
    let kinds = ProviderKind::names_where(|s| s.describe.is_some());
    let profile = profiles.get(&raw.profile).ok_or_else(|| {
        (
            format!("{table}.profile"),
            format!(
                "no profile named `{}`; define `[preprocessor.imagegen.providers.{}]` with a kind that can read images ({kinds})",
                raw.profile, raw.profile
            ),
        )
    })?;
    if profile.kind.spec().describe.is_none() {
        return Err((
            format!("{table}.profile"),
            format!(
                "profile `{}` is of kind `{}`, which cannot read images; use a profile of kind {kinds}",
                raw.profile,
                profile.kind.as_str()
            ),
        ));
    }
    let model = vision_model(table, raw.model, profile)?;
    if let Some(price) = raw.price.filter(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err((
            format!("{table}.price"),
            format!("{price} is not a price in US dollars"),
        ));
    }
    Ok(DescribeWith {
        profile: raw.profile,
        model,
        extra: raw.extra,
        price: raw.price,
    })
}
