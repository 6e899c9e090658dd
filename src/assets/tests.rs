use std::collections::BTreeMap;

use super::*;

/// A smooth RGB gradient with some edges, PNG-encoded.
fn png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let mut image = image::RgbaImage::new(width, height);
    for (x, y, px) in image.enumerate_pixels_mut() {
        let edge = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 0 };
        let a = if alpha && x < width / 4 { 0 } else { 255 };
        *px = image::Rgba([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            128u8.saturating_add(edge),
            a,
        ]);
    }
    let mut out = Vec::new();
    let dynamic = if alpha {
        image::DynamicImage::ImageRgba8(image)
    } else {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(image).into_rgb8())
    };
    dynamic
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn source(bytes: &[u8]) -> Source<'_> {
    Source {
        bytes,
        hash: HASH,
        origin: Origin {
            provider: "openai",
            model: "gpt-image-1",
            by_model: true,
        },
        frame: None,
    }
}

fn small_output() -> Output {
    Output {
        widths: vec![32, 48, 200],
        thumbnail: Some(24),
        ..Output::default()
    }
}

#[test]
fn widths_never_upscale_and_add_the_master_width_when_cut() {
    assert_eq!(plan_widths(1024, &[480, 750, 1024]), [480, 750, 1024]);
    assert_eq!(plan_widths(1024, &[480, 800, 1200]), [480, 800, 1024]);
    assert_eq!(plan_widths(300, &[480, 800]), [300]);
    assert_eq!(plan_widths(2048, &[480, 800]), [480, 800]);
}

#[test]
fn the_default_recipe_makes_webp_widths_a_jpeg_fallback_and_a_thumbnail() {
    let master = png(64, 40, false);
    let derived = derive(&source(&master), &small_output(), &BTreeMap::new()).unwrap();
    let summary: Vec<(Format, Role, u32, u32)> = derived
        .manifest
        .files
        .iter()
        .map(|f| (f.format, f.role, f.width, f.height))
        .collect();
    assert_eq!(
        summary,
        [
            (Format::Webp, Role::Variant, 32, 20),
            (Format::Webp, Role::Variant, 48, 30),
            (Format::Webp, Role::Variant, 64, 40),
            (Format::Jpeg, Role::Fallback, 64, 40),
            (Format::Webp, Role::Thumbnail, 24, 24),
        ]
    );
    for file in &derived.manifest.files {
        let bytes = &derived.files[&file.name];
        assert_eq!(bytes.len() as u64, file.bytes);
        let decoded = image::load_from_memory(bytes).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (file.width, file.height)
        );
        assert!(file.name.starts_with(&HASH[..16]), "{}", file.name);
    }
    assert!(derived.tuned.is_empty());
}

#[test]
fn derivation_is_byte_identical_across_runs() {
    let master = png(64, 40, true);
    let mut output = small_output();
    output.formats = vec![Format::Avif, Format::Webp];
    let first = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    let second = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    assert_eq!(first.manifest, second.manifest);
    assert_eq!(first.files, second.files);
}

#[test]
fn transparency_is_kept_and_a_jpeg_fallback_becomes_png() {
    let master = png(64, 40, true);
    let derived = derive(&source(&master), &small_output(), &BTreeMap::new()).unwrap();
    let fallback = derived.manifest.main_fallback().unwrap();
    assert_eq!(fallback.format, Format::Png);
    let decoded = image::load_from_memory(&derived.files[&fallback.name]).unwrap();
    assert!(decoded.color().has_alpha());
    assert_eq!(decoded.to_rgba8().get_pixel(0, 0)[3], 0);
    let webp = &derived.manifest.sources()[0].1[0];
    let decoded = image::load_from_memory(&derived.files[&webp.name]).unwrap();
    assert!(decoded.color().has_alpha());
}

