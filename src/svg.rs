//! SVG masters: what a vector answer must pass before it is cached, and how it becomes pixels.
//!
//! An SVG is a document, not just an image: opened on its own it may run scripts, follow
//! links, and load anything from anywhere. A provider's answer (or a cache file a pull request
//! adds) is therefore never kept as it came. [`sanitize`] parses it and writes a new document
//! that keeps only drawing: an allowlist of SVG elements and presentation attributes, no
//! scripts, no event handlers, no `foreignObject`, no animation (which can rewrite links), and
//! no reference to anything outside the document but embedded PNG, JPEG or WebP data. The
//! output is canonical, so sanitizing it again gives the same bytes: that is how a cached
//! master is checked.
//!
//! [`rasterize`] renders a sanitized SVG with resvg for the raster files (the fallback other
//! renderers show, and the thumbnail), never reading a file or the network, and without fonts
//! (text shows in browsers, which render the SVG itself, but not in the raster files), so the
//! same SVG gives the same pixels on every machine. A render's work is bounded before it starts
//! ([`work`]): a master whose filters or paths would take without bound is refused when it
//! arrives, and by `verify` and every render when found in a cache. No I/O here.

use std::fmt::Write as _;

mod expansion;
mod render;
mod work;

use expansion::check_expansion;
pub(crate) use render::rasterize;
use render::{REFERENCE_WIDTH, scale_for, tree};

/// What shapes an SVG web file and its raster files beyond the master: this sanitizer and
/// the renderer. Derived files' names hash it, so a change makes new files.
pub(crate) const VERSION: &str = "sanitize-2;resvg-0.49";

/// The SVG namespace.
const SVG_NS: &str = "http://www.w3.org/2000/svg";
/// The XLink namespace, whose `href` older documents use.
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
/// The XML namespace (`xml:space`, `xml:lang`).
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// The most elements and attributes a document may have.
const MAX_NODES: u32 = 200_000;

/// The deepest an element may be nested, and the longest chain of `<use>` references.
const MAX_DEPTH: usize = 256;

/// The most elements a document may stand for once every `<use>` is expanded: references to
/// references multiply (a "billion laughs" made of drawing), and a renderer expands them all.
const MAX_EXPANDED: u64 = 1_000_000;

/// The largest sanitized document.
const MAX_OUTPUT_BYTES: usize = 48 << 20;

/// The largest side a view box is taken at, in pixels.
const MAX_SIDE: u32 = 8192;

/// The elements kept: shapes, text, paint servers, clipping, masking and filters. `a` is kept
/// as a `g` (its link dropped). Everything else goes with its content: `script`,
/// `foreignObject`, `iframe`, `animate`, `set`, `metadata` and unknown elements.
const ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "defs",
    "symbol",
    "use",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "textPath",
    "title",
    "desc",
    "linearGradient",
    "radialGradient",
    "stop",
    "clipPath",
    "mask",
    "pattern",
    "marker",
    "image",
    "style",
    "switch",
    "filter",
    "feBlend",
    "feColorMatrix",
    "feComponentTransfer",
    "feComposite",
    "feConvolveMatrix",
    "feDiffuseLighting",
    "feDisplacementMap",
    "feDistantLight",
    "feDropShadow",
    "feFlood",
    "feFuncA",
    "feFuncB",
    "feFuncG",
    "feFuncR",
    "feGaussianBlur",
    "feImage",
    "feMerge",
    "feMergeNode",
    "feMorphology",
    "feOffset",
    "fePointLight",
    "feSpecularLighting",
    "feSpotLight",
    "feTile",
    "feTurbulence",
];

/// The embedded image types an `href` may carry.
const DATA_IMAGES: &[&str] = &[
    "data:image/png;base64,",
    "data:image/jpeg;base64,",
    "data:image/webp;base64,",
];

/// A sanitized SVG and the size its view box gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Svg {
    pub(crate) bytes: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Whether bytes look like an SVG document (rather than a raster image or garbage): XML text
