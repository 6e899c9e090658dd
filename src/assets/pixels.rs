//! Decoding a master into 8-bit sRGB pixels, and resizing them.

use std::io::Cursor;

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The largest side a master may have.
pub(crate) const MAX_SIDE: u32 = 8192;
/// The most memory one decode may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decoded pixels: tightly packed RGB or RGBA rows, 8 bits per sample, sRGB.
#[derive(Clone)]
pub(crate) struct Pixels {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Whether the samples are RGBA (some pixel is not opaque) rather than RGB.
    pub(crate) alpha: bool,
    pub(crate) data: Vec<u8>,
}

impl Pixels {
    pub(crate) fn channels(&self) -> usize {
        if self.alpha { 4 } else { 3 }
    }
}

/// Renders an SVG master `width` pixels wide (see [`crate::svg::rasterize`]), dropping an alpha
/// channel that is opaque everywhere.
pub(crate) fn rasterize(svg: &[u8], width: u32) -> Result<Pixels, String> {
    let (width, height, data) = crate::svg::rasterize(svg, width.min(MAX_SIDE))?;
    Ok(without_opaque_alpha(width, height, data))
}

/// RGBA pixels, or RGB ones when every pixel is opaque.
fn without_opaque_alpha(width: u32, height: u32, mut data: Vec<u8>) -> Pixels {
    let alpha = data.chunks_exact(4).any(|px| px[3] != 255);
    if !alpha {
        data = data
            .chunks_exact(4)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
    }
    Pixels {
        width,
        height,
        alpha,
        data,
    }
}

/// Decodes a raster master under hard limits, applies its EXIF orientation, converts it to
/// sRGB when it carries another ICC profile, and drops an alpha channel that is opaque
/// everywhere. (An SVG master is rendered with [`rasterize`].)
pub(crate) fn decode(bytes: &[u8]) -> Result<Pixels, String> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    let orientation = decoder.orientation().ok();
    let icc = decoder.icc_profile().ok().flatten();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode the image: {e}"))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let has_alpha = image.color().has_alpha();
    let (width, height) = (image.width(), image.height());
    let mut data = if has_alpha {
        image.into_rgba8().into_raw()
    } else {
        image.into_rgb8().into_raw()
    };
    if let Some(icc) = icc {
        to_srgb(&icc, has_alpha, &mut data);
    }
    if has_alpha {
        return Ok(without_opaque_alpha(width, height, data));
    }
    Ok(Pixels {
        width,
        height,
        alpha: false,
        data,
    })
}

/// Converts pixels tagged with an ICC profile to sRGB in place. A profile that cannot be read
/// is ignored (the pixels are taken as sRGB, as browsers do).
fn to_srgb(icc: &[u8], alpha: bool, data: &mut [u8]) {
    use moxcms::{ColorProfile, Layout, TransformOptions};
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        tracing::debug!("ignoring an unreadable ICC profile");
        return;
    };
    let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
    let target = ColorProfile::new_srgb();
    let Ok(transform) =
        source.create_transform_8bit(layout, &target, layout, TransformOptions::default())
    else {
        tracing::debug!("ignoring an ICC profile that cannot be converted to sRGB");
        return;
    };
    let input = data.to_vec();
    if transform.transform(&input, data).is_err() {
        data.copy_from_slice(&input);
    }
}

/// Resizes to exactly `width` × `height` with Lanczos3 (alpha-aware).
pub(crate) fn resize(pixels: &Pixels, width: u32, height: u32) -> Pixels {
    resize_with(pixels, width, height, false)
}

/// Crops the largest centred box of the shape `width:height` (no resampling: whole pixels are
/// copied).
pub(crate) fn crop_to_shape(pixels: &Pixels, (width, height): (u32, u32)) -> Pixels {
    let (w, h) = (u64::from(pixels.width), u64::from(pixels.height));
    let (shape_w, shape_h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    // The widest box of the shape that fits: full height if the master is wider, else full width.
    let (box_w, box_h) = if w * shape_h > h * shape_w {
        ((h * shape_w + shape_h / 2) / shape_h, h)
    } else {
        (w, (w * shape_h + shape_w / 2) / shape_w)
    };
    let (box_w, box_h) = (box_w.clamp(1, w), box_h.clamp(1, h));
    if (box_w, box_h) == (w, h) {
        return pixels.clone();
    }
    let (left, top) = ((w - box_w) / 2, (h - box_h) / 2);
    let channels = pixels.channels();
    let row = w as usize * channels;
    let mut data = Vec::with_capacity(box_w as usize * box_h as usize * channels);
    for y in top..top + box_h {
        let start = y as usize * row + left as usize * channels;
        data.extend_from_slice(&pixels.data[start..start + box_w as usize * channels]);
    }
    Pixels {
        width: u32::try_from(box_w).expect("no wider than the master"),
        height: u32::try_from(box_h).expect("no taller than the master"),
        alpha: pixels.alpha,
        data,
    }
}

/// Crops the largest centred square and resizes it to `side` × `side`.
pub(crate) fn cover_square(pixels: &Pixels, side: u32) -> Pixels {
    resize_with(pixels, side, side, true)
}

fn resize_with(pixels: &Pixels, width: u32, height: u32, cover: bool) -> Pixels {
    if width == pixels.width && height == pixels.height {
        return pixels.clone();
    }
    let pixel_type = if pixels.alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let source = ImageRef::new(pixels.width, pixels.height, &pixels.data, pixel_type)
        .expect("the buffer matches its size");
    let mut target = FirImage::new(width, height, pixel_type);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&source, &mut target, &options)
        .expect("same pixel type, non-empty sizes");
    Pixels {
        width,
        height,
        alpha: pixels.alpha,
        data: target.into_vec(),
    }
}
