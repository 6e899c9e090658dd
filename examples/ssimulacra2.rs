//! Scores images with SSIMULACRA2, for `scripts/bench-images`.
//!
//! Reads lines of `reference distorted` paths on stdin and prints one score per line. The
//! reference is resized with Lanczos3 to the distorted image's size first. Images with an alpha
//! channel are composited on white first, both of them, so transparent pixels compare as what a
//! reader sees on a white page. Formats the `image` crate cannot read (AVIF) must be converted to
//! PNG, with their alpha, beforehand.

use std::io::{BufRead, Write};

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use fast_ssim2::{PixelDescriptor, PixelSlice, compute_ssimulacra2};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin is readable");
        let Some((reference, distorted)) = line.split_once(' ') else {
            continue;
        };
        let score = score(reference, distorted).unwrap_or(f64::NAN);
        writeln!(stdout, "{score:.3}").expect("stdout is writable");
    }
}

fn score(reference: &str, distorted: &str) -> Option<f64> {
    let reference = on_white(image::open(reference).ok()?);
    let distorted = on_white(image::open(distorted).ok()?);
    let (width, height) = distorted.dimensions();
    let source = Image::from_vec_u8(
        reference.width(),
        reference.height(),
        reference.into_raw(),
        PixelType::U8x3,
    )
    .ok()?;
    let mut resized = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .fit_into_destination(Some((0.5, 0.5)));
    Resizer::new()
        .resize(&source, &mut resized, &options)
        .ok()?;
    let stride = width as usize * 3;
    let a = PixelSlice::new(
        resized.buffer(),
        width,
        height,
        stride,
        PixelDescriptor::RGB8_SRGB,
    )
    .ok()?;
    let b = PixelSlice::new(
        distorted.as_raw(),
        width,
        height,
        stride,
        PixelDescriptor::RGB8_SRGB,
    )
    .ok()?;
    compute_ssimulacra2(&a, &b).ok()
}

/// The image as it looks on a white page.
fn on_white(image: image::DynamicImage) -> image::RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    image::RgbImage::from_fn(width, height, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over =
            |c: u8| ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}
