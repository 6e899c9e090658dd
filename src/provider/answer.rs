//! What a provider's answer must pass to become a master: a complete image of sane size (a
//! full decode under memory limits), or an SVG that can be sanitized.

use std::io::Cursor;

use super::{Fault, FaultKind, ImageFormat, MAX_DECODE_BYTES, MAX_MASTER_BYTES, MAX_SIDE};

/// What a master is kept as: a raster image after [`check`], or an SVG after it is sanitized
/// (its bytes are the sanitized document, never the answer as it came).
pub(crate) fn accept(bytes: Vec<u8>) -> Result<(Vec<u8>, ImageFormat, u32, u32), String> {
    if bytes.len() <= MAX_MASTER_BYTES && crate::svg::looks_like_svg(&bytes) {
        let svg = crate::svg::sanitize(&bytes)?;
        return Ok((svg.bytes, ImageFormat::Svg, svg.width, svg.height));
    }
    let (format, width, height) = check(&bytes)?;
    Ok((bytes, format, width, height))
}

/// Checks that bytes are a complete image we can serve, of sane dimensions: the header first,
/// then a full decode under memory limits, so that a truncated file or a decompression bomb is
/// an error and never a master. An SVG passes when it can be sanitized: whatever else it holds,
/// only its sanitized form ever reaches a page (see `verify` for one that was not stored
/// sanitized).
pub(crate) fn check(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), String> {
    if bytes.len() > MAX_MASTER_BYTES {
        return Err(format!(
            "an image of {} MB; the limit is {} MB",
            bytes.len() >> 20,
            MAX_MASTER_BYTES >> 20
        ));
    }
    let (format, width, height) = inspect(bytes)?;
    if format == ImageFormat::Svg {
        // `inspect` sanitized it to read its size.
        return Ok((format, width, height));
    }
    // Several images are checked at once: together they stay within the memory budget.
    let _memory = crate::memory::reserve(crate::memory::decode_cost(width, height));
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Svg => unreachable!("SVG is checked above"),
    });
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| format!("a damaged or truncated image ({e})"))?;
    Ok((format, width, height))
}

/// Reads an image's format and dimensions from its header, refusing what is not an image we
/// can serve or is implausibly large.
pub(crate) fn inspect(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), String> {
    if crate::svg::looks_like_svg(bytes) {
        let svg = crate::svg::sanitize(bytes)?;
        return Ok((ImageFormat::Svg, svg.width, svg.height));
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable bytes ({e})"))?;
    let format = match reader.format() {
        Some(image::ImageFormat::Png) => ImageFormat::Png,
        Some(image::ImageFormat::Jpeg) => ImageFormat::Jpeg,
        Some(image::ImageFormat::WebP) => ImageFormat::Webp,
        Some(other) => return Err(format!("an image in an unsupported format ({other:?})")),
        None => return Err(format!("{} bytes that are not an image", bytes.len())),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("a damaged image ({e})"))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "an image of {width}x{height} pixels; sides must be 1 to {MAX_SIDE}"
        ));
    }
    Ok((format, width, height))
}

/// Decodes standard base64, as every JSON API sends images.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, Fault> {
    use base64::Engine as _;
    // Some servers send a data URL rather than bare base64.
    let text = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map_or(rest, |(_, data)| data),
        None => text,
    };
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            Fault::new(
                FaultKind::BadImage,
                format!("damaged base64 image data ({e})"),
            )
        })
}
