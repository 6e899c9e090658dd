//! What a directive becomes: a `<figure>` for the HTML renderer, a Markdown image for the others,
//! or a visible error figure; plus alt text derived from a prompt when the author gave none.
//!
//! Every value is escaped for where it lands. Each result is a single line, so it can replace a
//! directive inside a list item or a blockquote without re-indenting anything. No I/O here.

/// The HTML comment that opens every figure line.
///
/// A line that starts with `<!--` and contains `-->` is a complete CommonMark HTML block (type 2),
/// so the figure ends with its line: Markdown on the next line is still Markdown, even without a
/// blank line in between, and even in a tight list where a blank line would change the layout.
const LINE_OPENER: &str = "<!-- imagegen -->";

/// The most characters of derived alt text, the common advice for screen readers.
const ALT_MAX_CHARS: usize = 125;

/// Words that describe rendering rather than content; they are dropped from derived alt text.
const STYLE_WORDS: &[&str] = &[
    "4k",
    "8k",
    "16k",
    "hd",
    "uhd",
    "hdr",
    "high quality",
    "best quality",
    "highest quality",
    "masterpiece",
    "photorealistic",
    "hyperrealistic",
    "hyper realistic",
    "ultra realistic",
    "ultra-realistic",
    "highly detailed",
    "ultra detailed",
    "extremely detailed",
    "intricate details",
    "trending on artstation",
    "artstation",
    "octane render",
    "unreal engine",
    "unreal engine 5",
    "sharp focus",
    "award winning",
    "award-winning",
    "cinematic lighting",
    "high resolution",
    "high-resolution",
];

/// One `<source>` of a `<picture>`: a format and its widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// The media type, such as `image/avif`.
    pub(crate) media_type: &'static str,
    /// `url width`w pairs, narrowest first.
    pub(crate) candidates: Vec<(String, u32)>,
}

/// One image, ready to be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Figure<'a> {
    /// The modern formats, most preferred first; empty for a plain `<img>`.
    pub(crate) sources: Vec<Source>,
    /// The fallback files as `(url, width)`, narrowest first; the widest is `<img src>`.
    pub(crate) fallbacks: Vec<(String, u32)>,
    /// The `sizes` attribute for every `srcset`.
    pub(crate) sizes: &'a str,
    pub(crate) alt: &'a str,
    pub(crate) caption: Option<&'a str>,
    /// The image's pixel size.
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// The width to display it at, when the author asked for one.
    pub(crate) display_width: Option<u32>,
    pub(crate) class: Option<&'a str>,
    pub(crate) id: Option<&'a str>,
    /// A long description as `(element id, text)`, shown in a `<details>` under the image and
    /// linked to it with `aria-describedby`.
    pub(crate) description: Option<(&'a str, &'a str)>,
    /// The dark twin, shown instead of the image in dark themes (HTML only).
    pub(crate) dark: Option<Picture>,
    /// The dark themes' CSS, written before the figure (once per chapter).
    pub(crate) style: Option<&'a str>,
}

/// One image's files: a figure's dark twin, shown at the light image's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Picture {
    pub(crate) sources: Vec<Source>,
    pub(crate) fallbacks: Vec<(String, u32)>,
}

