//! A sanitized SVG rendered to pixels with resvg, for the raster files: no file, network or
//! font access, and a render's work bounded before it starts (`work.rs`).

use std::sync::Arc;

use super::{MAX_SIDE, work};

/// The width at which a master's render is bounded when it arrives: the widest web file a
/// book usually asks for (a book that asks for wider ones is checked again at that width).
pub(super) const REFERENCE_WIDTH: u32 = 2048;

/// Output pixels per user unit when `tree` is rendered `width` wide.
pub(super) fn scale_for(tree: &resvg::usvg::Tree, width: u32) -> f32 {
    width.clamp(1, MAX_SIDE) as f32 / tree.size().width()
}

/// Renders a sanitized SVG to RGBA pixels `width` wide (the height keeps its shape), with no
/// file, network or font access; refused when the render would take more than the bounds of
/// [`work`].
pub(crate) fn rasterize(svg: &[u8], width: u32) -> Result<(u32, u32, Vec<u8>), String> {
    let tree = tree(svg)?;
    let size = tree.size();
    let width = width.clamp(1, MAX_SIDE);
    let scale = scale_for(&tree, width);
    work::check_tree(&tree, scale)?;
    let height = ((size.height() * scale).round() as u32).clamp(1, MAX_SIDE);
    let mut pixmap = resvg::tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| format!("cannot render the SVG at {width}x{height}"))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, height as f32 / size.height()),
        &mut pixmap.as_mut(),
    );
    // tiny-skia keeps premultiplied alpha; images want it straight.
    let mut data = pixmap.take();
    for px in data.chunks_exact_mut(4) {
        let alpha = px[3];
        if alpha != 0 && alpha != 255 {
            for channel in &mut px[..3] {
                *channel = ((u16::from(*channel) * 255 + u16::from(alpha) / 2) / u16::from(alpha))
                    .min(255) as u8;
            }
        }
    }
    Ok((width, height, data))
}

/// The SVG read as the renderer reads it: embedded PNG, JPEG and WebP images only, no file,
/// network or font access.
pub(super) fn tree(svg: &[u8]) -> Result<resvg::usvg::Tree, String> {
    let options = resvg::usvg::Options {
        resources_dir: None,
        image_href_resolver: resvg::usvg::ImageHrefResolver {
            resolve_data: Box::new(|mime: &str, data: Arc<Vec<u8>>, _: &resvg::usvg::Options| {
                match mime.to_ascii_lowercase().as_str() {
                    "image/png" => Some(resvg::usvg::ImageKind::PNG(data)),
                    "image/jpeg" | "image/jpg" => Some(resvg::usvg::ImageKind::JPEG(data)),
                    "image/webp" => Some(resvg::usvg::ImageKind::WEBP(data)),
                    _ => None,
                }
            }),
            resolve_string: Box::new(|_: &str, _: &resvg::usvg::Options| None),
        },
        ..resvg::usvg::Options::default()
    };
    resvg::usvg::Tree::from_data(svg, &options).map_err(|e| format!("cannot read the SVG ({e})"))
}