/// whose first element is `svg`.
pub(crate) fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let Some(start) = head.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if head[start] != b'<' {
        return false;
    }
    // Skip the prolog (`<?xml …?>`, comments, a doctype) up to the first element.
    let text = String::from_utf8_lossy(&head[start..]);
    let mut rest = text.as_ref();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            let Some((_, tail)) = after.split_once("?>") else {
                return false;
            };
            rest = tail;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let Some((_, tail)) = after.split_once("-->") else {
                return false;
            };
            rest = tail;
        } else if let Some(after) = rest.strip_prefix("<!") {
            // A doctype may hold an internal subset in brackets, with `>` inside it.
            let end = match (after.find('['), after.find('>')) {
                (Some(open), Some(close)) if open < close => after.find("]>").map(|e| e + 2),
                (_, Some(close)) => Some(close + 1),
                _ => None,
            };
            let Some(end) = end else {
                return false;
            };
            rest = &after[end..];
        } else {
            let name = rest.trim_start_matches('<');
            let name: String = name
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
                .collect();
            return rest.starts_with('<')
                && (name == "svg" || name.rsplit_once(':').is_some_and(|(_, n)| n == "svg"));
        }
    }
}

/// Parses an SVG and writes it again with only what draws (see the module's documentation).
/// Errors say what is wrong with the document: not UTF-8, not XML, no `svg` root, no size.
pub(crate) fn sanitize(bytes: &[u8]) -> Result<Svg, String> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes))
        .map_err(|_| "an SVG that is not UTF-8 text".to_owned())?;
    if text.contains("<!ENTITY") {
        // The parser bounds how deep references nest, not how many there are: a few kilobytes
        // of entities can stand for gigabytes of text.
        return Err(
            "an SVG that declares XML entities; export it without a DTD (entities can expand without bound)"
                .to_owned(),
        );
    }
    let options = roxmltree::ParsingOptions {
        // A doctype is common in exported files (with no entities, it expands nothing).
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("an SVG that is not well-formed XML ({e})"))?;
    let root = document.root_element();
    if !is_svg_element(root) || root.tag_name().name() != "svg" {
        return Err(format!(
            "an XML document whose root is `{}`, not `svg`",
            root.tag_name().name()
        ));
    }
    let frame = Frame::of(root)?;
    let (width, height) = (frame.width, frame.height);
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let ids = std::cell::RefCell::new(std::collections::HashSet::new());
    let place = Place {
        depth: 0,
        in_text: false,
        root: &frame.attributes(),
        ids: &ids,
    };
    write_element(root, &place, &mut out)?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "an SVG of more than {} MB once written out",
            MAX_OUTPUT_BYTES >> 20
        ));
    }
    // Counted on what was written, so that exactly the references kept are counted.
    let written = roxmltree::Document::parse_with_options(
        &out,
        roxmltree::ParsingOptions {
            nodes_limit: MAX_NODES,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .map_err(|e| format!("an SVG that could not be written again ({e})"))?;
    check_expansion(&written)?;
    work::check_primitives(&written)?;
    // Counted at the size a page is likely to ask for, so that a master whose render has no
    // bound is refused when it arrives (and flagged by `verify`), not on every build.
    let tree = tree(out.as_bytes())?;
    work::check_tree(&tree, scale_for(&tree, REFERENCE_WIDTH.max(width)))?;
    Ok(Svg {
        bytes: out.into_bytes(),
        width,
        height,
    })
}

/// Puts `metadata` (an XML fragment, such as an XMP packet's RDF) into a sanitized SVG, as the
/// first child of its root.
pub(crate) fn with_metadata(svg: &[u8], metadata: &str) -> Vec<u8> {
    // A sanitized SVG opens with `<svg xmlns="…"` and its attribute values are escaped, so the
    // first `>` closes the root's start tag.
    let Some(end) = svg.iter().position(|b| *b == b'>') else {
        return svg.to_vec();
    };
    let self_closing = end > 0 && svg[end - 1] == b'/';
    let mut out = Vec::with_capacity(svg.len() + metadata.len() + 32);
    if self_closing {
        out.extend_from_slice(&svg[..end - 1]);
        out.push(b'>');
    } else {
        out.extend_from_slice(&svg[..=end]);
    }
    out.extend_from_slice(b"<metadata>");
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(b"</metadata>");
    if self_closing {
        out.extend_from_slice(b"</svg>");
    }
    out.extend_from_slice(&svg[end + 1..]);
    out
}

fn is_svg_element(node: roxmltree::Node<'_, '_>) -> bool {
    matches!(node.tag_name().namespace(), None | Some(SVG_NS))
}

/// The root's frame: its view box (from `viewBox`, else `0 0 width height` in pixels), and the
/// size in whole pixels the figure shows it at. The root is written with exactly these, so the
/// SVG's own size, the raster files' shape and the figure's agree.
struct Frame {
    view_box: [f64; 4],
    width: u32,
    height: u32,
}

impl Frame {
    fn of(root: roxmltree::Node<'_, '_>) -> Result<Frame, String> {
        let side = |value: f64| -> Option<u32> {
            (value.is_finite() && value > 0.0)
                .then(|| value.round().clamp(1.0, f64::from(MAX_SIDE)) as u32)
        };
        if let Some(view_box) = root.attribute("viewBox") {
            let numbers: Vec<Option<f64>> = view_box
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<f64>().ok().filter(|n| n.is_finite()))
                .collect();
            if let [Some(x), Some(y), Some(w), Some(h)] = numbers[..]
                && let (Some(width), Some(height)) = (side(w), side(h))
            {
                return Ok(Frame {
                    view_box: [x, y, w, h],
                    width,
                    height,
                });
            }
            return Err(format!(
                "an SVG whose `viewBox` (`{}`) is not four numbers with a positive width and height",
                crate::outside::clean(view_box, 60)
            ));
        }
        let pixels = |name: &str| {
            let value = root.attribute(name)?.trim();
            let number = value.strip_suffix("px").unwrap_or(value).trim();
            number
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
        };
        match (pixels("width"), pixels("height")) {
            (Some(w), Some(h)) => Ok(Frame {
                view_box: [0.0, 0.0, w, h],
                width: side(w).expect("positive"),
                height: side(h).expect("positive"),
            }),
            _ => Err("an SVG with neither a `viewBox` nor a width and height in pixels".to_owned()),
        }
    }

    /// The root's `viewBox`, `width` and `height` attributes.
    fn attributes(&self) -> String {
        let [x, y, w, h] = self.view_box;
        format!(
            " viewBox=\"{x} {y} {w} {h}\" width=\"{}\" height=\"{}\"",
            self.width, self.height
        )
    }
}