#[test]
fn every_derived_file_but_avif_says_it_was_made_by_a_model() {
    let master = png(64, 40, false);
    let mut output = small_output();
    output.formats = vec![Format::Avif, Format::Webp];
    let derived = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    for file in &derived.manifest.files {
        let bytes = &derived.files[&file.name];
        let text = String::from_utf8_lossy(bytes);
        let marked = text.contains("trainedAlgorithmicMedia") && text.contains("gpt-image-1");
        assert_eq!(marked, file.format != Format::Avif, "{}", file.name);
    }
    let webp = &derived.files[&derived.manifest.sources()[1].1[0].name];
    assert_eq!(&webp[12..16], b"VP8X");
    assert_eq!(webp[20] & 0x04, 0x04, "the XMP flag is set");

    // Switched off, and never for the placeholder drawing.
    output.provenance = false;
    let plain = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    let mut placeholder = source(&master);
    placeholder.origin.by_model = false;
    let drawn = derive(&placeholder, &small_output(), &BTreeMap::new()).unwrap();
    for derived in [plain, drawn] {
        for bytes in derived.files.values() {
            assert!(!String::from_utf8_lossy(bytes).contains("trainedAlgorithmicMedia"));
        }
    }
}

#[test]
fn metadata_of_the_master_is_not_copied() {
    // A JPEG master with an EXIF segment holding a GPS-looking marker.
    let rgb = image::DynamicImage::ImageRgb8(
        image::DynamicImage::ImageRgba8(
            image::load_from_memory(&png(64, 40, false))
                .unwrap()
                .to_rgba8(),
        )
        .into_rgb8(),
    );
    let mut jpeg = Vec::new();
    rgb.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0SECRET-GPS".to_vec();
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend_from_slice(&[0xFF, 0xE1]);
    with_exif.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    with_exif.append(&mut exif);
    with_exif.extend_from_slice(&jpeg[2..]);
    let derived = derive(&source(&with_exif), &small_output(), &BTreeMap::new()).unwrap();
    for bytes in derived.files.values() {
        assert!(!String::from_utf8_lossy(bytes).contains("SECRET-GPS"));
    }
}

#[test]
fn a_corrupt_master_or_a_decompression_bomb_is_an_error() {
    let mut truncated = png(64, 40, false);
    truncated.truncate(truncated.len() / 2);
    assert!(derive(&source(&truncated), &small_output(), &BTreeMap::new()).is_err());
    assert!(derive(&source(b"not an image"), &small_output(), &BTreeMap::new()).is_err());
    let bomb = crate::test_support::images::png_header(20_000, 20_000);
    let error = derive(&source(&bomb), &small_output(), &BTreeMap::new())
        .err()
        .unwrap();
    assert!(
        error.contains("limit") || error.contains("decode"),
        "{error}"
    );
}

#[test]
fn a_perceptual_target_picks_a_quality_per_format_and_width_and_reuses_it() {
    let master = png(96, 64, false);
    let output = Output {
        widths: vec![96],
        thumbnail: None,
        quality: Quality::Target(45.0),
        ..Output::default()
    };
    let derived = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    assert_eq!(
        derived.tuned.keys().collect::<Vec<_>>(),
        ["jpeg:96", "webp:96"]
    );
    let reference = tune::Reference::new(&pixels::decode(&master).unwrap()).unwrap();
    for file in &derived.manifest.files {
        let score = reference.score(&derived.files[&file.name]).unwrap();
        assert!(score >= 45.0, "{} scored {score}", file.name);
    }
    // A higher floor never chooses a lower quality.
    let stricter = Output {
        quality: Quality::Target(60.0),
        ..output.clone()
    };
    let strict = derive(&source(&master), &stricter, &BTreeMap::new()).unwrap();
    for (key, quality) in &derived.tuned {
        assert!(strict.tuned[key] >= *quality, "{key}");
    }
    // Known qualities skip the search and give the same files.
    let again = derive(&source(&master), &output, &derived.tuned).unwrap();
    assert_eq!(again.files, derived.files);
}

