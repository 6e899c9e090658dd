//! Finding image directives in a chapter.
//!
//! A directive is a fenced code block whose info string starts with `image-prompt`; its body is
//! the prompt and the rest of the info string holds `key="value"` attributes. The chapter is
//! parsed with mdBook's own Markdown options, so a fence inside another code block, an indented
//! code block or an HTML block is not a directive, while one inside a list item or a blockquote
//! is. Parsing never fails: it returns the directives it understood and a problem for each one
//! it did not. No I/O here.

use std::ops::Range;

use mdbook_markdown::pulldown_cmark::{CodeBlockKind, Event, Tag, TagEnd};
use mdbook_markdown::{MarkdownOptions, new_cmark_parser};

use crate::vocab::fold_whitespace;

/// The word that opens a directive's info string.
pub(crate) const KEYWORD: &str = "image-prompt";

/// One image directive, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The bytes from the opening fence to the end of the closing fence (its line ending
    /// excluded); the splice replaces exactly these.
    pub(crate) span: Range<usize>,
    /// The 1-based line of the opening fence.
    pub(crate) line: usize,
    /// Whether the directive sits outside any list, blockquote or footnote.
    pub(crate) top_level: bool,
    /// The prompt: the block's text with runs of white space folded to one space.
    pub(crate) prompt: String,
    /// The attributes of the info string.
    pub(crate) attrs: Attrs,
}

/// The attributes a directive may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub(crate) alt: Option<String>,
    pub(crate) caption: Option<String>,
    pub(crate) size: Option<crate::vocab::SizeSetting>,
    pub(crate) provider: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) seed: Option<u64>,
    pub(crate) style: Option<String>,
    pub(crate) quality: Option<String>,
    pub(crate) negative: Option<String>,
    pub(crate) width: Option<u32>,
    pub(crate) class: Option<String>,
    pub(crate) id: Option<String>,
    /// Images the provider is given beside the prompt, in order: files and other directives.
    pub(crate) reference: Vec<Reference>,
    /// How many candidates to generate (1 to [`MAX_VARIANTS`]).
    pub(crate) variants: Option<u32>,
    /// An instruction the directive's image is sent back with, to be edited.
    pub(crate) edit: Option<String>,
    /// With `edit`: a PNG whose transparent pixels mark where the edit may change the image,
    /// relative to the chapter's file.
    pub(crate) mask: Option<String>,
    /// Its dark twin: a mode, or its own instruction.
    pub(crate) dark: Option<DarkAttr>,
}

/// A directive's `dark=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DarkAttr {
    /// `dark="off"`: no twin, whatever the book says.
    Off,
    /// `dark="edit"`: the light image edited, with the book's instruction.
    Edit,
    /// `dark="prompt"`: generated from the prompt, with the book's instruction.
    Prompt,
    /// Any other text: its own instruction, in the book's mode (`edit` when the book's is off).
    Instruction(String),
}

/// One item of a directive's `reference` list, as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Reference {
    /// `#id`: the image of the directive with that `id`, in any chapter.
    Directive(String),
    /// A file, relative to the chapter's file (as a Markdown image link is).
    File(String),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Directive(id) => write!(f, "#{id}"),
            Reference::File(path) => f.write_str(path),
        }
    }
}

pub(crate) use crate::vocab::MAX_REFERENCES;

/// The most candidates one directive may ask for.
pub(crate) const MAX_VARIANTS: u32 = 10;

/// A directive that could not be read, with the fix in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The 1-based line of the opening fence.
    pub(crate) line: usize,
    /// The bytes of the whole block, so that `on-error = "placeholder"` can replace it.
    pub(crate) span: Range<usize>,
    /// Whether the directive sits outside any list, blockquote or footnote.
    pub(crate) top_level: bool,
    /// What is wrong and how to fix it.
    pub(crate) message: String,
}

/// The attribute names, in the order the documentation lists them.
pub(crate) const ATTRIBUTES: [&str; 17] = [
    "alt",
    "caption",
    "size",
    "provider",
    "model",
    "seed",
    "style",
    "quality",
    "negative",
    "width",
    "class",
    "id",
    "reference",
    "variants",
    "edit",
    "mask",
    "dark",
];

/// Markdown options matching the mdBook version that runs us: 0.5 adds definition lists and
/// GitHub admonitions to what 0.4 enabled.
pub(crate) fn markdown_options(mdbook_is_0_4: bool) -> MarkdownOptions {
    let mut options = MarkdownOptions::default();
    if mdbook_is_0_4 {
        options.definition_lists = false;
        options.admonitions = false;
    }
    options
}

