//! The `mdbook-imagegen` command line: argument types, capture mode, commands and printers.
//! `main.rs` only dispatches to it.

pub(crate) mod args;
pub(crate) mod batch;
pub(crate) mod capture;
pub(crate) mod commands;
pub(crate) mod print;
