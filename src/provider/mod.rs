//! Providers: what turns a request into image bytes.
//!
//! The set is closed and dispatched with `match`: every kind lives in its own file and this
//! module checks what comes back, so a provider can never put something that is not an image
//! of sane dimensions into the cache.

pub(crate) mod placeholder;

use std::io::Cursor;
use std::time::{Duration, Instant};

use crate::config::ProviderKind;
use crate::plan::Request;

/// What a provider returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Generated {
    /// The encoded image, exactly as generated.
    pub(crate) bytes: Vec<u8>,
    /// The estimated price of this image in US dollars.
    pub(crate) cost_usd: f64,
}

/// A generated image after its checks, with what was learnt from decoding its header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Master {
    pub(crate) bytes: Vec<u8>,
    pub(crate) format: ImageFormat,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) cost_usd: f64,
    pub(crate) elapsed: Duration,
}

/// The image formats a master may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    Png,
}

impl ImageFormat {
    /// The file extension, without a dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
        }
    }

    /// The media type.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
        }
    }
}

/// Why an image could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What went wrong and what to do, in the provider's words where it gave any.
    pub(crate) message: String,
}

/// The largest side of a master we accept.
const MAX_SIDE: u32 = 8192;

/// Whether a kind calls out to the network (and so is refused when `offline = true`).
pub(crate) fn needs_network(kind: ProviderKind) -> bool {
    match kind {
        ProviderKind::Placeholder => false,
    }
}

/// Whether a kind's masters and records are worth committing. Placeholders cost nothing to
/// draw again, so they stay in the cache's local, git-ignored part.
pub(crate) fn is_committed(kind: ProviderKind) -> bool {
    match kind {
        ProviderKind::Placeholder => false,
    }
}

/// Generates one image and checks it.
pub(crate) fn generate(request: &Request) -> Result<Master, Failure> {
    let started = Instant::now();
    let generated = match request.kind {
        ProviderKind::Placeholder => placeholder::generate(request),
    };
    let elapsed = started.elapsed();
    let (format, width, height) = inspect(&generated.bytes).map_err(|message| Failure {
        message: format!("the `{}` provider returned {message}", request.profile),
    })?;
    Ok(Master {
        bytes: generated.bytes,
        format,
        width,
        height,
        cost_usd: generated.cost_usd,
        elapsed,
    })
}

/// Reads an image's format and dimensions from its header, refusing what is not an image we
/// can serve or is implausibly large.
pub(crate) fn inspect(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), String> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable bytes ({e})"))?;
    let format = match reader.format() {
        Some(image::ImageFormat::Png) => ImageFormat::Png,
        Some(other) => return Err(format!("an image in an unsupported format ({other:?})")),
        None => return Err(format!("{} bytes that are not an image", bytes.len())),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("a broken image ({e})"))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "an image of {width}x{height} pixels; sides must be 1 to {MAX_SIDE}"
        ));
    }
    Ok((format, width, height))
}
