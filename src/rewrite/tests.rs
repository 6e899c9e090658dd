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
    assert_eq!(
        rooted_asset_url("/book", "imagegen", "a.png"),
        "/book/imagegen/a.png"
    );
    assert_eq!(
        rooted_asset_url("https://x.org/", "imagegen", "a.png"),
        "https://x.org/imagegen/a.png"
    );
}
