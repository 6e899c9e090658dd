//! `[preprocessor.imagegen.dark]`: a dark twin of each figure, shown instead of the light
//! image when the reader's mdBook theme is dark (see `pipeline::dark`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Invalid, Profile};

/// The instruction a twin is made with when neither the book nor the directive gives one.
pub(crate) const DEFAULT_INSTRUCTION: &str = "The same picture for a dark web page: a dark background, light lines and light text, the same composition, subjects and colours of the subjects; no white or pale background.";

/// mdBook's dark themes, by the class it puts on `<html>`.
pub(crate) const DEFAULT_THEMES: [&str; 3] = ["coal", "navy", "ayu"];

/// How a twin is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DarkMode {
    /// No twin.
    Off,
    /// An edit of the light image with the instruction (the figure's own image is sent).
    Edit,
    /// Generated anew from the prompt with the instruction after it.
    Prompt,
}

/// `[dark]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dark {
    /// The book's mode; a directive's `dark=` overrides it.
    pub(crate) mode: DarkMode,
    /// The instruction, folded to one line.
    pub(crate) instruction: String,
    /// The profile twins are made with; `None`: the figure's own.
    pub(crate) profile: Option<String>,
    /// The classes mdBook puts on `<html>` for the dark themes.
    pub(crate) themes: Vec<String>,
}

impl Default for Dark {
    fn default() -> Dark {
        Dark {
            mode: DarkMode::Off,
            instruction: DEFAULT_INSTRUCTION.to_owned(),
            profile: None,
            themes: DEFAULT_THEMES.map(str::to_owned).to_vec(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawDark {
    mode: Option<String>,
    instruction: Option<String>,
    profile: Option<String>,
    themes: Option<Vec<String>>,
}

/// The longest instruction, in characters (it goes into a prompt).
const MAX_INSTRUCTION_CHARS: usize = 1000;

/// `[dark]`: the defaults (mode off) when absent.
pub(super) fn dark(
    raw: Option<RawDark>,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Dark, Invalid> {
    let mut dark = Dark::default();
    let Some(raw) = raw else {
        return Ok(dark);
    };
    dark.mode = match raw.mode.as_deref() {
        None | Some("off") => DarkMode::Off,
        Some("edit") => DarkMode::Edit,
        Some("prompt") => DarkMode::Prompt,
        Some(other) => {
            return Err((
                "dark.mode".into(),
                format!(
                    "unknown value `{}`; use \"off\" (no dark twin), \"edit\" (the light image edited for a dark page) or \"prompt\" (generated from the prompt with the instruction)",
                    crate::outside::for_terminal(other)
                ),
            ));
        }
    };
    if let Some(text) = raw.instruction {
        let text = crate::vocab::fold_whitespace(&text);
        if text.is_empty() {
            return Err((
                "dark.instruction".into(),
                "is empty; write what makes the picture right for a dark page, or remove the key for the default".into(),
            ));
        }
        if text.chars().count() > MAX_INSTRUCTION_CHARS {
            return Err((
                "dark.instruction".into(),
                format!("is longer than {MAX_INSTRUCTION_CHARS} characters; shorten it"),
            ));
        }
        dark.instruction = text;
    }
    if let Some(name) = raw.profile {
        let Some(profile) = profiles.get(&name) else {
            return Err((
                "dark.profile".into(),
                format!(
                    "names no profile `{}`; define `[preprocessor.imagegen.providers.{0}]`, or remove the key to make each twin with its figure's profile",
                    crate::outside::for_terminal(&name)
                ),
            ));
        };
        if dark.mode == DarkMode::Edit && profile.kind.reference_limit(&profile.model).is_none() {
            return Err((
                "dark.profile".into(),
                format!(
                    "profile `{name}` ({} {}) cannot take an image to edit, and `mode = \"edit\"` sends it the light image; use a profile of one of the kinds {}, or `mode = \"prompt\"`",
                    profile.kind.as_str(),
                    profile.model,
                    crate::vocab::ProviderKind::names_where(|s| s.references.is_some())
                ),
            ));
        }
        dark.profile = Some(name);
    }
    if let Some(themes) = raw.themes {
        dark.themes = themes_of(themes)?;
    }
    Ok(dark)
}

/// `dark.themes`, checked: class names this tool writes into a selector as they are.
fn themes_of(themes: Vec<String>) -> Result<Vec<String>, Invalid> {
    if themes.is_empty() {
        return Err((
            "dark.themes".into(),
            "is empty; list the classes mdBook puts on `<html>` for dark themes, such as [\"coal\", \"navy\", \"ayu\"]".into(),
        ));
    }
    if let Some(bad) = themes.iter().find(|t| !is_class(t)) {
        return Err((
            "dark.themes".into(),
            format!(
                "`{}` is not a theme class; use letters, digits, `-` and `_` only, as in \"coal\"",
                crate::outside::for_terminal(bad)
            ),
        ));
    }
    Ok(themes)
}

/// Whether `text` is a CSS class name this tool writes into a selector as it is.
fn is_class(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !text.starts_with(|c: char| c.is_ascii_digit() || c == '-')
}