/// Where an element is written: its depth, whether it is inside `<text>`, and the root's own
/// attributes.
struct Place<'a> {
    depth: usize,
    in_text: bool,
    root: &'a str,
    /// The ids written so far: a later element with the same id loses it, so that every
    /// reader (the reference checks here, the renderer, a browser) finds the same element.
    ids: &'a std::cell::RefCell<std::collections::HashSet<String>>,
}

fn write_element(
    node: roxmltree::Node<'_, '_>,
    place: &Place<'_>,
    out: &mut String,
) -> Result<(), String> {
    let depth = place.depth;
    if depth > MAX_DEPTH {
        return Err(format!("an SVG nested more than {MAX_DEPTH} elements deep"));
    }
    let original = node.tag_name().name();
    // A link keeps its content, without the link: a group, or a span inside text.
    let name = match original {
        "a" if place.in_text => "tspan",
        "a" => "g",
        other => other,
    };
    out.push('<');
    out.push_str(name);
    if depth == 0 {
        write!(out, " xmlns=\"{SVG_NS}\"{}", place.root).expect("writing to a string");
    }
    write_attributes(node, place, out);
    let children: Vec<_> = node
        .children()
        .filter(|child| match child.node_type() {
            roxmltree::NodeType::Element => kept_element(*child),
            roxmltree::NodeType::Text => true,
            _ => false,
        })
        .collect();
    if name == "style" {
        let css: String = node
            .children()
            .filter_map(|c| c.text())
            .collect::<Vec<_>>()
            .concat();
        if css.trim().is_empty() || !safe_value(&css) || css.contains('@') {
            // An empty, `@import`ing or outward-pointing style sheet is dropped whole.
            out.push_str("/>");
            return Ok(());
        }
        out.push('>');
        out.push_str(&escape(&css, false));
        out.push_str("</style>");
        return Ok(());
    }
    if children.is_empty() {
        out.push_str("/>");
        return Ok(());
    }
    out.push('>');
    for child in children {
        match child.node_type() {
            roxmltree::NodeType::Element => {
                let inner = Place {
                    depth: depth + 1,
                    in_text: place.in_text || original == "text",
                    root: "",
                    ids: place.ids,
                };
                write_element(child, &inner, out)?;
            }
            _ => out.push_str(&escape(child.text().unwrap_or(""), false)),
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
    Ok(())
}

/// Writes the attributes of `node` that are kept. `href` and `xlink:href` are both written as
/// `href`: the first one wins; the root's frame is written apart; a doubled id stays on the
/// first element that has it.
fn write_attributes(node: roxmltree::Node<'_, '_>, place: &Place<'_>, out: &mut String) {
    let original = node.tag_name().name();
    let mut written: Vec<String> = Vec::new();
    for attribute in node.attributes() {
        if let Some((name, value)) = kept_attribute(original, &attribute)
            && !written.iter().any(|w| w == name)
            && !(place.depth == 0 && matches!(name, "viewBox" | "width" | "height"))
            && (name != "id" || place.ids.borrow_mut().insert(value.to_owned()))
        {
            written.push(name.to_owned());
            write!(out, " {name}=\"{}\"", escape(value, true)).expect("writing to a string");
        }
    }
}

fn kept_element(node: roxmltree::Node<'_, '_>) -> bool {
    let name = node.tag_name().name();
    is_svg_element(node) && (name == "a" || ELEMENTS.contains(&name))
}

/// The name and value an attribute is written with, or `None` to drop it.
fn kept_attribute<'a>(
    element: &str,
    attribute: &'a roxmltree::Attribute<'_, '_>,
) -> Option<(&'a str, &'a str)> {
    let (name, value) = (attribute.name(), attribute.value());
    let name = match attribute.namespace() {
        None => name,
        Some(XLINK_NS) if name == "href" => name,
        Some(XML_NS) if name == "space" || name == "lang" => {
            return Some((
                if name == "space" {
                    "xml:space"
                } else {
                    "xml:lang"
                },
                value,
            ));
        }
        Some(_) => return None,
    };
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("on")
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':')
    {
        return None;
    }
    // A link's target and its attributes go with the link.
    if element == "a"
        && matches!(
            lower.as_str(),
            "href"
                | "target"
                | "download"
                | "ping"
                | "rel"
                | "referrerpolicy"
                | "type"
                | "hreflang"
        )
    {
        return None;
    }
    if lower == "href" || lower == "src" {
        let target = value.trim();
        let internal = target.starts_with('#') && target.len() > 1;
        let embedded = element == "image"
            && DATA_IMAGES
                .iter()
                .any(|p| starts_with_ignore_case(target, p))
            && embedded_image_is_sane(target);
        return (internal || embedded).then_some(("href", value));
    }
    safe_value(value).then_some((name, value))
}

