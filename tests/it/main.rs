//! Integration tests: the real `mdbook` binary building real books, the preprocessor binary
//! over its stdin/stdout protocol, and snapshots of rewritten chapters. No test touches the
//! network: the placeholder provider draws every image locally.

mod build;
mod protocol;
mod snapshots;
mod support;
