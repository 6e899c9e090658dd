//! The library's error type.
//!
//! Each variant is named for what the user must fix, and its message says how. Problems that
//! belong to one directive carry the chapter file and line, and a build reports all of them at
//! once rather than stopping at the first.

use std::fmt;
use std::path::PathBuf;

/// Everything that can make a run of the preprocessor fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// mdBook sent something that is not the `[context, book]` JSON pair.
    #[error("mdBook's input is not a `[context, book]` pair: {0}")]
    Input(String),

    /// Reading mdBook's input or writing the book back failed (mdBook went away, a pipe broke).
    #[error("cannot {action}: {source}")]
    Pipe {
        /// What the preprocessor was doing ("write the book to stdout").
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The `[preprocessor.imagegen]` table of `book.toml` is invalid.
    #[error("in `book.toml`, `{key}`: {message}")]
    Config {
        /// The offending key, as written in `book.toml`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// One or more directives could not be turned into figures.
    #[error("{}", Problems(.0))]
    Directives(Vec<Located>),

    /// Reading or writing the cache or an asset failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What the preprocessor was doing, as a verb phrase ("write the master").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The shared remote cache refused or failed a request, after retries.
    #[error("the remote cache `{store}`: {message}")]
    Remote {
        /// The store, as `s3://bucket/root`.
        store: String,
        /// What failed, without credentials.
        message: String,
        /// Whether the store refused to be written (read-only credentials or mode).
        read_only: bool,
    },

    /// A team command was asked about something the book does not have (a directive, a
    /// candidate); the message says what to give instead.
    #[error("{0}")]
    Request(String),
}

/// A problem tied to one place in one chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The chapter's file, relative to the book root (`src/guide/intro.md`).
    pub file: String,
    /// The 1-based line of the directive's opening fence.
    pub line: usize,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// The most characters of one problem's message: messages quote values from chapters and
/// providers, which must never flood a terminal or a page.
const MESSAGE_CHARS: usize = 600;

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            crate::outside::for_terminal(&self.file),
            self.line,
            crate::outside::clean(&self.message, MESSAGE_CHARS)
        )
    }
}

/// Displays a list of located problems, one per line, with a count first.
struct Problems<'a>(&'a [Located]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} image directives failed:", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
