//! Small, real images, and what a provider's answer carries them in.

use std::io::Cursor;

use base64::Engine as _;
use image::ImageFormat;

/// A small, real PNG.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, [200, 120, 40], ImageFormat::Png)
}

/// A small, real JPEG.
pub(crate) fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, [10, 20, 30], ImageFormat::Jpeg)
}

/// A PNG with an alpha channel, transparent on its left half: an edit's mask.
pub(crate) fn mask_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba([0, 0, 0, if x < width / 2 { 0 } else { 255 }])
    });
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

fn encoded(width: u32, height: u32, colour: [u8; 3], format: ImageFormat) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb(colour));
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// CRC-32 as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG whose header claims another size (with a valid CRC): a decompression bomb's shape.
pub(crate) fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut giant = png(8, 8);
    giant[16..20].copy_from_slice(&width.to_be_bytes());
    giant[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&giant[12..29]);
    giant[29..33].copy_from_slice(&crc.to_be_bytes());
    giant
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
