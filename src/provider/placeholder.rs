//! The `placeholder` provider: a keyless, offline, deterministic image of the requested size.
//!
//! It draws a tinted card with a crossed frame, the word PLACEHOLDER, the size, and the start
//! of the prompt, so a draft shows real layout while making plain that no image was generated.
//! The tint comes from the prompt, so neighbouring placeholders differ. The same request always
//! gives the same bytes.

use std::io::Cursor;

use font8x8::UnicodeFonts;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, Rgb, RgbImage};

use super::Generated;
use crate::request::{RefImage, Request};

/// How many lines of the prompt are shown at most.
const PROMPT_LINES: usize = 4;

/// Draws the placeholder for a request and encodes it as PNG. A dark twin is the light image
/// (its reference, for an edit; else the card drawn anew) with every pixel's lightness turned
/// over, hue and saturation kept: a dark stand-in of the same picture.
pub(crate) fn generate(request: &Request) -> Generated {
    let (width, height) = (request.size.width, request.size.height);
    let canvas = match &request.dark_of {
        None => draw(request),
        Some(_) => {
            let light = (request.references.iter())
                .find(|r| request.dark_of.as_ref() == Some(&r.hash))
                .and_then(|light| decode(&light.bytes))
                .map(|light| {
                    if light.dimensions() == (width, height) {
                        return light;
                    }
                    image::imageops::resize(
                        &light,
                        width,
                        height,
                        image::imageops::FilterType::Triangle,
                    )
                });
            let mut canvas = light.unwrap_or_else(|| draw(request));
            turn_over(&mut canvas);
            canvas
        }
    };
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(
        Cursor::new(&mut bytes),
        CompressionType::Fast,
        FilterType::Sub,
    )
    .write_image(
        canvas.as_raw(),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .expect("encoding a PNG into memory cannot fail");

    Generated {
        bytes,
        cost_usd: Some(0.0),
        provenance: super::Provenance::default(),
    }
}

/// Every pixel's HSL lightness turned over (`L` to `1 - L`), its hue and chroma kept: adding
/// `255 - max - min` to each channel maps the largest to `255 - min` and the smallest to
/// `255 - max`, and keeps their order.
fn turn_over(canvas: &mut RgbImage) {
    for pixel in canvas.pixels_mut() {
        let [r, g, b] = pixel.0;
        let shift = 255 - i16::from(r.max(g).max(b)) - i16::from(r.min(g).min(b));
        let channel = |c: u8| (i16::from(c) + shift).clamp(0, 255) as u8;
        *pixel = Rgb([channel(r), channel(g), channel(b)]);
    }
}

/// The card of a request: a tinted ground, a crossed frame, the words and the references.
fn draw(request: &Request) -> RgbImage {
    let (width, height) = (request.size.width, request.size.height);
    // Each candidate of a directive's variants gets its own tint.
    let tint = (tint_of(&request.prompt) + request.candidate as f32 * 47.0) % 360.0;
    let background = hsl(tint, 0.35, 0.90);
    let frame = hsl(tint, 0.30, 0.72);
    let ink = hsl(tint, 0.30, 0.22);

    let mut canvas = RgbImage::from_pixel(width, height, background);
    let unit = (width.min(height.saturating_mul(3) / 2) / 400).max(1);
    draw_frame(&mut canvas, frame, unit * 2);

    let title_scale = unit * 3;
    let body_scale = unit * 2;
    let columns = ((width as usize * 17 / 20) / (8 * body_scale as usize)).max(4);
    let mut body = wrap(&request.prompt, columns, PROMPT_LINES);
    body.insert(0, String::new());
    body.insert(0, format!("{} x {}", width, height));
    if request.candidate > 0 {
        body.insert(0, format!("candidate {}", request.candidate + 1));
    }
    if !request.references.is_empty() {
        let n = request.references.len();
        body.push(format!(
            "from {n} reference{}",
            if n == 1 { "" } else { "s" }
        ));
    }

    let title = "PLACEHOLDER";
    let line_gap = unit * 4;
    let block_height =
        8 * title_scale + line_gap * 2 + body.len() as u32 * (8 * body_scale + line_gap);
    let widest = body
        .iter()
        .map(|l| l.chars().count() as u32 * 8 * body_scale)
        .chain([title.len() as u32 * 8 * title_scale])
        .max()
        .unwrap_or(0);

    // A plain panel behind the text keeps it legible over the crossed frame.
    let pad = unit * 8;
    let panel_w = (widest + pad * 2).min(width);
    let panel_h = (block_height + pad * 2).min(height);
    let panel_x = (width - panel_w) / 2;
    let panel_y = (height - panel_h) / 2;
    fill(&mut canvas, panel_x, panel_y, panel_w, panel_h, background);

    let mut y = height.saturating_sub(block_height) / 2;
    draw_text_centered(&mut canvas, title, y, title_scale, ink);
    y += 8 * title_scale + line_gap * 2;
    for line in &body {
        draw_text_centered(&mut canvas, line, y, body_scale, ink);
        y += 8 * body_scale + line_gap;
    }

    draw_references(&mut canvas, &request.references, unit, frame);
    canvas
}

/// Small copies of the reference images in a row along the bottom, so that a draft shows what
/// each image was made from. One that does not decode within bounds is an empty box.
fn draw_references(canvas: &mut RgbImage, references: &[RefImage], unit: u32, edge: Rgb<u8>) {
    if references.is_empty() {
        return;
    }
    let (width, height) = canvas.dimensions();
    let gap = unit * 4;
    let side = (height / 5)
        .min((width.saturating_sub(gap) / references.len() as u32).saturating_sub(gap))
        .max(1);
    let total = references.len() as u32 * (side + gap) - gap;
    let mut x = width.saturating_sub(total) / 2;
    let y = height.saturating_sub(side + gap * 2);
    for reference in references {
        fill(
            canvas,
            x.saturating_sub(unit),
            y.saturating_sub(unit),
            side + unit * 2,
            side + unit * 2,
            edge,
        );
        if let Some(thumb) = thumbnail(&reference.bytes, side) {
            let (tw, th) = thumb.dimensions();
            image::imageops::replace(
                canvas,
                &thumb,
                i64::from(x + (side - tw) / 2),
                i64::from(y + (side - th) / 2),
            );
        }
        x += side + gap;
    }
}

/// A reference decoded (at most 64 MiB) and shrunk to fit a `side`-pixel square.
fn thumbnail(bytes: &[u8], side: u32) -> Option<RgbImage> {
    let decoded = image::DynamicImage::ImageRgb8(decode(bytes)?);
    Some(decoded.thumbnail(side, side).to_rgb8())
}

/// An image decoded within 64 MiB.
fn decode(bytes: &[u8]) -> Option<RgbImage> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(64 << 20);
    reader.limits(limits);
    Some(reader.decode().ok()?.to_rgb8())
}

