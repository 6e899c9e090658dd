//! How much work rendering an SVG takes, bounded before it is rendered.
//!
//! A drawing's cost is not its size: a few hundred bytes of filters (`feTurbulence` with a
//! thousand octaves, `feMorphology` with a radius of a hundred thousand, `feConvolveMatrix` of
//! order 300, a filter region many times the canvas) or a path of a million segments take
//! minutes to render, on every build and every teammate's machine once committed. resvg has no
//! time limit, so the bound is static, in two steps:
//!
//! 1. [`check_primitives`], on the sanitized XML: parameters whose cost (or whose arithmetic in
//!    the renderer) has no bound are refused: octaves, kernel orders, primitives per filter,
//!    merge nodes, blur deviations.
//! 2. [`check_tree`], on the parsed tree (units, styles, references and transforms resolved):
//!    the pixel operations of every layer, filter primitive, mask and clip, and the path
//!    segments, counted at the size it is rendered at, must stay within [`MAX_OPS_PER_PIXEL`]
//!    per pixel of the canvas and [`MAX_SEGMENTS`].
//!
//! The bounds sit far above what drawings exported by editors or written by models contain
//! (their filters are a blur or a shadow, their kernels 3×3), so such drawings are unchanged.

use resvg::usvg;

/// The most octaves of `feTurbulence`: octave k adds 2^-k of the noise, so past 10 nothing
/// changes by a step of colour.
const MAX_OCTAVES: f64 = 10.0;

/// The most rows or columns of a `feConvolveMatrix` kernel (real kernels are 3 to 5).
const MAX_ORDER: f64 = 16.0;

/// The most primitives in one `filter`.
const MAX_PRIMITIVES: usize = 32;

/// The most `feMergeNode`s in one `feMerge`.
const MAX_MERGE_NODES: usize = 16;

/// The largest `stdDeviation` (its cost does not grow with it; its arithmetic does).
const MAX_DEVIATION: f64 = 10_000.0;

/// The most work a render may take, per pixel of the canvas (counted on at least
/// [`REFERENCE_PIXELS`] and at most twice that), in operations of 2 to 3 ns each
/// (measured by `scripts/bench svg` on a 2-core machine: a full-canvas layer costs 1 and the
/// fill drawn into it 1, a blur 65, noise 17 an octave). The bound is about 3 s of rendering,
/// 6 s on the largest canvases.
const MAX_OPS_PER_PIXEL: f64 = 300.0;

/// The most path segments in a render (markers, patterns and `<use>` counted as drawn).
const MAX_SEGMENTS: f64 = 1_000_000.0;

/// A layer is clipped by the renderer to this many times the canvas area (5 × 5 canvases).
const MAX_LAYER_CANVASES: f64 = 25.0;