/// Whether an embedded image's header says it is an image of sane size (a decompression bomb
/// inside an SVG would otherwise reach the renderer).
fn embedded_image_is_sane(data_url: &str) -> bool {
    use base64::Engine as _;
    let Some((_, data)) = data_url.split_once(',') else {
        return false;
    };
    let data: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return false;
    };
    image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok())
        .is_some_and(|(w, h)| (1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether an attribute value or a style sheet points nowhere outside the document: every
/// `url(…)` is a fragment (`url(#id)`), and there is no script URL or CSS expression.
fn safe_value(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let squeezed: String = lower
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    // `image-set("…")` and `src("…")` load images from strings, with no `url(` in sight.
    if [
        "javascript:",
        "vbscript:",
        "expression(",
        "image-set(",
        "src(",
    ]
    .iter()
    .any(|bad| squeezed.contains(bad))
    {
        return false;
    }
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find("url(") {
        let target = rest[at + 4..].trim_start_matches(['"', '\'']);
        if !target.starts_with('#') {
            return false;
        }
        rest = &rest[at + 4..];
    }
    // A bare URL written with escapes (`\75rl(`) is not something a drawing needs.
    !squeezed.contains('\\')
}

/// Escapes text for an attribute value (`quotes`) or element content.
fn escape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            '\n' if quotes => out.push_str("&#10;"),
            '\t' if quotes => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(svg: &str) -> String {
        String::from_utf8(sanitize(svg.as_bytes()).unwrap().bytes).unwrap()
    }

    #[test]
    fn drawing_is_kept_and_the_size_comes_from_the_view_box() {
        let svg = r##"<?xml version="1.0" encoding="UTF-8"?>
<!-- made by a model -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 1536 1024" width="100%">
  <defs><linearGradient id="g1"><stop offset="0" stop-color="#fff"/></linearGradient></defs>
  <path d="M0 0L10 10Z" fill="url(#g1)" style="stroke: #000; stroke-width: 2"/>
  <use xlink:href="#g1" x="3"/>
  <text x="1" y="2">Tom &amp; Jerry &lt;3</text>
</svg>"##;
        let out = sanitize(svg.as_bytes()).unwrap();
        assert_eq!((out.width, out.height), (1536, 1024));
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(
            text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 1536 1024\""),
            "{text}"
        );
        assert!(text.contains("fill=\"url(#g1)\""));
        assert!(text.contains("<use href=\"#g1\" x=\"3\"/>"));
        assert!(text.contains("Tom &amp; Jerry &lt;3"));
        assert!(text.contains("style=\"stroke: #000; stroke-width: 2\""));
        // Canonical: a second pass changes nothing.
        assert_eq!(clean(&text), text);
    }

    #[test]
    fn scripts_handlers_foreign_objects_and_outside_references_go() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10" onload="alert(1)">
  <script>alert(document.cookie)</script>
  <script xlink:href="https://evil.example/x.js"/>
  <rect width="10" height="10" onclick="steal()" OnMouseOver="x()" fill="red"/>
  <foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.example"/></foreignObject>
  <image href="https://evil.example/track.png" width="1" height="1"/>
  <image xlink:href="file:///etc/passwd"/>
  <image href="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" width="1" height="1"/>
  <image href="data:image/png;base64,BOMB" width="1" height="1"/>
  <image href="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="/>
  <a href="javascript:alert(1)"><circle r="3" fill="blue"/></a>
  <set attributeName="href" to="javascript:alert(1)"/>
  <animate attributeName="href" values="javascript:alert(1)"/>
  <rect fill="url(https://evil.example/p.svg#x)" style="background:url(//evil.example/a)"/>
  <style>@import url(https://evil.example/a.css); rect { fill: red }</style>
  <style>circle { fill: url(#g) }</style>
  <use href="https://evil.example/sprite.svg#icon"/>
  <rect filter="url( 'https://evil.example/f' )" x="1"/>
  <rect x="2" style="fill:\75rl(https://evil.example)"/>
</svg>"#;
        let bomb = crate::test_support::images::b64(&crate::test_support::images::png_header(
            100_000, 100_000,
        ));
        let text = clean(&svg.replace("BOMB", &bomb));
        for bad in [
            "script",
            "onload",
            "onclick",
            "OnMouseOver",
            "foreignObject",
            "iframe",
            "evil.example",
            "file:",
            "javascript",
            "svg+xml",
            "<set",
            "<animate",
            "@import",
            "\\75",
        ] {
            assert!(!text.contains(bad), "`{bad}` survived: {text}");
        }
        assert!(text.contains("fill=\"red\""));
        assert!(text.contains("<image href=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\""));
        // A header that claims 100,000 pixels a side is not embedded.
        assert_eq!(text.matches("data:image").count(), 1, "{text}");
        assert!(text.contains("<g><circle r=\"3\" fill=\"blue\"/></g>"));
        assert!(text.contains("<style>circle { fill: url(#g) }</style>"));
        assert_eq!(clean(&text), text);
    }

    #[test]
    fn documents_that_are_not_svg_are_refused() {
        for (bytes, says) in [
            (&b"<html><body/></html>"[..], "root is `html`"),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"><g></svg>",
                "not well-formed",
            ),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "neither a `viewBox`",
            ),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 0 5\"/>",
                "positive width",
            ),
            (b"\xff\xfe<\x00s\x00", "not UTF-8"),
        ] {
            let error = sanitize(bytes).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        // Entity expansion is bounded.
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><text>&g;</text></svg>"#;
        assert!(sanitize(laughs.as_bytes()).is_err());
    }

    /// `levels` groups of ten `<use>` of the group below, each group followed by an empty
    /// decoy with the same id when `decoy` is set.
    fn use_bomb(levels: u32, decoy: bool) -> String {
        let mut svg = String::from(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><defs><rect id="l0" width="1" height="1"/>"#,
        );
        for level in 1..=levels {
            svg.push_str(&format!("<g id=\"l{level}\">"));
            for _ in 0..10 {
                svg.push_str(&format!("<use href=\"#l{}\"/>", level - 1));
            }
            svg.push_str("</g>");
            if decoy {
                svg.push_str(&format!("<g id=\"l{level}\"/>"));
            }
        }
        svg.push_str(&format!("</defs><use href=\"#l{levels}\"/></svg>"));
        svg
    }

    #[test]
    fn doubled_links_deep_nesting_and_exploding_references_are_handled() {
        // `href` and `xlink:href` on one element: one `href`, and the output parses again.
        let both = clean(
            r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 1 1"><use href="#a" xlink:href="#b"/></svg>"##,
        );
        assert!(both.contains("<use href=\"#a\"/>"), "{both}");
        assert_eq!(clean(&both), both);

        let deep = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1">{}{}</svg>"#,
            "<g>".repeat(5000),
            "</g>".repeat(5000)
        );
        assert!(sanitize(deep.as_bytes()).unwrap_err().contains("nested"));

        // Eleven levels of ten `<use>` each: 10^11 elements once expanded; and the same behind
        // decoys, since the first element with an id is the one it names.
        for decoy in [false, true] {
            let bomb = use_bomb(11, decoy);
            assert!(
                sanitize(bomb.as_bytes()).unwrap_err().contains("expand"),
                "{decoy}"
            );
        }

        // A marker is drawn at every vertex of its path.
        let points: String = (0..2000).map(|i| format!("{i},{i} ")).collect();
        let markers = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><defs><marker id="m">{}</marker></defs><polyline points="{points}" style="fill:none;marker-mid:url(#m)"/></svg>"##,
            "<circle r=\"1\"/>".repeat(1000)
        );
        assert!(sanitize(markers.as_bytes()).unwrap_err().contains("expand"));
        // A style sheet's reference counts for every element.
        let sheet = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><defs><pattern id="p">{}</pattern></defs><style>rect {{ fill: url(#p) }}</style>{}</svg>"##,
            "<circle r=\"1\"/>".repeat(1000),
            "<rect/>".repeat(1000)
        );
        assert!(sanitize(sheet.as_bytes()).unwrap_err().contains("expand"));
        // Ordinary reuse is fine: a gradient on a thousand shapes.
        let reuse = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><defs><linearGradient id="g"><stop offset="0"/><stop offset="1"/></linearGradient></defs>{}</svg>"##,
            "<rect fill=\"url(#g)\"/>".repeat(1000)
        );
        assert!(sanitize(reuse.as_bytes()).is_ok());

        let cycle = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>"##;
        assert!(
            sanitize(cycle.as_bytes())
                .unwrap_err()
                .contains("themselves")
        );
    }

    #[test]
    fn the_root_is_sized_by_its_view_box_and_links_in_text_keep_their_words() {
        let svg = clean(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="5cm" viewBox="0,0 , 300 150"><text>see <a href="https://x.example">this</a></text><rect style="background: image-set('https://evil.example/a.png' 1x)"/><rect style="src('x')"/></svg>"#,
        );
        assert_eq!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 150" width="300" height="150"><text>see <tspan>this</tspan></text><rect/><rect/></svg>"#
        );
        assert_eq!(
            sanitize(br#"<svg xmlns="http://www.w3.org/2000/svg" width="64px" height="32"/>"#)
                .unwrap()
                .bytes,
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 32" width="64" height="32"/>"#
        );
        let error =
            sanitize(br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10 \x"/>"#)
                .unwrap_err();
        assert!(error.contains("four numbers"), "{error}");
    }

    #[test]
    fn entities_are_refused_even_behind_a_doctype_that_hides_them() {
        let hidden = br#"<?xml version="1.0"?><!DOCTYPE svg [<!-- ><svg --><!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><text>&a;</text></svg>"#;
        assert!(looks_like_svg(hidden));
        assert!(sanitize(hidden).unwrap_err().contains("entities"));
        // A doctype with an internal subset and no entities is an ordinary export.
        let exported = br#"<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [<!ATTLIST svg xmlns:x CDATA "x">]><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>"#;
        assert!(looks_like_svg(exported));
        assert!(sanitize(exported).is_ok());
    }

    #[test]
    fn svg_is_recognized_before_it_is_parsed() {
        assert!(looks_like_svg(b"\xef\xbb\xbf  <?xml version=\"1.0\"?>\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\">\n<!-- c --><svg viewBox=\"0 0 1 1\"/>"));
        assert!(looks_like_svg(
            b"<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\"/>"
        ));
        assert!(!looks_like_svg(b"<html/>"));
        assert!(!looks_like_svg(b"\x89PNG\r\n"));
        assert!(!looks_like_svg(b""));
    }

    #[test]
    fn metadata_goes_first_in_the_root_and_pixels_come_out() {
        let svg = clean(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10"><rect width="20" height="10" fill="#ff0000"/></svg>"##,
        );
        let with = String::from_utf8(with_metadata(svg.as_bytes(), "<x:y/>")).unwrap();
        assert!(with.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 20 10\" width=\"20\" height=\"10\"><metadata><x:y/></metadata><rect"), "{with}");
        let empty = clean(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10"/>"#);
        let with = String::from_utf8(with_metadata(empty.as_bytes(), "m")).unwrap();
        assert!(with.ends_with("><metadata>m</metadata></svg>"), "{with}");

        let (w, h, data) = rasterize(svg.as_bytes(), 40).unwrap();
        assert_eq!((w, h), (40, 20));
        assert_eq!(&data[..4], &[255, 0, 0, 255]);
        assert_eq!(data.len(), 40 * 20 * 4);
    }

    /// A drawing as models and editors write them: a blur, a shadow, a noise texture, a 3×3
    /// kernel, a dilation of a few pixels, dashes.
    const ORDINARY_FILTERS: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300">
<defs>
<filter id="soft" x="-10%" y="-10%" width="120%" height="120%"><feGaussianBlur stdDeviation="4"/></filter>
<filter id="shadow"><feDropShadow dx="2" dy="3" stdDeviation="3" flood-opacity="0.4"/></filter>
<filter id="paper"><feTurbulence type="fractalNoise" baseFrequency="0.8" numOctaves="4"/><feColorMatrix type="saturate" values="0"/><feComposite in2="SourceGraphic" operator="in"/></filter>
<filter id="edge"><feConvolveMatrix order="3" kernelMatrix="0 -1 0 -1 5 -1 0 -1 0"/><feMorphology operator="dilate" radius="2"/></filter>
</defs>
<rect width="400" height="300" fill="#f4efe6" filter="url(#paper)"/>
<circle cx="200" cy="150" r="80" fill="#2a6f97" filter="url(#shadow)"/>
<path d="M40 260 Q200 180 360 260" stroke="#333" stroke-width="3" stroke-dasharray="6 4" fill="none" filter="url(#soft)"/>
<text x="20" y="40" filter="url(#edge)">Harbour</text>
</svg>"##;

    /// Each shape whose render took minutes, refused when it arrives.
    #[test]
    fn renders_without_bound_are_refused_and_ordinary_filters_pass() {
        let svg = clean(ORDINARY_FILTERS);
        let (w, h, _) = rasterize(svg.as_bytes(), 800).unwrap();
        assert_eq!((w, h), (800, 600));
        let doc = |body: &str| {
            format!(
                r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300">{body}</svg>"##
            )
        };
        let filtered = |filter: &str| {
            doc(&format!(
                r##"<defs><filter id="f" x="0" y="0" width="1" height="1">{filter}</filter></defs><rect width="400" height="300" fill="#888" filter="url(#f)"/>"##
            ))
        };
        let million = format!(
            r##"<path d="M0 0{}" stroke="#000" fill="none"/>"##,
            " L1 1 L2 0".repeat(500_000)
        );
        let many_layers: String = (0..3000)
            .map(|_| r#"<g opacity="0.5"><rect width="400" height="300"/></g>"#)
            .collect();
        let huge_regions: String = (0..40)
            .map(|i| format!(r##"<rect id="r{i}" width="4" height="3" filter="url(#big)"/>"##))
            .collect();
        let cases = [
            (filtered(r#"<feTurbulence baseFrequency="0.1" numOctaves="1000"/>"#), "numOctaves"),
            (filtered(r#"<feMorphology radius="100000"/>"#), "operations per pixel"),
            (filtered(r#"<feMorphology radius="60"/>"#), "operations per pixel"),
            (filtered(r#"<feConvolveMatrix order="300"/>"#), "order"),
            (filtered(r#"<feConvolveMatrix order="65536"/>"#), "order"),
            (filtered(r#"<feGaussianBlur stdDeviation="1e30"/>"#), "stdDeviation"),
            (filtered(&"<feOffset dx=\"1\"/>".repeat(40)), "primitives"),
            (
                filtered(&format!("<feMerge>{}</feMerge>", "<feMergeNode/>".repeat(20))),
                "feMerge",
            ),
            (doc(&million), "path segments"),
            (doc(&many_layers), "operations per pixel"),
            (
                doc(&format!(
                    r##"<defs><filter id="big" filterUnits="userSpaceOnUse" x="-100000" y="-100000" width="200000" height="200000"><feGaussianBlur stdDeviation="2"/><feGaussianBlur stdDeviation="2"/></filter></defs>{huge_regions}"##
                )),
                "operations per pixel",
            ),
            (
                doc(r##"<path d="M0 0 L400 300 L0 300 Z" stroke="#000" stroke-dasharray="0.001" fill="none"/>"##.repeat(200).as_str()),
                "path segments",
            ),
        ];
        for (svg, expected) in cases {
            let error = sanitize(svg.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("accepted: {}", &svg[..svg.len().min(300)]));
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    /// The shapes a review found past the first count: a tall, narrow canvas (the render cuts
    /// its height), chains of masks, a pattern tile far larger than the canvas, and one large
    /// embedded image drawn a thousand times.
    #[test]
    fn costs_hidden_in_canvas_shape_masks_patterns_and_images_are_counted() {
        let blurred: String = (0..2000)
            .map(|_| r##"<rect width="1" height="8" filter="url(#b)"/>"##)
            .collect();
        let tall = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="1" height="8192"><defs><filter id="b"><feGaussianBlur stdDeviation="1"/></filter></defs>{blurred}</svg>"##
        );
        let mut masks = String::new();
        for i in 0..200 {
            let next = if i + 1 < 200 {
                format!(r##" mask="url(#m{})""##, i + 1)
            } else {
                String::new()
            };
            masks.push_str(&format!(
                r##"<mask id="m{i}"{next}><rect width="400" height="300" fill="#fff"/></mask>"##
            ));
        }
        let masked: String = (0..20)
            .map(|_| r##"<rect width="400" height="300" mask="url(#m0)"/>"##)
            .collect();
        let chain = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><defs>{masks}</defs>{masked}</svg>"##
        );
        let pattern = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><defs><pattern id="p" width="100000" height="100000" patternUnits="userSpaceOnUse"><rect width="10" height="10"/></pattern></defs><rect width="400" height="300" fill="url(#p)"/></svg>"##;
        let mut png = Vec::new();
        image::RgbaImage::new(2000, 2000)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(&png);
        let uses: String = (0..1000)
            .map(|i| format!(r##"<use href="#i" x="{}"/>"##, i % 400))
            .collect();
        let images = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><defs><image id="i" width="1" height="1" href="data:image/png;base64,{data}"/></defs>{uses}</svg>"##
        );
        for (name, svg) in [
            ("tall", tall),
            ("masks", chain),
            ("pattern", pattern.to_owned()),
            ("images", images),
        ] {
            let error = sanitize(svg.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert!(error.contains("operations per pixel"), "{name}: {error}");
        }
    }

    /// Cycles the renderer would follow until its stack ran out: through a style sheet, and
    /// behind a doubled id (the renderer takes the last element with an id, the checks the
    /// first: the later one loses its id).
    #[test]
    fn reference_cycles_through_style_sheets_and_doubled_ids_are_refused() {
        let css = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><style>.a{mask:url(#m2)} .b{mask:url(#m3)} .c{mask:url(#m1)}</style><mask id="m1"><rect class="a" width="9" height="9"/></mask><mask id="m2"><rect class="b" width="9" height="9"/></mask><mask id="m3"><rect class="c" width="9" height="9"/></mask><rect width="9" height="9" mask="url(#m1)"/></svg>"##;
        let error = sanitize(css.as_bytes()).unwrap_err();
        assert!(error.contains("refer to themselves"), "{error}");
        let doubled = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><g id="m2"/><mask id="m1"><rect mask="url(#m2)" width="9" height="9"/></mask><mask id="m2"><rect mask="url(#m3)" width="9" height="9"/></mask><mask id="m3"><rect mask="url(#m1)" width="9" height="9"/></mask><rect width="9" height="9" mask="url(#m1)"/></svg>"##;
        let clean = clean(doubled);
        assert_eq!(clean.matches("id=\"m2\"").count(), 1, "{clean}");
        rasterize(clean.as_bytes(), 40).unwrap();
        // A style sheet that paints with gradients and clips, as editors export it, passes.
        let exported = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><style>.cls-1{fill:url(#g)}.cls-2{clip-path:url(#c)}</style><linearGradient id="g"><stop offset="0" stop-color="#000"/></linearGradient><clipPath id="c"><rect width="5" height="5"/></clipPath></defs><g class="cls-2"><rect class="cls-1" width="9" height="9"/></g></svg>"##;
        rasterize(clean_bytes(exported).as_slice(), 40).unwrap();
    }

    fn clean_bytes(svg: &str) -> Vec<u8> {
        sanitize(svg.as_bytes()).unwrap().bytes
    }

    /// A master cached before the bound (or crafted into a cache) is refused by the render
    /// itself, whatever width is asked for.
    #[test]
    fn the_render_checks_the_bound_at_the_width_it_draws() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 30"><defs><filter id="f"><feMorphology radius="3"/></filter></defs><rect width="40" height="30" filter="url(#f)"/></svg>"##;
        // 3 user units are 6 pixels at 80 wide, 600 at 8000 wide.
        assert!(rasterize(svg.as_bytes(), 80).is_ok());
        let error = rasterize(svg.as_bytes(), 8000).unwrap_err();
        assert!(error.contains("operations per pixel"), "{error}");
    }
}
