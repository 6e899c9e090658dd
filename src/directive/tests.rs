use super::*;

fn parse_str(text: &str) -> (Vec<Directive>, Vec<Problem>) {
    parse(text, &markdown_options(false))
}

fn one(text: &str) -> Directive {
    let (directives, problems) = parse_str(text);
    assert_eq!(problems, [], "unexpected problems");
    assert_eq!(directives.len(), 1, "expected one directive in {text:?}");
    directives.into_iter().next().unwrap()
}

fn problem(text: &str) -> String {
    let (directives, problems) = parse_str(text);
    assert_eq!(directives, [], "expected no directive");
    assert_eq!(problems.len(), 1, "expected one problem");
    problems[0].message.clone()
}

#[test]
fn reads_prompt_attributes_span_and_line() {
    let text = "# Title\n\n```image-prompt alt=\"A cat\" caption='Fig. 1' size=640x480 seed=7\nA cat\n  on a   mat\n```\n\nAfter.\n";
    let d = one(text);
    assert_eq!(d.line, 3);
    assert_eq!(d.prompt, "A cat on a mat");
    assert_eq!(
        &text[d.span.clone()],
        "```image-prompt alt=\"A cat\" caption='Fig. 1' size=640x480 seed=7\nA cat\n  on a   mat\n```"
    );
    assert!(d.top_level);
    assert_eq!(d.attrs.alt.as_deref(), Some("A cat"));
    assert_eq!(d.attrs.caption.as_deref(), Some("Fig. 1"));
    assert_eq!(
        d.attrs.size,
        Some(Size {
            width: 640,
            height: 480
        })
    );
    assert_eq!(d.attrs.seed, Some(7));
}

#[test]
fn every_attribute_is_read() {
    let d = one(
        "```image-prompt alt=\"a\" caption=\"c\" size=\"64x32\" provider=\"local\" model=\"m\" seed=\"1\" style=\"s\" quality=\"high\" negative=\"blur\" width=\"300\" class=\"wide dark\" id=\"fig-1\"\nx\n```\n",
    );
    let a = d.attrs;
    assert_eq!(
        (
            a.provider.as_deref(),
            a.model.as_deref(),
            a.style.as_deref()
        ),
        (Some("local"), Some("m"), Some("s"))
    );
    assert_eq!(
        (a.quality.as_deref(), a.negative.as_deref()),
        (Some("high"), Some("blur"))
    );
    assert_eq!(
        (a.width, a.class.as_deref(), a.id.as_deref()),
        (Some(300), Some("wide dark"), Some("fig-1"))
    );
}

#[test]
fn quoted_values_take_escapes() {
    let d = one("```image-prompt alt=\"say \\\"hi\\\" \\\\ back\\slash\"\nx\n```\n");
    assert_eq!(d.attrs.alt.as_deref(), Some("say \"hi\" \\ back\\slash"));
}

#[test]
fn empty_alt_marks_a_decorative_image() {
    assert_eq!(
        one("```image-prompt alt=\"\"\nx\n```\n")
            .attrs
            .alt
            .as_deref(),
        Some("")
    );
}

#[test]
fn tilde_fences_and_longer_fences_work() {
    assert_eq!(one("~~~image-prompt\nx\n~~~\n").prompt, "x");
    assert_eq!(
        one("````image-prompt\nx\n```\nstill x\n````\n").prompt,
        "x ``` still x"
    );
}

#[test]
fn finds_directives_in_lists_and_blockquotes() {
    let text = "- item\n- ```image-prompt\n  in a list\n  ```\n- after\n\n> quote\n>\n> ```image-prompt\n> in a quote\n> ```\n";
    let (directives, problems) = parse_str(text);
    assert_eq!(problems, []);
    let prompts: Vec<_> = directives
        .iter()
        .map(|d| (d.prompt.as_str(), d.line, d.top_level))
        .collect();
    assert_eq!(prompts, [("in a list", 2, false), ("in a quote", 9, false)]);
    assert!(text[directives[1].span.clone()].ends_with("> ```"));
}

#[test]
fn ignores_fences_inside_code_html_and_other_languages() {
    let text = "````markdown\n```image-prompt\nshown, not run\n```\n````\n\n    ```image-prompt\n    indented code\n    ```\n\n<div>\n```image-prompt\nraw html\n```\n</div>\n\n```image-prompts\nanother word\n```\n\n```rust\nfn image_prompt() {}\n```\n";
    let (directives, problems) = parse_str(text);
    assert_eq!((directives, problems), (vec![], vec![]));
}

#[test]
fn handles_crlf_and_non_ascii() {
    let text = "Été\r\n\r\n```image-prompt alt=\"Phare à l'aube\"\r\nUn phare, côte bretonne 灯台\r\n```\r\nFin\r\n";
    let d = one(text);
    assert_eq!(d.prompt, "Un phare, côte bretonne 灯台");
    assert_eq!(d.line, 3);
    assert!(text[d.span.clone()].ends_with("```"));
    assert_eq!(&text[d.span.end..], "\r\nFin\r\n");
}

#[test]
fn chapters_without_the_keyword_are_skipped_cheaply() {
    assert!(!may_contain("# Plain chapter\n\n```rust\n```\n"));
    assert!(may_contain("```image-prompt\nx\n```"));
}

#[test]
fn unclosed_fence_is_a_problem() {
    assert_eq!(
        problem("```image-prompt\nA cat\n\nmore text\n"),
        "this `image-prompt` block is never closed; add a line with ``` after the prompt"
    );
    assert!(problem("```image-prompt").contains("never closed"));
}