#[test]
fn ids_change_with_the_settings_and_the_provenance() {
    let master = png(8, 8, false);
    let base = derivation_id(
        HASH,
        &source(&master).origin,
        None,
        &Output::default(),
        false,
    );
    let wider = Output {
        widths: vec![480, 1600],
        ..Output::default()
    };
    assert_ne!(
        base,
        derivation_id(HASH, &source(&master).origin, None, &wider, false)
    );
    let mut other_model = source(&master);
    other_model.origin.model = "dall-e-3";
    assert_ne!(
        base,
        derivation_id(HASH, &other_model.origin, None, &Output::default(), false)
    );
    assert_eq!(
        base,
        derivation_id(
            HASH,
            &source(&master).origin,
            None,
            &Output::default(),
            false
        )
    );
}

#[test]
fn figures_keep_the_requested_shape() {
    // Within 1 %: the master's own shape.
    assert_eq!(frame((960, 720), (800, 600)), None);
    assert_eq!(frame((992, 688), (1000, 700)), None);
    assert_eq!(frame((1024, 1024), (1024, 1024)), None);
    // A model that could not make the shape: cropped back to it, in lowest terms.
    assert_eq!(frame((1776, 592), (4096, 256)), Some((16, 1)));
    assert_eq!(frame((1536, 1024), (800, 600)), Some((4, 3)));
    assert_eq!(frame((1024, 1024), (1000, 700)), Some((10, 7)));

    let master = png(300, 100, false);
    let mut cropped = source(&master);
    cropped.frame = Some((4, 1));
    let output = Output {
        widths: vec![200],
        formats: vec![],
        thumbnail: None,
        ..Output::default()
    };
    let derived = derive(&cropped, &output, &BTreeMap::new()).unwrap();
    let file = &derived.manifest.files[0];
    assert_eq!((file.width, file.height), (200, 50));
    // A frame is part of the id and of every name; no frame leaves both as they were.
    let plain = derive(&source(&master), &output, &BTreeMap::new()).unwrap();
    assert_eq!(
        (
            plain.manifest.files[0].width,
            plain.manifest.files[0].height
        ),
        (200, 67)
    );
    assert_ne!(plain.manifest.files[0].name, file.name);
    let origin = source(&master).origin;
    assert_ne!(
        derivation_id(HASH, &origin, None, &output, false),
        derivation_id(HASH, &origin, Some((4, 1)), &output, false)
    );
}

#[test]
fn a_vector_master_is_shown_as_its_svg_with_a_png_for_other_renderers() {
    let master = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 150" onload="x()"><script>x()</script><rect width="300" height="150" fill="#336699"/></svg>"##;
    let derived = derive(&source(master), &small_output(), &BTreeMap::new()).unwrap();
    let roles: Vec<_> = derived
        .manifest
        .files
        .iter()
        .map(|f| (f.role, f.format, f.width, f.height))
        .collect();
    assert_eq!(
        roles,
        [
            (Role::Fallback, Format::Jpeg, 200, 100),
            (Role::Thumbnail, Format::Webp, 24, 24),
            (Role::Vector, Format::Svg, 300, 150),
        ]
    );
    let vector = derived.manifest.vector().unwrap();
    assert!(vector.name.ends_with(".svg"));
    assert_eq!(asset_master_prefix(&vector.name), Some(&HASH[..16]));
    let svg = String::from_utf8(derived.files[&vector.name].clone()).unwrap();
    // Sanitized again, with the provenance in its metadata.
    assert!(!svg.contains("<script") && !svg.contains("onload"), "{svg}");
    assert!(svg.contains("<metadata><?xpacket"), "{svg}");
    assert!(svg.contains("trainedAlgorithmicMedia"));
    // The fallback (the book's JPEG) is the drawing, rendered.
    let fallback = derived.manifest.main_fallback().unwrap();
    let jpeg = image::load_from_memory(&derived.files[&fallback.name])
        .unwrap()
        .into_rgb8();
    let [r, g, b] = jpeg.get_pixel(100, 50).0;
    assert!(
        r.abs_diff(0x33) < 6 && g.abs_diff(0x66) < 6 && b.abs_diff(0x99) < 6,
        "{r} {g} {b}"
    );
    // The same master gives the same files.
    let again = derive(&source(master), &small_output(), &BTreeMap::new()).unwrap();
    assert_eq!(again.files, derived.files);
    // The review page's thumbnail renders it too.
    assert!(thumbnail(master, 16).is_ok());
}