/// The CSS that shows a figure's dark twin instead of its light image: on the `<html>` classes
/// of mdBook's dark themes (`themes`), without JavaScript (`html:not(.js)`, where mdBook's own
/// CSS follows the system) by `prefers-color-scheme`, and never in print. A hidden image is
/// `display: none`, and both are `loading="lazy"`: a browser that lays out neither does not
/// download it. One line, with no `{{` (mdBook's `links` would read it).
pub(crate) fn dark_style(themes: &[String]) -> String {
    let each = |class: &str| {
        themes
            .iter()
            .map(|theme| format!("html.{theme} .imagegen-{class}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let style = format!(
        "<style>.imagegen-dark{{display:none}}{}{{display:none}}{}{{display:inline}}@media (prefers-color-scheme:dark){{html:not(.js) .imagegen-light{{display:none}}html:not(.js) .imagegen-dark{{display:inline}}}}@media print{{.imagegen-light{{display:inline!important}}.imagegen-dark{{display:none!important}}}}</style>",
        each("light"),
        each("dark")
    );
    debug_assert!(!style.contains("{{") && !style.contains('\n'));
    style
}

impl Figure<'_> {
    /// The size the figure is shown at: its own, or the author's width with the height to
    /// scale.
    fn shown_size(&self) -> (u32, u32) {
        match self.display_width {
            Some(shown) => {
                let height = (u64::from(self.height) * u64::from(shown)
                    + u64::from(self.width) / 2)
                    / u64::from(self.width).max(1);
                (shown, u32::try_from(height).unwrap_or(u32::MAX).max(1))
            }
            None => (self.width, self.height),
        }
    }

    /// The widest fallback's URL: `<img src>`, and the image other renderers show.
    fn src(&self) -> &str {
        self.fallbacks.last().map_or("", |(url, _)| url.as_str())
    }
}

/// The `sizes` for an image the author set to `width` CSS pixels in mdBook's default theme
/// (15 px of padding on each side of the content).
pub(crate) fn sizes_for_width(width: u32) -> String {
    format!(
        "(max-width: {}px) calc(100vw - 30px), {width}px",
        width + 30
    )
}

/// The figure as one line of HTML: a `<picture>` with a `<source>` per modern format and an
/// `<img>` with the intrinsic size, so the page does not shift when the image arrives.
pub(crate) fn html(figure: &Figure<'_>) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(LINE_OPENER);
    if let Some(style) = figure.style.filter(|_| figure.dark.is_some()) {
        out.push_str(style);
    }
    out.push_str("<figure class=\"imagegen");
    if let Some(class) = figure.class {
        out.push(' ');
        out.push_str(&escape_html(class));
    }
    out.push('"');
    if let Some(id) = figure.id {
        out.push_str(" id=\"");
        out.push_str(&escape_html(id));
        out.push('"');
    }
    out.push('>');
    // An empty alt marks a decorative image: assistive technology skips it, and nothing may
    // describe it (a description would undo the presentation role).
    let description = figure.description.filter(|_| !figure.alt.is_empty());
    match &figure.dark {
        None => picture(&mut out, figure, &figure.sources, &figure.fallbacks, None),
        Some(dark) => {
            picture(
                &mut out,
                figure,
                &figure.sources,
                &figure.fallbacks,
                Some("imagegen-light"),
            );
            picture(
                &mut out,
                figure,
                &dark.sources,
                &dark.fallbacks,
                Some("imagegen-dark"),
            );
        }
    }
    // Before the caption: a `<figcaption>` must be the figure's first or last child.
    if let Some((id, text)) = description {
        out.push_str(
            "<details class=\"imagegen-description\"><summary>Image description</summary><p id=\"",
        );
        out.push_str(&escape_html(id));
        out.push_str("\">");
        out.push_str(&escape_html(text));
        out.push_str("</p></details>");
    }
    if let Some(caption) = figure.caption {
        out.push_str("<figcaption>");
        out.push_str(&escape_html(caption));
        out.push_str("</figcaption>");
    }
    out.push_str("</figure>");
    out
}

/// One image of a figure: a `<picture>` with a `<source>` per modern format (always, with a
/// `class`, so that the theme's CSS can hide it), and its `<img>` at the figure's size.
fn picture(
    out: &mut String,
    figure: &Figure<'_>,
    sources: &[Source],
    fallbacks: &[(String, u32)],
    class: Option<&str>,
) {
    let (width, height) = figure.shown_size();
    let sizes = escape_html(figure.sizes);
    let picture = !sources.is_empty() || class.is_some();
    if picture {
        match class {
            Some(class) => out.push_str(&format!("<picture class=\"{class}\">")),
            None => out.push_str("<picture>"),
        }
        for source in sources {
            out.push_str(&format!(
                "<source type=\"{}\" srcset=\"{}\" sizes=\"{sizes}\">",
                source.media_type,
                srcset(&source.candidates)
            ));
        }
    }
    out.push_str("<img src=\"");
    out.push_str(&escape_html(
        fallbacks.last().map_or("", |(url, _)| url.as_str()),
    ));
    out.push('"');
    if fallbacks.len() > 1 {
        out.push_str(&format!(
            " srcset=\"{}\" sizes=\"{sizes}\"",
            srcset(fallbacks)
        ));
    }
    out.push_str(" alt=\"");
    out.push_str(&escape_html(figure.alt));
    out.push('"');
    let description = figure.description.filter(|_| !figure.alt.is_empty());
    if figure.alt.is_empty() {
        out.push_str(" role=\"presentation\"");
    } else if let Some((id, _)) = description {
        out.push_str(" aria-describedby=\"");
        out.push_str(&escape_html(id));
        out.push('"');
    }
    out.push_str(&format!(
        " width=\"{width}\" height=\"{height}\" loading=\"lazy\" decoding=\"async\" style=\"max-width:100%;height:auto\">"
    ));
    if picture {
        out.push_str("</picture>");
    }
}

fn srcset(candidates: &[(String, u32)]) -> String {
    candidates
        .iter()
        .map(|(url, width)| format!("{} {width}w", escape_html(url)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The figure as a Markdown image, for renderers other than HTML.
pub(crate) fn markdown(figure: &Figure<'_>) -> String {
    let mut out = format!("![{}]({}", escape_markdown_label(figure.alt), figure.src());
    if let Some(caption) = figure.caption {
        out.push_str(" \"");
        for c in caption.chars() {
            // `{` as in a label: no `{{` may reach mdBook's `links` preprocessor.
            if matches!(c, '"' | '\\' | '{') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push(')');
    out
}

/// A visible stand-in for a directive that failed, for `on-error = "placeholder"`.
pub(crate) fn error_html(location: &str, message: &str) -> String {
    format!(
        "{LINE_OPENER}<figure class=\"imagegen imagegen-error\" role=\"alert\" style=\"border:2px dashed #c0392b;padding:0.75em 1em;margin:1em 0\"><strong>Image not generated</strong> <code>{}</code><br>{}</figure>",
        escape_html(location),
        escape_html(message)
    )
}

/// The error stand-in for renderers other than HTML.
pub(crate) fn error_markdown(location: &str, message: &str) -> String {
    let text = format!("Image not generated ({location}): {message}");
    format!("**{}**", escape_markdown_label(&text))
}

/// Alt text from a prompt: its first sentence, without words that describe rendering rather than
/// content, cut at a word boundary to at most 125 characters.
pub(crate) fn derive_alt(prompt: &str) -> String {
    let sentence = first_sentence(prompt);
    let kept: Vec<&str> = sentence
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty() && !is_style_word(part))
        .collect();
    let mut alt = kept.join(", ");
    if alt.is_empty() {
        alt = sentence.trim().to_owned();
    }
    let alt = truncate_words(&alt, ALT_MAX_CHARS);
    let mut chars = alt.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn first_sentence(text: &str) -> &str {
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            let next = text[i + c.len_utf8()..].chars().next();
            if next.is_none_or(char::is_whitespace) {
                end = i;
                break;
            }
        }
    }
    text[..end].trim()
}

fn is_style_word(part: &str) -> bool {
    let lower = part.to_lowercase();
    STYLE_WORDS.contains(&lower.as_str())
}

/// Cuts `text` to at most `max` characters at a word boundary, ending with `…` when cut.
fn truncate_words(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let budget = max - 1; // room for the ellipsis
    let cut = text
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(i, _)| i);
    let head = &text[..cut];
    let head = match head.rfind(char::is_whitespace) {
        Some(space) if space > 0 => &head[..space],
        _ => head,
    };
    format!("{}…", head.trim_end_matches([',', ';', ':', ' ']))
}

/// Escapes text for an HTML attribute value or element content.
///
/// A `{` is written as a character reference too: what we emit goes back into the chapter, where
/// mdBook's `links` preprocessor (when it runs after us) expands `{{#include …}}`,
/// `{{#title …}}` and the rest, even inside HTML. With no `{{` left, no text we write, least of
/// all text from a provider or a describer, can become such a directive; the page shows the same
/// braces.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // A figure is one line: nothing may end it, or act in the page.
            c if crate::outside::is_hidden(c) => out.push(' '),
            '&' => out.push_str("&amp;"),
            '{' => out.push_str("&#123;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text inside a Markdown link label, where brackets and backslashes are special.
fn escape_markdown_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if crate::outside::is_hidden(c) {
            out.push(' ');
            continue;
        }
        // Every ASCII punctuation character may be escaped in CommonMark; these could start
        // a link, an emphasis, code, HTML, an entity or a table cell.
        if matches!(
            c,
            '[' | ']'
                | '('
                | ')'
                | '\\'
                | '*'
                | '_'
                | '`'
                | '<'
                | '>'
                | '&'
                | '!'
                | '|'
                | '~'
                | '#'
                // Not special to CommonMark, but `{{` is to mdBook's `links` preprocessor:
                // `\{\{#include …}}` is no directive there, and reads as `{{#include …}}`.
                | '{'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure<'a>() -> Figure<'a> {
        Figure {
            sources: Vec::new(),
            fallbacks: vec![("../imagegen/ab.png".to_owned(), 1536)],
            sizes: "100vw",
            alt: "A \"quoted\" <b>cat</b> & dog",
            caption: Some("Figure 1: <script>"),
            width: 1536,
            height: 1024,
            display_width: None,
            class: None,
            id: None,
            description: None,
            dark: None,
            style: None,
        }
    }

    #[test]
    fn a_dark_twin_is_a_second_picture_at_the_same_size_after_the_style() {
        let themes = ["coal".to_owned(), "my-dark".to_owned()];
        let style = dark_style(&themes);
        assert!(!style.contains("{{"), "{style}");
        assert!(
            style.contains("html.coal .imagegen-dark,html.my-dark .imagegen-dark{display:inline}")
        );
        assert!(style.contains("html:not(.js) .imagegen-light{display:none}"));
        assert!(style.contains("@media print{.imagegen-light{display:inline!important}"));
        let twin = html(&Figure {
            dark: Some(Picture {
                sources: vec![Source {
                    media_type: "image/webp",
                    candidates: vec![("imagegen/d-750.webp".into(), 750)],
                }],
                fallbacks: vec![("imagegen/d.png".into(), 1536)],
            }),
            style: Some(&style),
            description: Some(("imagegen-desc-1", "Two piers")),
            display_width: Some(600),
            ..figure()
        });
        assert!(!twin.contains('\n') && !twin.contains("{{"));
        assert!(
            twin.starts_with(&format!("<!-- imagegen -->{style}<figure class=\"imagegen\"><picture class=\"imagegen-light\"><img src=\"../imagegen/ab.png\"")),
            "{twin}"
        );
        assert!(
            twin.contains("<picture class=\"imagegen-dark\"><source type=\"image/webp\" srcset=\"imagegen/d-750.webp 750w\" sizes=\"100vw\"><img src=\"imagegen/d.png\" alt=\"A &quot;quoted&quot; &lt;b&gt;cat&lt;/b&gt; &amp; dog\" aria-describedby=\"imagegen-desc-1\" width=\"600\" height=\"400\" loading=\"lazy\""),
            "{twin}"
        );
        assert_eq!(twin.matches("width=\"600\" height=\"400\"").count(), 2);
        assert_eq!(twin.matches("<details").count(), 1);
        // Without a twin, no style.
        let plain = html(&Figure {
            style: Some(&style),
            ..figure()
        });
        assert!(
            !plain.contains("<style>") && !plain.contains("<picture"),
            "{plain}"
        );
    }

    #[test]
    fn a_long_description_is_linked_and_a_decorative_image_is_presentation() {
        let described = html(&Figure {
            description: Some(("imagegen-desc-1", "Two <b>piers</b>")),
            ..figure()
        });
        assert!(
            described.contains(" aria-describedby=\"imagegen-desc-1\" width="),
            "{described}"
        );
        assert!(
            described.contains("<details class=\"imagegen-description\"><summary>Image description</summary><p id=\"imagegen-desc-1\">Two &lt;b&gt;piers&lt;/b&gt;</p></details><figcaption>"),
            "{described}"
        );
        let decorative = html(&Figure {
            alt: "",
            description: Some(("imagegen-desc-1", "ignored")),
            ..figure()
        });
        assert!(
            decorative.contains(" alt=\"\" role=\"presentation\" width="),
            "{decorative}"
        );
        assert!(!decorative.contains("aria-describedby") && !decorative.contains("<details"));
    }

    #[test]
    fn html_is_one_escaped_line() {
        let html = html(&figure());
        assert_eq!(
            html,
            "<!-- imagegen --><figure class=\"imagegen\"><img src=\"../imagegen/ab.png\" alt=\"A &quot;quoted&quot; &lt;b&gt;cat&lt;/b&gt; &amp; dog\" width=\"1536\" height=\"1024\" loading=\"lazy\" decoding=\"async\" style=\"max-width:100%;height:auto\"><figcaption>Figure 1: &lt;script&gt;</figcaption></figure>"
        );
        assert!(!html.contains('\n'));
    }

    #[test]
    fn a_picture_offers_each_format_with_widths_and_keeps_the_intrinsic_size() {
        let picture = html(&Figure {
            sources: vec![
                Source {
                    media_type: "image/avif",
                    candidates: vec![("i/a-480.avif".into(), 480), ("i/a-750.avif".into(), 750)],
                },
                Source {
                    media_type: "image/webp",
                    candidates: vec![("i/a-480.webp".into(), 480), ("i/a-750.webp".into(), 750)],
                },
            ],
            fallbacks: vec![("i/a-750.jpg".into(), 750)],
            sizes: "(max-width: 780px) calc(100vw - 30px), 750px",
            caption: None,
            ..figure()
        });
        assert_eq!(
            picture,
            concat!(
                "<!-- imagegen --><figure class=\"imagegen\"><picture>",
                "<source type=\"image/avif\" srcset=\"i/a-480.avif 480w, i/a-750.avif 750w\" sizes=\"(max-width: 780px) calc(100vw - 30px), 750px\">",
                "<source type=\"image/webp\" srcset=\"i/a-480.webp 480w, i/a-750.webp 750w\" sizes=\"(max-width: 780px) calc(100vw - 30px), 750px\">",
                "<img src=\"i/a-750.jpg\" alt=\"A &quot;quoted&quot; &lt;b&gt;cat&lt;/b&gt; &amp; dog\" width=\"1536\" height=\"1024\" loading=\"lazy\" decoding=\"async\" style=\"max-width:100%;height:auto\">",
                "</picture></figure>"
            )
        );
        // Several fallback widths (no modern format) give the `<img>` its own srcset.
        let plain = html(&Figure {
            fallbacks: vec![("a-480.jpg".into(), 480), ("a-750.jpg".into(), 750)],
            ..figure()
        });
        assert!(
            plain.contains(
                "<img src=\"a-750.jpg\" srcset=\"a-480.jpg 480w, a-750.jpg 750w\" sizes=\"100vw\""
            ),
            "{plain}"
        );
        assert_eq!(
            sizes_for_width(400),
            "(max-width: 430px) calc(100vw - 30px), 400px"
        );
    }

    #[test]
    fn display_width_scales_height_and_class_and_id_are_added() {
        let html = html(&Figure {
            display_width: Some(480),
            class: Some("wide"),
            id: Some("fig-1"),
            caption: None,
            ..figure()
        });
        assert!(
            html.contains("<figure class=\"imagegen wide\" id=\"fig-1\">"),
            "{html}"
        );
        assert!(html.contains("width=\"480\" height=\"320\""), "{html}");
        assert!(!html.contains("figcaption"));
    }

    #[test]
    fn markdown_escapes_label_and_title() {
        let md = markdown(&Figure {
            alt: "a [b] *c*",
            caption: Some("say \"hi\""),
            ..figure()
        });
        assert_eq!(
            md,
            "![a \\[b\\] \\*c\\*](../imagegen/ab.png \"say \\\"hi\\\"\")"
        );
    }

    /// The shapes mdBook's `links` preprocessor expands: `{{#name …}}`, with white space after
    /// the braces too, and its escaped form.
    const MDBOOK_DIRECTIVES: &[&str] = &[
        "{{#include ../../secret.txt}}",
        "{{ #include /proc/self/environ }}",
        "{{#playground ../x.rs editable}}",
        "{{#title Owned}}",
        "{{#rustdoc_include ../x.rs:2}}",
        "\\{{#include ../x.txt}}",
    ];

    #[test]
    fn no_mdbook_directive_survives_in_any_text_we_emit() {
        for hostile in MDBOOK_DIRECTIVES {
            let text = format!("Bad request {hostile} end");
            let outputs = [
                html(&Figure {
                    alt: &text,
                    caption: Some(&text),
                    description: Some(("d", &text)),
                    ..figure()
                }),
                markdown(&Figure {
                    alt: &text,
                    caption: Some(&text),
                    ..figure()
                }),
                error_html(&text, &text),
                error_markdown(&text, &text),
            ];
            for out in outputs {
                assert!(!out.contains("{{"), "{out}");
            }
        }
        // The reader sees the braces: a character reference in HTML, an escape in Markdown.
        assert_eq!(escape_html("{{#title x}}"), "&#123;&#123;#title x}}");
        assert_eq!(escape_markdown_label("{{#title x}}"), "\\{\\{\\#title x}}");
    }

    #[test]
    fn error_figures_show_location_and_message() {
        let html = error_html("src/a.md:3", "bad <size>");
        assert!(html.starts_with("<!-- imagegen --><figure class=\"imagegen imagegen-error\""));
        assert!(html.contains("<code>src/a.md:3</code><br>bad &lt;size&gt;"));
        assert_eq!(
            error_markdown("src/a.md:3", "bad"),
            "**Image not generated \\(src/a.md:3\\): bad**"
        );
    }

    #[test]
    fn alt_is_the_first_sentence_without_style_words() {
        assert_eq!(
            derive_alt(
                "a lighthouse on a cliff at dusk, 4k, photorealistic, trending on artstation, high quality. Second sentence."
            ),
            "A lighthouse on a cliff at dusk"
        );
        assert_eq!(
            derive_alt("Version 2.5 of the chart! More."),
            "Version 2.5 of the chart"
        );
        assert_eq!(derive_alt("4k, 8k"), "4k, 8k");
        assert_eq!(derive_alt(""), "");
    }

    #[test]
    fn alt_is_cut_at_a_word_boundary() {
        let prompt = "word ".repeat(60);
        let alt = derive_alt(&prompt);
        assert!(alt.chars().count() <= 125, "{}", alt.len());
        assert!(alt.ends_with("word…"), "{alt}");
        let unbroken = "x".repeat(200);
        assert_eq!(derive_alt(&unbroken).chars().count(), 125);
    }
}
