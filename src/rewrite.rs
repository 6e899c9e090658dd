//! Splicing figures into a chapter by source offsets.
//!
//! The chapter is never re-serialised: each directive's bytes are replaced and every other byte
//! comes back as it was. At the top level of a chapter a figure also gets a blank line before and
//! after it where there was none; inside lists and blockquotes it does not, because a blank line
//! there could turn a tight list loose, and the figure line ends its own HTML block anyway (see
//! `figure::LINE_OPENER`). No I/O here.

use std::ops::Range;

/// One directive's replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replacement {
    /// The bytes replaced.
    pub(crate) span: Range<usize>,
    /// What replaces them: one line, or nothing.
    pub(crate) text: String,
    /// Whether the directive sat outside any list, blockquote or footnote.
    pub(crate) top_level: bool,
}

/// Applies replacements to `text`. Spans must not overlap.
pub(crate) fn splice(text: &str, mut replacements: Vec<Replacement>) -> String {
    replacements.sort_by_key(|r| r.span.start);
    let extra: usize = replacements.iter().map(|r| r.text.len() + 4).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut cursor = 0;
    for Replacement {
        span,
        text: replacement,
        top_level,
    } in replacements
    {
        debug_assert!(span.start >= cursor, "overlapping splice spans");
        out.push_str(&text[cursor..span.start]);
        let pad = top_level && !replacement.is_empty();
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let eol = line_ending(text, span.end);
        if pad && line_start > 0 && !previous_line_blank(text, line_start) {
            out.push_str(eol);
            out.push_str(&text[line_start..span.start]);
        }
        out.push_str(&replacement);
        if pad && !next_line_blank(text, span.end) {
            out.push_str(eol);
        }
        cursor = span.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// The URL of an asset as seen from a chapter's page: `../` once per directory of the chapter's
/// path, then the assets directory and the file name, percent-encoded where needed.
pub(crate) fn asset_url(chapter_path: &str, assets_dir: &str, file_name: &str) -> String {
    let depth = chapter_path.split(['/', '\\']).count().saturating_sub(1);
    let mut url = "../".repeat(depth);
    for segment in assets_dir.split('/').chain(std::iter::once(file_name)) {
        encode_segment(segment, &mut url);
        url.push('/');
    }
    url.pop();
    url
}

fn encode_segment(segment: &str, out: &mut String) {
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The line ending used at `offset`'s line: the chapter's own, CRLF or LF.
fn line_ending(text: &str, offset: usize) -> &'static str {
    match text[offset..].find('\n') {
        Some(i) if i > 0 && text.as_bytes()[offset + i - 1] == b'\r' => "\r\n",
        Some(_) => "\n",
        None if text.contains("\r\n") => "\r\n",
        None => "\n",
    }
}

/// Whether the line before the one starting at `line_start` holds only white space.
fn previous_line_blank(text: &str, line_start: usize) -> bool {
    let before = &text[..line_start - 1];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    before[start..].trim().is_empty()
}

/// Whether the line after the one ending at `line_end` is blank, or there is none.
fn next_line_blank(text: &str, line_end: usize) -> bool {
    let rest = &text[line_end..];
    let Some(newline) = rest.find('\n') else {
        return true;
    };
    let next = &rest[newline + 1..];
    let end = next.find('\n').unwrap_or(next.len());
    next[..end].trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbook_markdown::pulldown_cmark::html::push_html;
    use mdbook_markdown::{MarkdownOptions, new_cmark_parser};

    fn replace(text: &str, from: &str, to: &str, top_level: bool) -> String {
        let start = text.find(from).unwrap();
        splice(
            text,
            vec![Replacement {
                span: start..start + from.len(),
                text: to.to_owned(),
                top_level,
            }],
        )
    }

    fn render(markdown: &str) -> String {
        let mut html = String::new();
        push_html(
            &mut html,
            new_cmark_parser(markdown, &MarkdownOptions::default()),
        );
        html
    }

    #[test]
    fn pads_top_level_figures_with_blank_lines() {
        assert_eq!(
            replace("a\nFENCE\nb\n", "FENCE", "FIG", true),
            "a\n\nFIG\n\nb\n"
        );
        assert_eq!(
            replace("a\n\nFENCE\n\nb\n", "FENCE", "FIG", true),
            "a\n\nFIG\n\nb\n"
        );
        assert_eq!(replace("FENCE", "FENCE", "FIG", true), "FIG");
        assert_eq!(
            replace("a\r\nFENCE\r\nb", "FENCE", "FIG", true),
            "a\r\n\r\nFIG\r\n\r\nb"
        );
    }

    #[test]
    fn leaves_containers_alone() {
        let text = "- a\n- FENCE\n  more\n- c\n";
        assert_eq!(
            replace(text, "FENCE", "FIG", false),
            "- a\n- FIG\n  more\n- c\n"
        );
    }

    #[test]
    fn removal_adds_nothing() {
        assert_eq!(replace("a\nFENCE\nb\n", "FENCE", "", true), "a\n\nb\n");
    }

    #[test]
    fn text_after_a_figure_line_stays_markdown_even_without_a_blank_line() {
        let figure = crate::figure::error_html("x", "y");
        let tight_list = format!("- one\n- {figure}\n  *still markdown*\n- three\n");
        let html = render(&tight_list);
        assert!(html.contains("<em>still markdown</em>"), "{html}");
        // The list stays tight: no paragraph wraps its items.
        assert!(html.contains("<li>one</li>"), "{html}");
    }

    #[test]
    fn several_replacements_in_any_order() {
        let text = "A\n\nX\n\nB\n\nY\n";
        let x = text.find('X').unwrap();
        let y = text.find('Y').unwrap();
        let out = splice(
            text,
            vec![
                Replacement {
                    span: y..y + 1,
                    text: "2".into(),
                    top_level: true,
                },
                Replacement {
                    span: x..x + 1,
                    text: "1".into(),
                    top_level: true,
                },
            ],
        );
        assert_eq!(out, "A\n\n1\n\nB\n\n2\n");
    }

    #[test]
    fn asset_urls_climb_out_of_the_chapter_directory() {
        assert_eq!(asset_url("intro.md", "imagegen", "a.png"), "imagegen/a.png");
        assert_eq!(
            asset_url("guide/deep/ch.md", "imagegen", "a.png"),
            "../../imagegen/a.png"
        );
        assert_eq!(
            asset_url("ch.md", "my images/gen", "a.png"),
            "my%20images/gen/a.png"
        );
    }

    mod properties {
        use super::*;
        use crate::directive::{markdown_options, parse};
        use proptest::prelude::*;

        /// Pieces of Markdown that stress the parser: containers, code, HTML, tables, CRLF, Unicode.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("plain text, *emphasis* and `code`\n".to_owned()),
                Just("\n".to_owned()),
                Just("\r\n".to_owned()),
                Just("# Heading {#id}\n".to_owned()),
                Just("- item\n".to_owned()),
                Just("  continued\n".to_owned()),
                Just("> quote\n".to_owned()),
                Just("1. ordered\n".to_owned()),
                Just("| a | b |\n|---|---|\n| 1 | 2 |\n".to_owned()),
                Just("<div>\n".to_owned()),
                Just("</div>\n".to_owned()),
                Just("```rust\n# hidden\n```\n".to_owned()),
                Just("````\n".to_owned()),
                Just("```\n".to_owned()),
                Just("    indented code\n".to_owned()),
                Just("[^1]: footnote\n".to_owned()),
                Just("$$ x^2 $$ \\* ünïcödé 灯台 🦀\n".to_owned()),
                Just("```image-prompt alt=\"a\"\nprompt\n```\n".to_owned()),
                Just("- ```image-prompt\n  in a list\n  ```\n".to_owned()),
                Just("> ```image-prompt size=\"bad\"\n> in a quote\n> ```\n".to_owned()),
                Just("```image-prompt\r\ncrlf prompt\r\n```\r\n".to_owned()),
                Just("~~~image-prompt caption='c'\n".to_owned()),
                "[ -~]{0,20}\n",
            ]
        }

        fn document() -> impl Strategy<Value = String> {
            prop::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Splicing never panics, and every byte outside a directive comes back in order.
            #[test]
            fn every_byte_outside_directives_is_kept(text in document()) {
                let (directives, problems) = parse(&text, &markdown_options(false));
                let mut spans: Vec<_> = directives.iter().map(|d| (d.span.clone(), d.top_level))
                    .chain(problems.iter().map(|p| (p.span.clone(), p.top_level)))
                    .collect();
                spans.sort_by_key(|(span, _)| span.start);
                let marker = "\u{1F5BC}FIGURE\u{1F5BC}";
                let replacements = spans.iter().map(|(span, top_level)| Replacement {
                    span: span.clone(),
                    text: marker.to_owned(),
                    top_level: *top_level,
                }).collect();
                let out = splice(&text, replacements);

                // Remove the markers and the line endings padding added around them: what is left
                // must be the input without the directives' bytes.
                let mut expected = String::new();
                let mut cursor = 0;
                for (span, _) in &spans {
                    expected.push_str(&text[cursor..span.start]);
                    cursor = span.end;
                }
                expected.push_str(&text[cursor..]);
                let mut kept = out.replace(marker, "");
                let mut expected_norm = expected.clone();
                for s in [&mut kept, &mut expected_norm] {
                    *s = s.replace("\r\n", "\n");
                    while s.contains("\n\n") {
                        *s = s.replace("\n\n", "\n");
                    }
                }
                prop_assert_eq!(kept, expected_norm);
                prop_assert_eq!(out.matches(marker).count(), spans.len());
                if spans.is_empty() {
                    prop_assert_eq!(out, text);
                }
            }

            /// Any text at all: parsing and splicing never panic.
            #[test]
            fn never_panics_on_any_text(text in "(?s).{0,400}") {
                let (directives, _) = parse(&text, &markdown_options(true));
                let replacements = directives.iter().map(|d| Replacement {
                    span: d.span.clone(),
                    text: "x".into(),
                    top_level: d.top_level,
                }).collect();
                splice(&text, replacements);
            }
        }
    }
}