#[test]
fn empty_prompt_is_a_problem() {
    assert!(problem("```image-prompt\n\n```\n").contains("has no prompt"));
}

#[test]
fn attribute_problems_say_how_to_fix_them() {
    let cases = [
        (
            "capton=\"x\"",
            "unknown attribute `capton`; did you mean `caption`?",
        ),
        (
            "colour=\"red\"",
            "unknown attribute `colour`; valid attributes are `alt`, `caption`, `size`, `provider`, `model`, `seed`, `style`, `quality`, `negative`, `width`, `class`, `id`",
        ),
        ("alt", "attribute `alt` has no value; write alt=\"…\""),
        (
            "alt=\"open",
            "the value of `alt` has no closing quote; end it with \"",
        ),
        (
            "alt=\"a\"caption=\"b\"",
            "the value of `alt` runs into the next attribute; put a space after its closing quote",
        ),
        ("alt=a alt=b", "attribute `alt` is given twice; keep one"),
        (
            "size=\"big\"",
            "`big` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels",
        ),
        (
            "size=\"8x8\"",
            "`8x8` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels",
        ),
        (
            "seed=\"-1\"",
            "seed `-1` is not a whole number from 0 to 18446744073709551615",
        ),
        (
            "quality=\"ultra\"",
            "quality `ultra` is not a choice; use one of `auto`, `low`, `medium`, `high`, `xhigh`, `max`",
        ),
        (
            "width=\"50%\"",
            "width `50%` is not a display width; write pixels such as width=\"600\"",
        ),
        (
            "class=\"a<b\"",
            "class `a<b` is not a list of CSS class names; use letters, digits, `-` and `_`, separated by spaces",
        ),
        (
            "id=\"1st\"",
            "id `1st` is not an HTML id; start with a letter and use letters, digits, `-`, `_`, `:` or `.`",
        ),
        (
            "caption=\"\"",
            "attribute `caption` is empty; give it a value or leave it out",
        ),
    ];
    for (info, expected) in cases {
        assert_eq!(
            problem(&format!("```image-prompt {info}\nx\n```\n")),
            expected,
            "for {info}"
        );
    }
}

#[test]
fn problems_keep_their_line_and_span() {
    let text = "a\n\n```image-prompt size=x\nx\n```\n\n```image-prompt\nfine\n```\n";
    let (directives, problems) = parse_str(text);
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0].line, 7);
    assert_eq!(problems[0].line, 3);
    assert_eq!(
        &text[problems[0].span.clone()],
        "```image-prompt size=x\nx\n```"
    );
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("capton", "caption"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("seed", "seed"), 0);
}

#[test]
fn control_characters_are_refused_with_the_directive() {
    for (text, says) in [
        (
            "```image-prompt alt=\"A\u{1b}[2Jcat\"\nA cat\n```\n",
            "U+001B",
        ),
        ("```image-prompt caption=\"x\u{7}\"\nA cat\n```\n", "U+0007"),
        ("```image-prompt alt=\"a\u{202e}b\"\nA cat\n```\n", "U+202E"),
        ("```image-prompt\nA cat\u{0}\n```\n", "U+0000"),
        ("```image-prompt\nA \u{85}cat\n```\n", "U+0085"),
    ] {
        let message = problem(text);
        assert!(message.contains(says), "{text:?}: {message}");
        assert!(message.contains("control character"), "{message}");
    }
    // Tabs and line breaks are white space, not controls.
    assert_eq!(
        one("```image-prompt\talt=\"x\"\nA\tcat\r\non a mat\n```\n").prompt,
        "A cat on a mat"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Chapters made of directive-like pieces and noise.
    fn chapter() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("```image-prompt ".to_owned()),
            Just("```\n".to_owned()),
            Just("~~~image-prompt\n".to_owned()),
            Just("> ".to_owned()),
            Just("- ".to_owned()),
            Just("    ".to_owned()),
            Just("\n".to_owned()),
            Just("alt=\"".to_owned()),
            Just("size=1024x768 ".to_owned()),
            "[a-z =\"'\\\\\u{1b}é\t\r]{0,12}",
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Parsing never panics, every span lies on character boundaries inside the chapter,
        /// spans never overlap, and every directive's attributes are free of control
        /// characters.
        #[test]
        fn parsing_never_fails_and_spans_hold(text in chapter()) {
            let (directives, problems) = parse_str(&text);
            let mut spans: Vec<_> = directives
                .iter()
                .map(|d| d.span.clone())
                .chain(problems.iter().map(|p| p.span.clone()))
                .collect();
            spans.sort_by_key(|s| s.start);
            for pair in spans.windows(2) {
                prop_assert!(pair[0].end <= pair[1].start);
            }
            for span in &spans {
                prop_assert!(text.get(span.clone()).is_some());
            }
            for d in &directives {
                for value in [&d.attrs.alt, &d.attrs.caption].into_iter().flatten() {
                    prop_assert!(!value.chars().any(crate::outside::is_hidden));
                }
                prop_assert!(!d.prompt.chars().any(crate::outside::is_hidden));
            }
        }

        /// Any info string: attributes are read or refused with a message, never a panic.
        #[test]
        fn any_info_string_is_read_or_refused(info in "\\PC{0,80}") {
            let _ = parse_attrs(&info);
        }
    }
}