/// Whether a chapter can hold a directive at all: a cheap test that spares most chapters a parse.
pub(crate) fn may_contain(text: &str) -> bool {
    text.contains(KEYWORD)
}

/// Finds every directive of a chapter.
pub(crate) fn parse(text: &str, options: &MarkdownOptions) -> (Vec<Directive>, Vec<Problem>) {
    let mut directives = Vec::new();
    let mut problems = Vec::new();
    let mut lines = LineCounter::default();
    let mut open: Option<(Range<usize>, String)> = None;
    let mut depth = 0usize;

    for (event, range) in new_cmark_parser(text, options).into_offset_iter() {
        match event {
            Event::Start(tag) if is_container(&tag) => depth += 1,
            Event::End(tag) if is_container_end(tag) => depth = depth.saturating_sub(1),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_)))
                if is_directive_fence(&text[range.clone()]) =>
            {
                open = Some((range, String::new()));
            }
            Event::Text(body) => {
                if let Some((_, prompt)) = open.as_mut() {
                    prompt.push_str(&body);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((range, body)) = open.take() {
                    let line = lines.line_of(text, range.start);
                    let top_level = depth == 0;
                    match read_block(text, range, &body) {
                        Ok(directive) => directives.push(Directive {
                            line,
                            top_level,
                            ..directive
                        }),
                        Err((span, message)) => problems.push(Problem {
                            line,
                            span,
                            top_level,
                            message,
                        }),
                    }
                }
            }
            _ => {}
        }
    }
    (directives, problems)
}

/// Container blocks: a directive inside one gets no blank lines added around its figure.
fn is_container(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::List(_)
            | Tag::Item
            | Tag::BlockQuote(_)
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListDefinition
    )
}

fn is_container_end(tag: TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::List(_)
            | TagEnd::Item
            | TagEnd::BlockQuote(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListDefinition
    )
}

/// Whether a fenced block's first line opens a directive (the info string's first word is
/// exactly [`KEYWORD`]).
fn is_directive_fence(block: &str) -> bool {
    let first = block.lines().next().unwrap_or("");
    let info = first.trim_start().trim_start_matches(['`', '~']);
    let word = info.split_whitespace().next().unwrap_or("");
    word == KEYWORD
}

/// Reads one directive block; `range` covers it from the opening fence to the end of the
/// closing one (a line ending included), `body` is its text as the parser saw it.
fn read_block(
    text: &str,
    range: Range<usize>,
    body: &str,
) -> Result<Directive, (Range<usize>, String)> {
    let block = &text[range.clone()];
    let block_without_eol = block.trim_end_matches(['\n', '\r']);
    let span = range.start..range.start + block_without_eol.len();

    let first_line = block_without_eol.lines().next().unwrap_or("");
    let fence_line = first_line.trim_start();
    let fence_char = fence_line.chars().next().unwrap_or('`');
    let fence_len = fence_line.chars().take_while(|&c| c == fence_char).count();
    let fence = fence_char.to_string().repeat(fence_len);

    if !is_closed(block_without_eol, fence_char, fence_len) {
        return Err((
            span,
            format!(
                "this `{KEYWORD}` block is never closed; add a line with {fence} after the prompt"
            ),
        ));
    }

    let info = &fence_line[fence_len..];
    let info = info.trim_start()[KEYWORD.len()..].trim();
    let hidden = |text: &str, allowed: &[char]| {
        text.chars()
            .find(|c| crate::outside::is_hidden(*c) && !allowed.contains(c))
    };
    if let Some(c) = hidden(info, &['\t']) {
        return Err((
            span,
            format!(
                "the attributes hold a control character (U+{:04X}), which no page or terminal should get; delete it",
                u32::from(c)
            ),
        ));
    }
    if let Some(c) = hidden(body, &['\t', '\n', '\r']) {
        return Err((
            span,
            format!(
                "the prompt holds a control character (U+{:04X}), which no provider or page should get; delete it",
                u32::from(c)
            ),
        ));
    }
    let attrs = parse_attrs(info).map_err(|message| (span.clone(), message))?;

    let prompt = fold_whitespace(body);
    if prompt.is_empty() {
        return Err((
            span,
            format!(
                "this `{KEYWORD}` block has no prompt; describe the image on the lines between the fences"
            ),
        ));
    }
    Ok(Directive {
        span,
        line: 0,
        top_level: true,
        prompt,
        attrs,
    })
}