/// Refuses filter parameters with no bound on their cost; `document` is the sanitized SVG.
pub(super) fn check_primitives(document: &roxmltree::Document<'_>) -> Result<(), String> {
    for node in document.descendants().filter(roxmltree::Node::is_element) {
        let name = node.tag_name().name();
        let numbers = |attribute: &str| -> Result<Vec<f64>, String> {
            let Some(value) = node.attribute(attribute) else {
                return Ok(Vec::new());
            };
            value
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| {
                        format!(
                            "an SVG whose `{name}` has a `{attribute}` that is not a number (`{}`)",
                            crate::outside::clean(value, 40)
                        )
                    })
                })
                .collect()
        };
        let over = |attribute: &str, max: f64| -> Result<(), String> {
            match numbers(attribute)?.into_iter().find(|n| n.abs() > max) {
                Some(n) => Err(format!(
                    "an SVG whose `{name}` has `{attribute}=\"{n}\"`, over {max} (its render would take without bound)"
                )),
                None => Ok(()),
            }
        };
        match name {
            "feTurbulence" => over("numOctaves", MAX_OCTAVES)?,
            "feConvolveMatrix" => over("order", MAX_ORDER)?,
            "feGaussianBlur" | "feDropShadow" => over("stdDeviation", MAX_DEVIATION)?,
            "filter" => {
                let primitives = node.children().filter(roxmltree::Node::is_element).count();
                if primitives > MAX_PRIMITIVES {
                    return Err(format!(
                        "an SVG with a filter of {primitives} primitives, over {MAX_PRIMITIVES}"
                    ));
                }
            }
            "feMerge" => {
                let inputs = node.children().filter(roxmltree::Node::is_element).count();
                if inputs > MAX_MERGE_NODES {
                    return Err(format!(
                        "an SVG with a `feMerge` of {inputs} nodes, over {MAX_MERGE_NODES}"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// What rendering a tree takes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Work {
    /// Pixel operations (a pixel written once by a layer, a primitive, a fill).
    ops: f64,
    /// Path segments rasterized.
    segments: f64,
}

/// The canvas the budget is counted on, in pixels, at least: a render at 2048 px wide of a
/// 4:3 drawing. A smaller render gets as much time (an embedded photo costs its decoding at
/// any size), a larger one at most twice as much.
const REFERENCE_PIXELS: f64 = 2048.0 * 1536.0;

/// Refuses a tree whose render at `scale` (output pixels per user unit of the root) would take
/// more than the bounds.
pub(super) fn check_tree(tree: &usvg::Tree, scale: f32) -> Result<(), String> {
    let frame = Frame::of(tree, scale);
    let work = measure(tree, scale);
    if work.segments > MAX_SEGMENTS {
        return Err(format!(
            "an SVG of about {} path segments as drawn, over {}; simplify its paths",
            work.segments.round(),
            MAX_SEGMENTS
        ));
    }
    let per_pixel = work.ops / frame.budget_pixels();
    if per_pixel > MAX_OPS_PER_PIXEL {
        return Err(format!(
            "an SVG whose filters, masks and layers take about {} operations per pixel to render, over {MAX_OPS_PER_PIXEL}; simplify its filters",
            per_pixel.round()
        ));
    }
    Ok(())
}

/// The work of rendering `tree` at `scale`; counting stops once it is over the bounds.
fn measure(tree: &usvg::Tree, scale: f32) -> Work {
    let frame = Frame::of(tree, scale);
    let mut counter = Counter {
        frame,
        limit: MAX_OPS_PER_PIXEL * frame.budget_pixels(),
        visits: 0,
        work: Work::default(),
        depth: 0,
    };
    counter.group(tree.root());
    counter.work
}

/// The canvas a tree is rendered on: output pixels per user unit across and down (the height
/// cut to [`super::MAX_SIDE`] as the render cuts it, which then draws with a smaller scale
/// down), and its area in pixels.
#[derive(Debug, Clone, Copy)]
struct Frame {
    sx: f64,
    sy: f64,
    pixels: f64,
}

impl Frame {
    fn of(tree: &usvg::Tree, scale: f32) -> Frame {
        let size = tree.size();
        let max = f64::from(super::MAX_SIDE);
        let scale = f64::from(scale);
        let side = |length: f64| {
            let pixels = (length * scale).round();
            if pixels.is_finite() {
                pixels.clamp(1.0, max)
            } else {
                1.0
            }
        };
        let (width, height) = (
            side(f64::from(size.width())),
            side(f64::from(size.height())),
        );
        Frame {
            sx: scale,
            sy: height / f64::from(size.height()),
            pixels: width * height,
        }
    }

    /// The pixels the budget is counted on (see [`REFERENCE_PIXELS`]).
    fn budget_pixels(self) -> f64 {
        self.pixels.clamp(REFERENCE_PIXELS, 2.0 * REFERENCE_PIXELS)
    }
}

/// The most elements a count visits (a drawing whose references share subtrees can stand for
/// far more than it holds): past it, the drawing is refused.
const MAX_VISITS: u64 = 2_000_000;

struct Counter {
    frame: Frame,
    /// Past this many operations, the count stops: the drawing is refused anyway.
    limit: f64,
    visits: u64,
    work: Work,
    /// How deep in patterns, masks, clips and filter images: bounded, as the sanitizer bounds
    /// how references nest.
    depth: usize,
}

impl Counter {
    /// The area in output pixels of a box in the root's user space, as the renderer clips it.
    fn area(&self, rect: usvg::Rect) -> f64 {
        let area =
            f64::from(rect.width()) * self.frame.sx * f64::from(rect.height()) * self.frame.sy;
        let most = MAX_LAYER_CANVASES * self.frame.pixels;
        if area.is_finite() {
            area.clamp(0.0, most)
        } else {
            most
        }
    }

    /// Whether the count can stop: over a bound already (the drawing is refused whatever
    /// follows), or visiting more than any drawing needs.
    fn done(&mut self) -> bool {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            self.work.ops = f64::INFINITY;
        }
        self.work.ops > self.limit || self.work.segments > MAX_SEGMENTS
    }

    fn group(&mut self, group: &usvg::Group) {
        if self.depth_exceeded() || self.done() {
            return;
        }
        let depth = self.depth;
        if group.should_isolate() {
            let layer = self.area(group.abs_layer_bounding_box().to_rect());
            // The layer, drawn back onto its parent.
            self.work.ops += layer;
            // A clip path or a mask may have its own, and so on: each is a layer of its own.
            let mut clip = group.clip_path();
            while let Some(this) = clip {
                self.work.ops += layer;
                self.nested(this.root());
                clip = this.clip_path();
                if self.depth_exceeded() {
                    return;
                }
                self.depth += 1;
            }
            let mut mask = group.mask();
            while let Some(this) = mask {
                self.work.ops += 2.0 * layer;
                self.nested(this.root());
                mask = this.mask();
                if self.depth_exceeded() {
                    return;
                }
                self.depth += 1;
            }
            self.depth = depth;
            let device =
                transform_scale(group.abs_transform()) * self.frame.sx.max(self.frame.sy) as f32;
            for filter in group.filters() {
                for primitive in filter.primitives() {
                    self.work.ops += layer * self.primitive(primitive.kind(), device);
                }
            }
        }
        for child in group.children() {
            match child {
                usvg::Node::Group(group) => self.group(group),
                usvg::Node::Path(path) => self.path(path),
                usvg::Node::Image(image) => {
                    // Decoded again each time it is drawn, at its own size.
                    let own = image.size();
                    self.work.ops += self.area(image.abs_bounding_box())
                        + 2.0 * f64::from(own.width()) * f64::from(own.height());
                    if let usvg::ImageKind::SVG(tree) = image.kind() {
                        self.nested(tree.root());
                    }
                }
                usvg::Node::Text(text) => self.group(text.flattened()),
            }
        }
    }

    /// The operations per pixel of its region that one filter primitive takes, at `device`
    /// output pixels per user unit.
    fn primitive(&mut self, kind: &usvg::filter::Kind, device: f32) -> f64 {
        use usvg::filter::Kind;
        // Weights from `scripts/bench svg`: the time per pixel of each, over that of an operation.
        match kind {
            Kind::Turbulence(t) => 17.0 * f64::from(t.num_octaves().max(1)),
            Kind::Morphology(m) => {
                // A comparison per pixel of the window, each about a quarter of an operation.
                let side = |r: f32| 2.0 * f64::from(r * device).min(1e6) + 1.0;
                side(m.radius_x().get()) * side(m.radius_y().get()) / 4.0
            }
            Kind::ConvolveMatrix(c) => {
                8.0 + f64::from(c.matrix().columns()) * f64::from(c.matrix().rows())
            }
            Kind::Merge(m) => 8.0 + 2.0 * m.inputs().len() as f64,
            Kind::Image(image) => {
                self.nested(image.root());
                8.0
            }
            Kind::GaussianBlur(_) | Kind::DropShadow(_) => 65.0,
            Kind::DiffuseLighting(_) | Kind::SpecularLighting(_) => 30.0,
            // A pass over the region, and the colour space conversions around it.
            _ => 8.0,
        }
    }

    fn path(&mut self, path: &usvg::Path) {
        if self.done() {
            return;
        }
        let segments = path.data().len() as f64;
        let mut draws = 0.0;
        let mut patterns = Vec::new();
        if let Some(fill) = path.fill() {
            draws += 1.0;
            if let usvg::Paint::Pattern(pattern) = fill.paint() {
                patterns.push(pattern.clone());
            }
        }
        let mut dashes = 0.0;
        if let Some(stroke) = path.stroke() {
            // A stroke's outline has a few segments per segment.
            draws += 3.0;
            if let usvg::Paint::Pattern(pattern) = stroke.paint() {
                patterns.push(pattern.clone());
            }
            if let Some(dasharray) = stroke.dasharray() {
                dashes = dash_count(path.data(), dasharray);
            }
        }
        self.work.segments += segments * draws + 4.0 * dashes;
        self.work.ops += draws * self.area(path.abs_stroke_bounding_box());
        // A pattern's tile is drawn again for every path painted with it, on a pixmap of the
        // tile's size in pixels, which the renderer does not cut to the canvas.
        for pattern in patterns {
            let tile = pattern.rect();
            let scale = transform_area(path.abs_transform().pre_concat(pattern.transform()))
                * self.frame.sx
                * self.frame.sy;
            let pixels = f64::from(tile.width()) * f64::from(tile.height()) * scale;
            self.work.ops += if pixels.is_finite() {
                pixels
            } else {
                f64::INFINITY
            };
            self.nested(pattern.root());
        }
    }

    fn depth_exceeded(&mut self) -> bool {
        if self.depth > 64 {
            self.work.ops = f64::INFINITY;
            return true;
        }
        false
    }

    fn nested(&mut self, root: &usvg::Group) {
        self.depth += 1;
        self.group(root);
        self.depth -= 1;
    }
}

/// How many dashes a dashed stroke makes of a path, at most: its control polygon (at least as
/// long as the path) over the dash pattern's length, as many as the renderer draws
/// (tiny-skia gives up past a million a path).
fn dash_count(data: &resvg::tiny_skia::Path, dasharray: &[f32]) -> f64 {
    let period: f64 = dasharray.iter().map(|d| f64::from(d.abs())).sum();
    let points = data.points();
    let length: f64 = points
        .windows(2)
        .map(|w| f64::from(w[0].distance(w[1])))
        .filter(|d| d.is_finite())
        .sum();
    if period.is_nan() || period <= 0.0 {
        return 0.0;
    }
    (length / period * dasharray.len() as f64).min(1_000_000.0)
}

/// How much a transform scales areas.
fn transform_area(ts: usvg::Transform) -> f64 {
    let (sx, sy) = ts.get_scale();
    let area = f64::from(sx) * f64::from(sy);
    if area.is_finite() {
        area
    } else {
        f64::INFINITY
    }
}

/// How much a transform scales lengths, at most (for radii given in user units).
fn transform_scale(ts: usvg::Transform) -> f32 {
    let (sx, sy) = ts.get_scale();
    let scale = sx.max(sy);
    if scale.is_finite() { scale } else { f32::MAX }
}
