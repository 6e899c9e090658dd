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
mod tests;
