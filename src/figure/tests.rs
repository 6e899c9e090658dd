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
    }
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