/// Whether the block's last line is a closing fence: at least as long as the opening one, of
/// the same character, after any container prefix (`>` markers and indentation).
fn is_closed(block: &str, fence_char: char, fence_len: usize) -> bool {
    let mut lines = block.lines();
    lines.next();
    let Some(last) = lines.last() else {
        return false;
    };
    let last = last.trim_start_matches([' ', '\t', '>']).trim_end();
    last.chars().count() >= fence_len && last.chars().all(|c| c == fence_char)
}

/// Parses `key="value"` attributes. Values may be double-quoted (with `\"` and `\\` escapes,
/// and `\{` in `alt` and `caption`), single-quoted, or bare words.
pub(crate) fn parse_attrs(info: &str) -> Result<Attrs, String> {
    let mut attrs = Attrs::default();
    let mut seen: Vec<String> = Vec::new();
    let mut rest = info.trim_start();
    while !rest.is_empty() {
        let key_len = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_len];
        rest = &rest[key_len..];
        if !rest.starts_with('=') {
            return Err(if ATTRIBUTES.contains(&key) {
                format!("attribute `{key}` has no value; write {key}=\"…\"")
            } else {
                format!(
                    "`{key}` is not an attribute; write attributes as key=\"value\" ({})",
                    hint_for(key)
                )
            });
        }
        rest = &rest[1..];
        let (value, after) = read_value(key, rest)?;
        rest = after.trim_start();
        if seen.iter().any(|k| k == key) {
            return Err(format!("attribute `{key}` is given twice; keep one"));
        }
        seen.push(key.to_owned());
        set_attr(&mut attrs, key, value)?;
    }
    if attrs.mask.is_some() && attrs.edit.is_none() {
        return Err(
            "`mask` marks where an `edit` may change the image; give the directive an `edit=\"…\"`, or remove `mask`".into(),
        );
    }
    Ok(attrs)
}

/// Reads one attribute value from the start of `text`, returning it and what follows.
fn read_value<'a>(key: &str, text: &'a str) -> Result<(String, &'a str), String> {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, quote @ ('"' | '\''))) => {
            let mut value = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    // In `alt` and `caption`, `\{` is a brace: `alt --write` writes `{` so,
                    // since `{{` in a chapter is mdBook's `links` syntax, wherever it stands.
                    // (Not in attributes that reach a cache key: their meaning stays.)
                    let brace = c == '{' && matches!(key, "alt" | "caption");
                    if c != quote && c != '\\' && !brace {
                        value.push('\\');
                    }
                    value.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == quote {
                    let after = &text[i + 1..];
                    if after.starts_with(|c: char| !c.is_whitespace()) {
                        return Err(format!(
                            "the value of `{key}` runs into the next attribute; put a space after its closing quote"
                        ));
                    }
                    return Ok((value, after));
                } else {
                    value.push(c);
                }
            }
            Err(format!(
                "the value of `{key}` has no closing quote; end it with {quote}"
            ))
        }
        Some(_) => {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            Ok((text[..end].to_owned(), &text[end..]))
        }
        None => Err(format!("attribute `{key}` has no value; write {key}=\"…\"")),
    }
}

