//! The words every stage shares: provider kinds and their specs (`kind.rs`), image sizes, qualities and their settings, the
//! media types of the files the tool writes, and two small text helpers. It imports nothing of
//! ours, so any module may use it without making a cycle.

use std::fmt;
use std::str::FromStr;

mod kind;

pub(crate) use kind::{
    BaseUrl, DescribeWire, Key, MAX_REFERENCES, Negative, PLACEHOLDER_MODEL, ProviderKind,
};

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

/// A size as a directive or `book.toml` gives it: exact, or `auto`, which lets a model that
/// chooses its own size do so (OpenAI's GPT image models). A model that does not choose is
/// asked for [`Size::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeSetting {
    Auto,
    Exact(Size),
}

impl FromStr for SizeSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "auto" {
            return Ok(SizeSetting::Auto);
        }
        text.parse()
            .map(SizeSetting::Exact)
            .map_err(|e: String| format!("{e}, or `auto` to let the model choose"))
    }
}

/// Every quality a directive or profile may name.
pub(crate) const QUALITIES: [&str; 6] = ["auto", "low", "medium", "high", "xhigh", "max"];
/// The values of `background`.
pub(crate) const BACKGROUNDS: [&str; 3] = ["transparent", "opaque", "auto"];
/// The values of `moderation`.
pub(crate) const MODERATIONS: [&str; 2] = ["low", "auto"];
/// The values of `output-format` (`svg` only where the model answers in SVG).
pub(crate) const OUTPUT_FORMATS: [&str; 4] = ["png", "jpeg", "webp", "svg"];

/// Every file type the tool reads or writes, by extension: its media type, and whether a master
/// may have it. The one table of media types.
const MEDIA_TYPES: [(&str, &str, bool); 6] = [
    ("png", "image/png", true),
    ("jpg", "image/jpeg", true),
    ("webp", "image/webp", true),
    ("svg", "image/svg+xml", true),
    ("avif", "image/avif", false),
    ("json", "application/json", false),
];

/// The media type of a file by its name's extension (`jpeg` counts as `jpg`).
pub(crate) fn media_type_of(name: &str) -> &'static str {
    let extension = match name.rsplit('.').next().unwrap_or("") {
        "jpeg" => "jpg",
        other => other,
    };
    MEDIA_TYPES
        .iter()
        .find(|(e, _, _)| *e == extension)
        .map_or("application/octet-stream", |(_, t, _)| t)
}

/// The media type a master is stored under in a remote store: its own, but an SVG's is
/// withheld (`application/octet-stream`), so that a bucket served to browsers never serves a
/// master that a pull request may have crafted as a page that runs.
pub(crate) fn master_object_type(name: &str) -> &'static str {
    match media_type_of(name) {
        "image/svg+xml" => "application/octet-stream",
        other => other,
    }
}

/// The extension a file of this media type is named with (`bin` for an unknown type).
pub(crate) fn extension_of(media_type: &str) -> &'static str {
    MEDIA_TYPES
        .iter()
        .find(|(_, t, _)| *t == media_type)
        .map_or("bin", |(e, _, _)| e)
}

/// Whether a master's file may have this extension.
pub(crate) fn is_master_extension(extension: &str) -> bool {
    MEDIA_TYPES
        .iter()
        .any(|(e, _, master)| *master && *e == extension)
}

/// Whether a web file may have this extension: any image type.
pub(crate) fn is_image_extension(extension: &str) -> bool {
    MEDIA_TYPES
        .iter()
        .any(|(e, t, _)| *e == extension && t.starts_with("image/"))
}

/// Whether a master may have this media type.
pub(crate) fn is_master_type(media_type: &str) -> bool {
    MEDIA_TYPES
        .iter()
        .any(|(_, t, master)| *master && *t == media_type)
}

/// Formats names as a comma-separated list of code spans.
pub(crate) fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Folds every run of white space to one space and trims the ends, so that re-wrapping a prompt
/// does not change what is sent.
/// Whether `text` is exactly `len` lowercase hex digits, as the cache names things.
pub(crate) fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance in characters: "did you mean" hints on short words, and drawn text
/// against the text asked for.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
