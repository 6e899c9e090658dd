//! The `mdbook-imagegen` binary: what mdBook runs for `[preprocessor.imagegen]`.
//!
//! stdout carries the book JSON and nothing else; every message goes to stderr.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mdbook_imagegen::{ImageGen, PlannedImage};

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
    /// Shows what a build would generate and reuse, per directive, with the estimated cost.
    /// Calls no provider.
    Plan {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fills the cache without building the book: generates every missing image and makes
    /// its web files. Exits non-zero if any directive failed.
    Generate {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Used by `plan` and `generate`: saves mdBook's input to a file and stops the build.
    #[command(name = "__capture", hide = true)]
    Capture {
        file: PathBuf,
        /// `supports <renderer>`, when mdBook asks.
        rest: Vec<String>,
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
        Some(Command::Capture { file, rest }) => {
            if rest.first().map(String::as_str) == Some("supports") {
                return ExitCode::SUCCESS;
            }
            let mut input = Vec::new();
            let saved = std::io::stdin()
                .read_to_end(&mut input)
                .and_then(|_| std::fs::write(&file, &input));
            match saved {
                // Stops mdBook here: the book is what was wanted, not its rendering.
                Ok(()) => ExitCode::from(3),
                Err(e) => {
                    eprintln!("error: cannot save mdBook's input: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Plan { book, json }) => report(plan(&preprocessor, &book, json)),
        Some(Command::Generate { book }) => report(generate(&preprocessor, &book)),
        None => match preprocess(&preprocessor) {
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

/// mdBook's input for the book in `dir`, exactly as a build's `imagegen` step would get it
/// (book.toml read, SUMMARY.md followed, `{{#include}}`s and the preprocessors before this one
/// applied): runs `mdbook build` with this program in capture mode, which stops the build
/// before anything is rendered.
fn load_book(dir: &Path) -> anyhow::Result<String> {
    if !dir.join("book.toml").is_file() {
        anyhow::bail!(
            "`{}` has no book.toml; run this in the book's directory or pass `--book DIR`",
            dir.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let scratch = tempfile::tempdir().context("cannot make a temporary directory")?;
    let file = scratch.path().join("input.json");
    let quote = |p: &Path| format!("\"{}\"", p.display().to_string().replace('"', "\\\""));
    let output = std::process::Command::new("mdbook")
        .arg("build")
        .arg(dir)
        .arg("--dest-dir")
        .arg(scratch.path().join("out"))
        .env(
            "MDBOOK_PREPROCESSOR__IMAGEGEN__COMMAND",
            format!("{} __capture {}", quote(&exe), quote(&file)),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .context(
            "cannot run `mdbook`; install it (https://rust-lang.github.io/mdBook/) and try again",
        )?;
    match std::fs::read_to_string(&file) {
        Ok(input) => Ok(input),
        Err(_) => anyhow::bail!(
            "mdBook stopped before it reached the imagegen step:\n{}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        ),
    }
}

fn plan(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let rows = preprocessor.plan_json(&load_book(dir)?)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
        return Ok(true);
    }
    let place = |r: &PlannedImage| format!("{}:{}", r.file, r.line);
    let width = rows.iter().map(|r| place(r).len()).max().unwrap_or(0);
    for row in &rows {
        let cost = match (row.status, row.cost) {
            ("generate", Some(cost)) => format!("${cost:.3}"),
            ("generate", None) => "price?".to_owned(),
            _ => String::new(),
        };
        let what = match &row.message {
            Some(message) if row.status == "error" || row.status == "over-budget" => {
                message.clone()
            }
            _ => format!(
                "{} {} {}  {}",
                row.provider, row.model, row.size, row.prompt
            ),
        };
        writeln!(
            stdout,
            "{:width$}  {:11} {:>7}  {what}",
            place(row),
            row.status,
            cost
        )?;
    }
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
    let total = rows
        .iter()
        .filter(|r| r.status == "generate")
        .filter_map(|r| r.cost)
        .fold(0.0, |sum, cost| sum + cost);
    let mut parts = vec![format!("{} cached", count("cached"))];
    parts.push(format!(
        "{} to generate (estimated ${total:.2})",
        count("generate")
    ));
    for (status, label) in [
        ("draw", "placeholders to draw"),
        ("over-budget", "over budget"),
        ("offline", "missing (offline)"),
        ("error", "with errors"),
    ] {
        if count(status) > 0 {
            parts.push(format!("{} {label}", count(status)));
        }
    }
    writeln!(
        stdout,
        "\n{} directive{}: {}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )?;
    Ok(count("error") == 0)
}

fn generate(preprocessor: &ImageGen, dir: &Path) -> anyhow::Result<bool> {
    let input = load_book(dir)?;
    // A failed directive must fail the command, whatever `on-error` says for builds.
    let mut value: serde_json::Value =
        serde_json::from_str(&input).context("mdBook's input is not JSON")?;
    if let Some(table) = value
        .get_mut(0)
        .and_then(|c| c.pointer_mut("/config/preprocessor/imagegen"))
        .and_then(serde_json::Value::as_object_mut)
    {
        table.insert("on-error".to_owned(), "fail".into());
    }
    match preprocessor.run_json(&value.to_string()) {
        Ok(_) => Ok(true),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(false)
        }
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
