//! The encoders, each with fixed settings so that the same pixels always give the same bytes:
//! libwebp (lossy), libjpeg-turbo through mozjpeg (progressive, optimised Huffman tables), rav1e
//! through ravif (AVIF)
//! and oxipng (lossless PNG). Every encoder runs on the calling thread; images are spread over
//! the cores one level up.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::pixels::Pixels;
use super::settings::Format;
use super::xmp;

/// libwebp's effort, 0–6: 5 keeps most of method 6's savings at a fraction of its time.
const WEBP_METHOD: i32 = 5;
/// rav1e's speed, 1 (slowest) to 10. On 1024² images 9 is 2.3× faster than 7 for 2–3 % more
/// bytes at the same SSIMULACRA2 score; 10 is 2.6× faster again but costs 10 % more bytes.
const AVIF_SPEED: u8 = 9;
/// oxipng's preset, 0–6.
const PNG_PRESET: u8 = 2;

/// The settings of every encoder, as text; part of each derived file's name, so that changing
/// an encoder setting (or the encoder) makes new files.
pub(crate) const ENCODERS: &str = "webp=libwebp-m5;jpeg=libjpeg-turbo-progressive;\
     avif=rav1e-s9-10bit;png=oxipng-2;resize=lanczos3;v1";

/// Encodes pixels, with the XMP packet when one is given (AVIF files carry none).
pub(crate) fn encode(
    pixels: &Pixels,
    format: Format,
    quality: u8,
    xmp: Option<&str>,
) -> Result<Vec<u8>, String> {
    match format {
        Format::Webp => webp(pixels, quality, xmp),
        Format::Jpeg => jpeg(pixels, quality, xmp),
        Format::Avif => avif(pixels, quality),
        Format::Png => png(pixels, xmp),
        Format::Svg => Err("pixels are never encoded as SVG".to_owned()),
    }
}

fn webp(pixels: &Pixels, quality: u8, xmp: Option<&str>) -> Result<Vec<u8>, String> {
    let encoder = if pixels.alpha {
        webp::Encoder::from_rgba(&pixels.data, pixels.width, pixels.height)
    } else {
        webp::Encoder::from_rgb(&pixels.data, pixels.width, pixels.height)
    };
    let mut config =
        webp::WebPConfig::new().map_err(|()| "libwebp rejected its configuration".to_owned())?;
    config.quality = f32::from(quality);
    config.method = WEBP_METHOD;
    config.thread_level = 0;
    let memory = encoder
        .encode_advanced(&config)
        .map_err(|e| format!("the WebP encoder failed: {e:?}"))?;
    let bytes = memory.to_vec();
    match xmp {
        Some(packet) => xmp::webp_with_xmp(&bytes, pixels.width, pixels.height, packet)
            .ok_or_else(|| "the WebP encoder wrote an unexpected file".to_owned()),
        None => Ok(bytes),
    }
}

fn jpeg(pixels: &Pixels, quality: u8, xmp: Option<&str>) -> Result<Vec<u8>, String> {
    if pixels.alpha {
        return Err("JPEG cannot keep transparency".to_owned());
    }
    // mozjpeg reports errors by panicking.
    catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Vec<u8>> {
        // libjpeg-turbo's quantisation (the Annex K tables, no trellis) rather than mozjpeg's:
        // trellis saves 15–20 % of the bytes at quality 80 but smears pixel art and hard edges
        // (the worst SSIMULACRA2 score of the benchmark corpus fell from 69 to 60) and takes 8×
        // the time. The fallback is for old browsers and e-books; it should look right first.
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        compress.set_fastest_defaults();
        compress.set_size(pixels.width as usize, pixels.height as usize);
        compress.set_quality(f32::from(quality));
        compress.set_progressive_mode();
        compress.set_optimize_coding(true);
        let mut started = compress.start_compress(Vec::with_capacity(pixels.data.len() / 8))?;
        if let Some(packet) = xmp {
            started.write_marker(mozjpeg::Marker::APP(1), &xmp::jpeg_app1(packet));
        }
        started.write_scanlines(&pixels.data)?;
        started.finish()
    }))
    .map_err(|_| "the JPEG encoder failed".to_owned())?
    .map_err(|e| format!("the JPEG encoder failed: {e}"))
}

fn avif(pixels: &Pixels, quality: u8) -> Result<Vec<u8>, String> {
    let encoder = ravif::Encoder::new()
        .with_quality(f32::from(quality))
        .with_speed(AVIF_SPEED)
        .with_num_threads(Some(1));
    let (width, height) = (pixels.width as usize, pixels.height as usize);
    let encoded = if pixels.alpha {
        let rgba: Vec<ravif::RGBA8> = pixels
            .data
            .chunks_exact(4)
            .map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3]))
            .collect();
        encoder.encode_rgba(ravif::Img::new(rgba.as_slice(), width, height))
    } else {
        let rgb: Vec<ravif::RGB8> = pixels
            .data
            .chunks_exact(3)
            .map(|p| ravif::RGB8::new(p[0], p[1], p[2]))
            .collect();
        encoder.encode_rgb(ravif::Img::new(rgb.as_slice(), width, height))
    };
    encoded
        .map(|e| e.avif_file)
        .map_err(|e| format!("the AVIF encoder failed: {e}"))
}

fn png(pixels: &Pixels, xmp: Option<&str>) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut raw = Vec::new();
    let color = if pixels.alpha {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::codecs::png::PngEncoder::new_with_quality(
        &mut raw,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels.data, pixels.width, pixels.height, color)
    .map_err(|e| format!("the PNG encoder failed: {e}"))?;
    let mut options = oxipng::Options::from_preset(PNG_PRESET);
    options.strip = oxipng::StripChunks::All;
    let optimized = oxipng::optimize_from_memory(&raw, &options)
        .map_err(|e| format!("the PNG optimiser failed: {e}"))?;
    Ok(match xmp {
        Some(packet) => xmp::png_with_xmp(&optimized, packet),
        None => optimized,
    })
}
