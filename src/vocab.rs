//! The words every stage shares: provider kinds, image sizes, qualities and their settings, the
//! media types of the files the tool writes, and two small text helpers. It imports nothing of
//! ours, so any module may use it without making a cycle.

use std::fmt;
use std::str::FromStr;

/// The model name placeholder images are recorded with. Change it when the drawing changes, so
/// cached placeholders are drawn again.
pub(crate) const PLACEHOLDER_MODEL: &str = "placeholder-1";

/// The provider implementations this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    /// Draws a labelled placeholder image locally.
    Placeholder,
    /// OpenAI's Images API.
    OpenAi,
    /// A server that speaks OpenAI's Images API (stable-diffusion.cpp, LocalAI, Together, …).
    OpenAiCompatible,
    /// Google's Gemini API, `generateContent` with an image response.
    Gemini,
    /// Stability AI's v2beta stable-image API.
    Stability,
    /// The AUTOMATIC1111 / Forge web UI API, `/sdapi/v1/txt2img`.
    Automatic1111,
    /// A program the user configures.
    Command,
    /// Black Forest Labs' FLUX API: submit, poll, download.
    Bfl,
    /// OpenRouter's chat completions with image output: one key for many models.
    OpenRouter,
    /// Recraft's image API, whose vector models answer in SVG.
    Recraft,
}

impl ProviderKind {
    /// The name used in `book.toml`, records and cache keys.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Placeholder => "placeholder",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai-compatible",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Stability => "stability",
            ProviderKind::Automatic1111 => "automatic1111",
            ProviderKind::Command => "command",
            ProviderKind::Bfl => "bfl",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::Recraft => "recraft",
        }
    }

    /// The model used when a profile names none; `None` when the user must name it (the model
    /// is part of the cache key, and only the user knows what a local server runs).
    pub(crate) fn default_model(self) -> Option<&'static str> {
        match self {
            ProviderKind::Placeholder => Some(PLACEHOLDER_MODEL),
            ProviderKind::OpenAi => Some("gpt-image-2"),
            ProviderKind::Gemini => Some("gemini-3.1-flash-image"),
            ProviderKind::Stability => Some("core"),
            ProviderKind::Bfl => Some("flux-2-pro"),
            ProviderKind::Recraft => Some("recraftv3"),
            // One key reaches hundreds of models: the author names the one they chose.
            ProviderKind::OpenRouter
            | ProviderKind::OpenAiCompatible
            | ProviderKind::Automatic1111
            | ProviderKind::Command => None,
        }
    }

    /// Where the API lives when a profile gives no `base-url`; empty when it must be given.
    pub(crate) fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            ProviderKind::Stability => "https://api.stability.ai",
            ProviderKind::Automatic1111 => "http://127.0.0.1:7860",
            ProviderKind::Bfl => "https://api.bfl.ai/v1",
            ProviderKind::OpenRouter => "https://openrouter.ai/api/v1",
            ProviderKind::Recraft => "https://external.api.recraft.ai/v1",
            ProviderKind::Placeholder | ProviderKind::OpenAiCompatible | ProviderKind::Command => {
                ""
            }
        }
    }

    /// The environment variables read for the key when a profile gives no `api-key-env`.
    pub(crate) fn default_key_env(self) -> &'static [&'static str] {
        match self {
            ProviderKind::OpenAi => &["OPENAI_API_KEY"],
            ProviderKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            ProviderKind::Stability => &["STABILITY_API_KEY"],
            ProviderKind::Bfl => &["BFL_API_KEY"],
            ProviderKind::OpenRouter => &["OPENROUTER_API_KEY"],
            ProviderKind::Recraft => &["RECRAFT_API_KEY"],
            ProviderKind::Placeholder
            | ProviderKind::OpenAiCompatible
            | ProviderKind::Automatic1111
            | ProviderKind::Command => &[],
        }
    }

    /// The settings a profile of this kind may have besides the common ones, and that are part
    /// of the cache key.
    pub(crate) fn params(self) -> &'static [&'static str] {
        match self {
            ProviderKind::OpenAi => &["background", "moderation", "output-format"],
            ProviderKind::OpenAiCompatible => &["background", "output-format", "steps"],
            ProviderKind::Gemini => &[],
            ProviderKind::Stability => &["style-preset", "output-format", "cfg-scale"],
            ProviderKind::Automatic1111 => &["steps", "cfg-scale", "sampler", "scheduler"],
            ProviderKind::Bfl => &["output-format", "steps", "cfg-scale"],
            ProviderKind::OpenRouter | ProviderKind::Recraft => &[],
            ProviderKind::Placeholder | ProviderKind::Command => &[],
        }
    }

    /// Whether a request of this kind sends a quality. Only those kinds have it in their cache
    /// key, so that `quality="high"` on a directive for a provider that has no such setting
    /// never pays for an identical image.
    pub(crate) fn sends_quality(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenAi
                | ProviderKind::OpenAiCompatible
                | ProviderKind::Command
                | ProviderKind::Placeholder
        )
    }

    /// Whether the kind asks a model for its images: every kind but the placeholder. Such images
    /// cost time or money to make again, so they are committed with the cache, count against
    /// budgets, stand in for one another in a fallback chain, and are what `offline = true`
    /// forbids making.
    pub(crate) fn is_model(self) -> bool {
        self != ProviderKind::Placeholder
    }

    pub(crate) const ALL: [ProviderKind; 10] = [
        ProviderKind::Placeholder,
        ProviderKind::OpenAi,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Gemini,
        ProviderKind::Stability,
        ProviderKind::Automatic1111,
        ProviderKind::Command,
        ProviderKind::Bfl,
        ProviderKind::OpenRouter,
        ProviderKind::Recraft,
    ];
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

/// Every quality a directive or profile may name.
pub(crate) const QUALITIES: [&str; 6] = ["auto", "low", "medium", "high", "xhigh", "max"];
/// The values of `background`.
pub(crate) const BACKGROUNDS: [&str; 3] = ["transparent", "opaque", "auto"];
/// The values of `moderation`.
pub(crate) const MODERATIONS: [&str; 2] = ["low", "auto"];
/// The values of `output-format`.
pub(crate) const OUTPUT_FORMATS: [&str; 3] = ["png", "jpeg", "webp"];

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
