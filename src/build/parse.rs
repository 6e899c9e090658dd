//! Stage 1, parse: the chapters that hold directives, each with its directives and the
//! problems of the malformed ones.

use std::path::Path;

use super::Book;
use crate::directive::{self, Directive, Problem};
use crate::protocol::Chapter;
use crate::rewrite::{self, Replacement};

/// A chapter with directives.
pub(crate) struct Page<'a> {
    pub(crate) chapter: Chapter<'a>,
    /// The chapter's file as the user knows it (`src/guide/intro.md`).
    pub(crate) file: String,
    pub(crate) directives: Vec<Directive>,
    pub(crate) problems: Vec<Problem>,
}

impl Page<'_> {
    /// The chapter's path relative to the source directory, for URLs.
    pub(crate) fn path(&self) -> &str {
        self.chapter.path.or(self.chapter.source_path).unwrap_or("")
    }
}

/// Parses every chapter that may hold a directive; chapters without any are left out.
pub(crate) fn pages<'a>(chapters: &[Chapter<'a>], book: &Book<'_>) -> Vec<Page<'a>> {
    chapters
        .iter()
        .filter(|c| directive::may_contain(c.content))
        .filter_map(|&chapter| {
            let (directives, problems) = directive::parse(chapter.content, &book.markdown);
            (!directives.is_empty() || !problems.is_empty()).then(|| Page {
                file: chapter_file(book.ctx.src, &chapter),
                chapter,
                directives,
                problems,
            })
        })
        .collect()
}

/// Removes every directive from a chapter, for the `test` renderer.
pub(crate) fn strip(page: &Page<'_>) -> (usize, String) {
    let spans = page
        .directives
        .iter()
        .map(|d| (d.span.clone(), d.top_level))
        .chain(page.problems.iter().map(|p| (p.span.clone(), p.top_level)));
    let replacements = spans
        .map(|(span, top_level)| Replacement {
            span,
            text: String::new(),
            top_level,
        })
        .collect();
    (
        page.chapter.ordinal,
        rewrite::splice(page.chapter.content, replacements),
    )
}

/// The chapter's file relative to the book root, for messages.
fn chapter_file(src: &str, chapter: &Chapter<'_>) -> String {
    let relative = chapter.source_path.or(chapter.path).unwrap_or("(untitled)");
    Path::new(src)
        .join(relative)
        .to_string_lossy()
        .replace('\\', "/")
}