/// A hue from 0 to 360 taken from the prompt.
fn tint_of(prompt: &str) -> f32 {
    let hash = blake3::hash(prompt.as_bytes());
    let n = u16::from_le_bytes([hash.as_bytes()[0], hash.as_bytes()[1]]);
    f32::from(n) / f32::from(u16::MAX) * 360.0
}

/// An sRGB colour from hue (degrees), saturation and lightness (0 to 1).
fn hsl(hue: f32, saturation: f32, lightness: f32) -> Rgb<u8> {
    let chroma = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let h = hue / 60.0;
    let x = chroma * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = lightness - chroma / 2.0;
    let channel = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb([channel(r), channel(g), channel(b)])
}

/// A border and both diagonals, the usual sign of an image still to come.
fn draw_frame(canvas: &mut RgbImage, colour: Rgb<u8>, thickness: u32) {
    let (w, h) = canvas.dimensions();
    let t = thickness.min(w / 2).min(h / 2).max(1);
    fill(canvas, 0, 0, w, t, colour);
    fill(canvas, 0, h - t, w, t, colour);
    fill(canvas, 0, 0, t, h, colour);
    fill(canvas, w - t, 0, t, h, colour);
    let steps = w.max(h);
    let half = t.div_ceil(2);
    for i in 0..steps {
        let x = u64::from(i) * u64::from(w) / u64::from(steps);
        let y = u64::from(i) * u64::from(h) / u64::from(steps);
        let (x, y) = (x as u32, y as u32);
        fill(canvas, x.saturating_sub(half), y, t, 1, colour);
        fill(canvas, (w - 1 - x).saturating_sub(half), y, t, 1, colour);
    }
}

/// Fills a rectangle, clipped to the canvas.
fn fill(canvas: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Rgb<u8>) {
    let (cw, ch) = canvas.dimensions();
    for py in y..(y.saturating_add(h)).min(ch) {
        for px in x..(x.saturating_add(w)).min(cw) {
            canvas.put_pixel(px, py, colour);
        }
    }
}

