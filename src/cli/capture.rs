//! Capture mode: how the commands get a book exactly as a build's `imagegen` step would. They
//! run `mdbook build` with this program as the preprocessor in capture mode, which saves
//! mdBook's input to a file and stops the build before anything is rendered.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mdbook_imagegen::{ImageGen, Team};

/// The capture mode itself (`__capture FILE`): saves mdBook's input and stops mdBook.
pub(crate) fn capture(file: &Path, rest: &[String]) -> ExitCode {
    if rest.first().map(String::as_str) == Some("supports") {
        return ExitCode::SUCCESS;
    }
    let mut input = Vec::new();
    let saved = std::io::stdin()
        .read_to_end(&mut input)
        .and_then(|_| std::fs::write(file, &input));
    match saved {
        // Stops mdBook here: the book is what was wanted, not its rendering.
        Ok(()) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: cannot save mdBook's input: {e}");
            ExitCode::FAILURE
        }
    }
}

/// mdBook's input for the book in `dir`, exactly as a build's `imagegen` step would get it
/// (book.toml read, SUMMARY.md followed, `{{#include}}`s and the preprocessors before this one
/// applied): runs `mdbook build` with this program in capture mode, which stops the build
/// before anything is rendered.
pub(crate) fn load_book(dir: &Path) -> anyhow::Result<String> {
    if !dir.join("book.toml").is_file() {
        anyhow::bail!(
            "`{}` has no book.toml; run this in the book's directory or pass `--book DIR`",
            dir.display()
        );
    }
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot find `{}`", dir.display()))?;
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

/// The cache of the book in `dir`, with its directives as `plan` sees them.
pub(crate) fn load_team(preprocessor: &ImageGen, dir: &Path) -> anyhow::Result<Team> {
    Ok(preprocessor.team(&load_book(dir)?)?)
}
