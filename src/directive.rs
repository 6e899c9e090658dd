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

use crate::config::Size;

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
    pub(crate) size: Option<Size>,
    pub(crate) provider: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) seed: Option<u64>,
    pub(crate) style: Option<String>,
    pub(crate) quality: Option<String>,
    pub(crate) negative: Option<String>,
    pub(crate) width: Option<u32>,
    pub(crate) class: Option<String>,
    pub(crate) id: Option<String>,
}

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
pub(crate) const ATTRIBUTES: [&str; 12] = [
    "alt", "caption", "size", "provider", "model", "seed", "style", "quality", "negative", "width",
    "class", "id",
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

/// Folds every run of white space to one space and trims the ends, so that re-wrapping a prompt
/// does not change what is sent.
pub(crate) fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `key="value"` attributes. Values may be double-quoted (with `\"` and `\\` escapes),
/// single-quoted, or bare words.
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
                    if c != quote && c != '\\' {
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
            if !crate::models::QUALITIES.contains(&value.as_str()) {
                return Err(format!(
                    "quality `{value}` is not a choice; use one of {}",
                    crate::config::list(crate::models::QUALITIES)
                ));
            }
            attrs.quality = Some(value);
        }
        "negative" => attrs.negative = text(value)?,
        "width" => {
            let width: u32 = value
                .trim_end_matches("px")
                .parse()
                .ok()
                .filter(|w| (1..=10_000).contains(w))
                .ok_or_else(|| {
                    format!(
                        "width `{value}` is not a display width; write pixels such as width=\"600\""
                    )
                })?;
            attrs.width = Some(width);
        }
        "class" => {
            let ok = !value.trim().is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
            if !ok {
                return Err(format!(
                    "class `{value}` is not a list of CSS class names; use letters, digits, `-` and `_`, separated by spaces"
                ));
            }
            attrs.class = Some(fold_whitespace(&value));
        }
        "id" => {
            let ok = value.starts_with(|c: char| c.is_ascii_alphabetic())
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
            if !ok {
                return Err(format!(
                    "id `{value}` is not an HTML id; start with a letter and use letters, digits, `-`, `_`, `:` or `.`"
                ));
            }
            attrs.id = Some(value);
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

/// Suggests the attribute closest to a misspelt one, or lists them all.
fn hint_for(word: &str) -> String {
    let closest = ATTRIBUTES
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .min()
        .filter(|(d, _)| *d <= 2);
    match closest {
        Some((_, name)) => format!("did you mean `{name}`?"),
        None => format!("valid attributes are {}", crate::config::list(ATTRIBUTES)),
    }
}

/// Levenshtein distance, for "did you mean" hints on short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
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
mod tests;