/// Draws one line of text, centred horizontally, each font pixel a `scale`-sized square.
fn draw_text_centered(canvas: &mut RgbImage, text: &str, y: u32, scale: u32, ink: Rgb<u8>) {
    let advance = 8 * scale;
    let width = text.chars().count() as u32 * advance;
    let mut x = canvas.width().saturating_sub(width) / 2;
    for c in text.chars() {
        let glyph = glyph(c);
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8 {
                if bits & (1 << column) != 0 {
                    fill(
                        canvas,
                        x + column * scale,
                        y + row as u32 * scale,
                        scale,
                        scale,
                        ink,
                    );
                }
            }
        }
        x += advance;
    }
}

/// The 8x8 bitmap of a character, or of `?` when the font lacks it.
fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .or_else(|| font8x8::GREEK_FONTS.get(c))
        .or_else(|| font8x8::BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

/// Wraps text at word boundaries into at most `max_lines` lines of `columns` characters,
/// ending with `...` when it does not fit.
fn wrap(text: &str, columns: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut truncated = false;
    for word in text.split_whitespace() {
        let word: String = word.chars().take(columns).collect();
        let needed =
            current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
        if needed > columns && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
            if lines.len() == max_lines {
                truncated = true;
                break;
            }
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !truncated && !current.is_empty() {
        lines.push(current);
    }
    if truncated && let Some(last) = lines.last_mut() {
        while last.chars().count() + 3 > columns && last.pop().is_some() {}
        last.push_str("...");
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;
    use crate::test_support::books::bare_request;

    fn request(prompt: &str, width: u32, height: u32) -> Request {
        bare_request(
            ProviderKind::Placeholder,
            "placeholder",
            crate::vocab::PLACEHOLDER_MODEL,
            prompt,
            (width, height),
        )
    }

    #[test]
    fn draws_a_png_of_the_requested_size() {
        let generated = generate(&request("A lighthouse on a cliff", 320, 200));
        let image = image::load_from_memory(&generated.bytes).unwrap();
        assert_eq!((image.width(), image.height()), (320, 200));
        assert_eq!(generated.cost_usd, Some(0.0));
    }

    #[test]
    fn a_dark_twin_turns_the_light_image_over() {
        let light = request("A lighthouse", 64, 32);
        let light_png = generate(&light).bytes;
        let mut twin = request("make it dark", 64, 32);
        twin.dark_of = Some("a".repeat(64));
        twin.references = vec![RefImage {
            label: "(the light image)".into(),
            hash: "a".repeat(64),
            media_type: "image/png",
            bytes: std::sync::Arc::new(light_png.clone()),
            path: Default::default(),
        }];
        let decode = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgb8();
        let (light, dark) = (decode(&light_png), decode(&generate(&twin).bytes));
        assert_eq!(dark.dimensions(), (64, 32));
        let lightness = |p: &Rgb<u8>| {
            u16::from(*p.0.iter().max().unwrap()) + u16::from(*p.0.iter().min().unwrap())
        };
        for (l, d) in light.pixels().zip(dark.pixels()) {
            assert!((i32::from(lightness(l)) + i32::from(lightness(d)) - 510).abs() <= 2);
        }
        // It is dark on the whole.
        let mean = |image: &RgbImage| {
            image.pixels().map(|p| u32::from(lightness(p))).sum::<u32>() / (64 * 32)
        };
        assert!(
            mean(&light) > 330 && mean(&dark) < 180,
            "{} {}",
            mean(&light),
            mean(&dark)
        );
        // Without a light image to turn over, the card is drawn and turned over.
        twin.references.clear();
        let drawn = decode(&generate(&twin).bytes);
        assert!(mean(&drawn) < 180);
    }

    #[test]
    fn is_deterministic() {
        let a = generate(&request("same prompt", 64, 48));
        let b = generate(&request("same prompt", 64, 48));
        assert_eq!(a.bytes, b.bytes);
    }

    #[test]
    fn survives_the_smallest_sizes_and_any_text() {
        for (w, h) in [(16, 16), (16, 4096), (4096, 16)] {
            let generated = generate(&request(
                "ünïcödé 漢字 emoji 🦀 and a very long prompt",
                w,
                h,
            ));
            assert!(!generated.bytes.is_empty());
        }
    }

    #[test]
    fn wraps_words_and_marks_truncation() {
        assert_eq!(wrap("one two three", 7, 4), ["one two", "three"]);
        assert_eq!(wrap("aa bb cc dd ee", 5, 2), ["aa bb", "cc..."]);
        assert_eq!(wrap("", 10, 3), Vec::<String>::new());
    }
}
