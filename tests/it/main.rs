//! Integration tests: the real `mdbook` binary building real books, the preprocessor binary
//! over its stdin/stdout protocol, and snapshots of rewritten chapters. No test touches the
//! network: the placeholder provider draws images locally, and real providers are served on
//! 127.0.0.1.

mod agreement;
mod alt;
mod art;
mod batch;
mod browser;
mod build;
mod commands;
mod dark;
mod hardening;
mod judge;
mod models;
mod protocol;
mod providers;
mod remote;
mod snapshots;
mod support;
mod team;