/// Stores one attribute after checking its value.
fn set_attr(attrs: &mut Attrs, key: &str, value: String) -> Result<(), String> {
    let text = |value: String| -> Result<Option<String>, String> {
        if value.trim().is_empty() {
            Err(format!(
                "attribute `{key}` is empty; give it a value or leave it out"
            ))
        } else {
            Ok(Some(value))
        }
    };
    match key {
        "alt" => {
            // An empty alt is meaningful: it marks a decorative image.
            attrs.alt = Some(value);
        }
        "caption" => attrs.caption = text(value)?,
        "size" => attrs.size = Some(value.parse()?),
        "provider" => attrs.provider = text(value)?,
        "model" => attrs.model = text(value)?,
        "seed" => {
            attrs.seed = Some(value.parse().map_err(|_| {
                format!("seed `{value}` is not a whole number from 0 to 18446744073709551615")
            })?);
        }
        "style" => attrs.style = text(value)?,
        "quality" => {
            if !crate::vocab::QUALITIES.contains(&value.as_str()) {
                return Err(format!(
                    "quality `{value}` is not a choice; use one of {}",
                    crate::vocab::list(crate::vocab::QUALITIES)
                ));
            }
            attrs.quality = Some(value);
        }
        "negative" => attrs.negative = text(value)?,
        "width" => attrs.width = Some(display_width(&value)?),
        "class" => attrs.class = Some(class_names(&value)?),
        "id" => {
            check_id(&value)?;
            attrs.id = Some(value);
        }
        "reference" => attrs.reference = references(&value)?,
        "variants" => attrs.variants = Some(variants(&value)?),
        "edit" => attrs.edit = text(value).map(|v| v.map(|v| fold_whitespace(&v)))?,
        "mask" => {
            let path = text(value)?.unwrap_or_default();
            attrs.mask = Some(
                check_reference_path(path.trim(), "the chapter's file")
                    .map_err(|e| e.replacen("reference", "mask", 1))?,
            );
        }
        "dark" => {
            let value = text(value)?
                .map(|v| fold_whitespace(&v))
                .unwrap_or_default();
            attrs.dark = Some(match value.to_ascii_lowercase().as_str() {
                "off" => DarkAttr::Off,
                "edit" => DarkAttr::Edit,
                "prompt" => DarkAttr::Prompt,
                _ if value.chars().count() > 1000 => {
                    return Err(
                        "attribute `dark` is longer than 1000 characters; shorten the instruction"
                            .into(),
                    );
                }
                _ => DarkAttr::Instruction(value),
            });
        }
        unknown => {
            return Err(format!(
                "unknown attribute `{unknown}`; {}",
                hint_for(unknown)
            ));
        }
    }
    Ok(())
}

/// A `width`: display pixels, 1 to 10,000 (`px` may follow).
fn display_width(value: &str) -> Result<u32, String> {
    value
        .trim_end_matches("px")
        .parse()
        .ok()
        .filter(|w| (1..=10_000).contains(w))
        .ok_or_else(|| {
            format!("width `{value}` is not a display width; write pixels such as width=\"600\"")
        })
}

/// A `class`: CSS class names, separated by spaces (kept with single spaces).
fn class_names(value: &str) -> Result<String, String> {
    let ok = !value.trim().is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
    if !ok {
        return Err(format!(
            "class `{value}` is not a list of CSS class names; use letters, digits, `-` and `_`, separated by spaces"
        ));
    }
    Ok(fold_whitespace(value))
}

/// `variants`: how many candidates, 1 to [`MAX_VARIANTS`].
fn variants(value: &str) -> Result<u32, String> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_VARIANTS).contains(n))
        .ok_or_else(|| {
            format!(
                "variants `{value}` is not a number of candidates; write a whole number from 1 to {MAX_VARIANTS}"
            )
        })
}

/// Checks an `id`: an HTML id that a `reference` can name.
fn check_id(value: &str) -> Result<(), String> {
    let ok = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id `{value}` is not an HTML id; start with a letter and use letters, digits, `-`, `_`, `:` or `.`"
        ))
    }
}

/// Reads a `reference` list: comma-separated files (relative to the chapter) and `#id`s.
pub(crate) fn references(value: &str) -> Result<Vec<Reference>, String> {
    let mut list = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(
                "`reference` has an empty item; separate files and #ids with single commas".into(),
            );
        }
        list.push(match item.strip_prefix('#') {
            Some(id) => {
                check_id(id).map_err(|e| format!("in `reference`, {e}"))?;
                Reference::Directive(id.to_owned())
            }
            None => Reference::File(check_reference_path(item, "the chapter's file")?),
        });
    }
    if list.len() > MAX_REFERENCES {
        return Err(format!(
            "`reference` lists {} images; providers take at most {MAX_REFERENCES}",
            list.len()
        ));
    }
    Ok(list)
}

