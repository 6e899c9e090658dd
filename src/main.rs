//! The `mdbook-imagegen` binary: what mdBook runs for `[preprocessor.imagegen]`.
//!
//! stdout carries the book JSON and nothing else; every message goes to stderr. This file only
//! dispatches; the command line lives in `cli`.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mdbook_imagegen::ImageGen;

use cli::args::{Cli, Command};
use cli::{batch, capture, commands, print};

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
        Some(Command::Capture { file, rest }) => capture::capture(&file, &rest),
        Some(Command::Plan { book, json }) => report(commands::plan(&preprocessor, &book, json)),
        Some(Command::Generate { book }) => report(commands::generate(&preprocessor, &book)),
        Some(Command::List { book, json }) => report(print::list(&preprocessor, &book, json)),
        Some(Command::Stats { book, json }) => report(print::stats(&preprocessor, &book, json)),
        Some(Command::Models { json }) => report(print::models(json)),
        Some(Command::Pick {
            selector,
            number,
            book,
            json,
        }) => report(print::pick(&preprocessor, &book, &selector, number, json)),
        Some(Command::Alt { book, write, json }) => {
            report(print::alt(&preprocessor, &book, write, json))
        }
        Some(Command::Gc {
            book,
            dry_run,
            remote,
            grace,
            json,
        }) => report(print::gc(
            &preprocessor,
            &book,
            dry_run,
            remote.then_some(grace),
            json,
        )),
        Some(Command::Push { book, json }) => report(print::push(&preprocessor, &book, json)),
        Some(Command::Verify {
            book,
            remote: true,
            json,
            ..
        }) => report(print::verify_remote(&preprocessor, &book, json)),
        Some(Command::Verify {
            book, fix, json, ..
        }) => report(print::verify(&preprocessor, &book, fix, json)),
        Some(Command::Install { book }) => report(commands::install(&book)),
        Some(Command::Review { book, out }) => report(commands::review(&preprocessor, &book, &out)),
        Some(Command::Regenerate(args)) => report(commands::regenerate(&preprocessor, &args)),
        Some(Command::Batch { command }) => report(batch::run(&preprocessor, command)),
        Some(Command::Reindex { book }) => report(
            capture::load_team(&preprocessor, &book)
                .and_then(|team| Ok(team.reindex()?))
                .map(|keys| {
                    eprintln!("imagegen: the index holds {keys} image{}", print::s(keys));
                    true
                }),
        ),
        None => match commands::preprocess(&preprocessor) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
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
