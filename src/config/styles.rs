//! Named prompt presets: `[preprocessor.imagegen.styles]` (the words each adds to the prompt and
//! the negative prompt, and its reference images) and the book's default `style`, with `none` as
//! the word by which a directive opts out.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Invalid, RawConfig};

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

/// A style is either the words it adds, or a table with a negative prompt too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawStyle {
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

/// The word a directive's `style` takes to use no style, not even the book's default.
pub(crate) const NO_STYLE: &str = "none";

/// The book's named styles (words added to the prompt and to the negative prompt, reference
/// images) and the default style.
pub(super) type Styles = (BTreeMap<String, Style>, Option<String>);

/// The book's named styles and its default style.
pub(super) fn styles(raw: &mut RawConfig) -> std::result::Result<Styles, Invalid> {
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