/// Checks a reference file's path as written, relative to `base` (the chapter's file, or the
/// book's root): relative, not a URL. Whether it stays inside the book is checked once it is
/// joined to its base.
pub(crate) fn check_reference_path(path: &str, base: &str) -> Result<String, String> {
    if path.contains("://") || path.starts_with("data:") {
        return Err(format!(
            "reference `{path}` is a URL; references are image files in the book, relative to {base}"
        ));
    }
    if path.starts_with(['/', '\\']) || path.as_bytes().get(1) == Some(&b':') {
        return Err(format!(
            "reference `{path}` is an absolute path; write it relative to {base}"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err("a reference's path has a control character; rename the file".into());
    }
    Ok(path.replace('\\', "/"))
}

/// Suggests the attribute closest to a misspelt one, or lists them all.
fn hint_for(word: &str) -> String {
    let closest = ATTRIBUTES
        .iter()
        .map(|a| (crate::vocab::edit_distance(word, a), *a))
        .min()
        .filter(|(d, _)| *d <= 2);
    match closest {
        Some((_, name)) => format!("did you mean `{name}`?"),
        None => format!("valid attributes are {}", crate::vocab::list(ATTRIBUTES)),
    }
}

/// Turns byte offsets into line numbers, scanning each byte once for offsets in rising order.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_of(&mut self, text: &str, offset: usize) -> usize {
        if offset < self.offset {
            *self = LineCounter::default();
        }
        self.line += text.as_bytes()[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.line + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Size;

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
            Some(crate::vocab::SizeSetting::Exact(Size {
                width: 640,
                height: 480
            }))
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
        // A brace in `alt` and `caption` (as `alt --write` writes it), kept elsewhere.
        let d =
            one("```image-prompt alt=\"\\{\\{x}}\" caption=\"\\{y}\" negative=\"\\{z}\"\nx\n```\n");
        assert_eq!(d.attrs.alt.as_deref(), Some("{{x}}"));
        assert_eq!(d.attrs.caption.as_deref(), Some("{y}"));
        assert_eq!(d.attrs.negative.as_deref(), Some("\\{z}"));
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
    fn references_variants_and_edits_are_read() {
        let d = one(
            "```image-prompt reference=\"#keeper, ../art/sketch.png ,art\\b.webp\" variants=\"3\" edit=\"make it   night\"\nThe keeper\n```\n",
        );
        assert_eq!(
            d.attrs.reference,
            [
                Reference::Directive("keeper".into()),
                Reference::File("../art/sketch.png".into()),
                Reference::File("art/b.webp".into()),
            ]
        );
        assert_eq!(d.attrs.variants, Some(3));
        assert_eq!(d.attrs.edit.as_deref(), Some("make it night"));
        for (info, wanted) in [
            ("reference=\"a.png,,b.png\"", "empty item"),
            ("reference=\"#1x\"", "not an HTML id"),
            ("reference=\"https://example.com/a.png\"", "is a URL"),
            ("reference=\"/etc/a.png\"", "absolute path"),
            ("reference=\"C:/a.png\"", "absolute path"),
            ("variants=\"11\"", "from 1 to 10"),
            ("variants=\"0\"", "from 1 to 10"),
            ("edit=\" \"", "is empty"),
            ("mask=\"m.png\"", "give the directive an `edit"),
            (
                "edit=\"x\" mask=\"/m.png\"",
                "mask `/m.png` is an absolute path",
            ),
        ] {
            let message = problem(&format!("```image-prompt {info}\nx\n```\n"));
            assert!(message.contains(wanted), "{info}: {message}");
        }
        let many = (0..17)
            .map(|i| format!("{i}.png"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            problem(&format!("```image-prompt reference=\"{many}\"\nx\n```\n"))
                .contains("at most 16")
        );
    }

    #[test]
    fn dark_is_a_mode_or_an_instruction() {
        for (value, wanted) in [
            ("off", DarkAttr::Off),
            ("edit", DarkAttr::Edit),
            ("prompt", DarkAttr::Prompt),
            (
                "keep the   sky orange",
                DarkAttr::Instruction("keep the sky orange".into()),
            ),
        ] {
            let d = one(&format!("```image-prompt dark=\"{value}\"\nx\n```\n"));
            assert_eq!(d.attrs.dark, Some(wanted), "{value}");
        }
        assert!(problem("```image-prompt dark=\"  \"\nx\n```\n").contains("is empty"));
        let long = "a".repeat(1001);
        assert!(
            problem(&format!("```image-prompt dark=\"{long}\"\nx\n```\n"))
                .contains("longer than 1000")
        );
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
                "unknown attribute `colour`; valid attributes are `alt`, `caption`, `size`, `provider`, `model`, `seed`, `style`, `quality`, `negative`, `width`, `class`, `id`, `reference`, `variants`, `edit`, `mask`, `dark`",
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
                "`big` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels, or `auto` to let the model choose",
            ),
            (
                "size=\"8x8\"",
                "`8x8` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels, or `auto` to let the model choose",
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
        assert_eq!(crate::vocab::edit_distance("capton", "caption"), 1);
        assert_eq!(crate::vocab::edit_distance("", "abc"), 3);
        assert_eq!(crate::vocab::edit_distance("seed", "seed"), 0);
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
}
