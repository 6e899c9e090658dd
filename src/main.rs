//! The `mdbook-imagegen` binary: what mdBook runs for `[preprocessor.imagegen]`.
//!
//! stdout carries the book JSON and nothing else; every message goes to stderr.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mdbook_imagegen::ImageGen;

/// An mdBook preprocessor that turns image prompts into figures.
///
/// mdBook runs it: add `[preprocessor.imagegen]` to `book.toml` and write ```image-prompt
/// blocks in your chapters. Run by hand, it reads mdBook's JSON on stdin and writes the book on
/// stdout.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tells mdBook whether a renderer is supported (exit status 0: yes).
    Supports {
        /// The renderer's name, such as `html`.
        renderer: String,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let preprocessor = ImageGen::default();
    match cli.command {
        Some(Command::Supports { renderer }) => {
            if preprocessor.supports_renderer(&renderer) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => match preprocess(&preprocessor) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn preprocess(preprocessor: &ImageGen) -> anyhow::Result<()> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!(
            "mdbook-imagegen is run by mdBook; add `[preprocessor.imagegen]` to `book.toml` and run `mdbook build`"
        );
    }
    let mut input = String::new();
    stdin
        .read_to_string(&mut input)
        .context("cannot read mdBook's input on stdin")?;
    let output = preprocessor.run_json(&input)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the book to stdout")?;
    Ok(())
}

/// Logs go to stderr, at the level of `MDBOOK_IMAGEGEN_LOG` (`error` … `trace`, default `info`).
fn init_logging() {
    let level = std::env::var("MDBOOK_IMAGEGEN_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(|| mdbook_imagegen::LogWriter)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
