//! Stage 1, parse: the chapters that hold directives, each with its directives and the
//! problems of the malformed ones.

use std::collections::HashMap;
use std::path::Path;

use super::Book;
use crate::directive::{self, Directive, Problem};
use crate::protocol::Chapter;
use crate::request::Chain;
use crate::rewrite::{self, Replacement};

/// A chapter with directives.
pub(crate) struct Page<'a> {
    pub(crate) chapter: Chapter<'a>,
    /// The chapter's file as the user knows it (`src/guide/intro.md`).
    pub(crate) file: String,
    pub(crate) directives: Vec<Directive>,
    pub(crate) problems: Vec<Problem>,
    /// The directives' chains, when the head start planned them (taken by `plan::jobs`).
    pub(crate) chains: Option<Vec<Option<Result<Chain, String>>>>,
}

impl Page<'_> {
    /// The chapter's path relative to the source directory, for URLs.
    pub(crate) fn path(&self) -> &str {
        self.chapter.path.or(self.chapter.source_path).unwrap_or("")
    }

    /// A failure at a line of this chapter.
    pub(crate) fn at(&self, line: usize, message: String) -> crate::error::Located {
        crate::error::Located {
            file: self.file.clone(),
            line,
            message,
        }
    }
}

/// A chapter parsed ahead (see `prefetch`).
pub(crate) struct Parsed {
    /// The content it was parsed from.
    pub(crate) content: String,
    pub(crate) directives: Vec<Directive>,
    pub(crate) problems: Vec<Problem>,
    /// Each directive's chain, as `plan::chain` makes it; `None` for one that references other
    /// images or asks for variants (planned by `plan::jobs` itself).
    pub(crate) chains: Vec<Option<Result<Chain, String>>>,
}

/// Parses every chapter that may hold a directive; chapters without any are left out. A
/// chapter the head start parsed (see `prefetch`) from the same content is taken from `parsed`.
pub(crate) fn pages<'a>(
    chapters: &[Chapter<'a>],
    book: &Book<'_>,
    parsed: &mut HashMap<usize, Parsed>,
) -> Vec<Page<'a>> {
    let mut pages = Vec::new();
    for &chapter in chapters {
        if !directive::may_contain(chapter.content) {
            continue;
        }
        let (directives, problems, chains) = match parsed.remove(&chapter.ordinal) {
            Some(ahead) if ahead.content == chapter.content => {
                (ahead.directives, ahead.problems, Some(ahead.chains))
            }
            _ => {
                let (directives, problems) = directive::parse(chapter.content, &book.markdown);
                (directives, problems, None)
            }
        };
        if !directives.is_empty() || !problems.is_empty() {
            pages.push(Page {
                file: chapter_file(book.ctx.src, &chapter),
                chapter,
                directives,
                problems,
                chains,
            });
        }
    }
    pages
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::protocol::Context;

    #[test]
    fn a_chapter_parsed_ahead_is_used_only_if_its_content_is_the_same() {
        let context = json!({ "root": "/book" });
        let ctx = Context::read(&context).unwrap();
        let config = Config::from_table(None).unwrap();
        let book = Book::new(&ctx, &config, false);
        let content = "# A\n\n```image-prompt\na lighthouse\n```\n";
        let chapter = |content| Chapter {
            ordinal: 0,
            content,
            path: Some("a.md"),
            source_path: Some("a.md"),
            name: Some("A"),
        };
        let ahead = |content: &str| {
            let (mut directives, problems) = directive::parse(content, &book.markdown);
            directives[0].prompt = "parsed ahead".into();
            HashMap::from([(
                0,
                Parsed {
                    content: content.to_owned(),
                    directives,
                    problems,
                    chains: Vec::new(),
                },
            )])
        };
        let pages = pages(&[chapter(content)], &book, &mut ahead(content));
        assert_eq!(pages[0].directives[0].prompt, "parsed ahead");
        assert_eq!(pages[0].file, "src/a.md");

        let stale = "# A\n\n```image-prompt\nan older lighthouse\n```\n";
        let pages = super::pages(&[chapter(content)], &book, &mut ahead(stale));
        assert_eq!(pages[0].directives[0].prompt, "a lighthouse");
        assert!(
            pages[0].chains.is_none(),
            "the stale plan is not used either"
        );
    }
}
