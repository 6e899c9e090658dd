//! The commands that run a book's stages and report what they did.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context as _;
use mdbook_imagegen::{ImageGen, PlannedImage, Status};

use super::capture::load_book;
use super::print::{self, s, shown_path};

pub(crate) fn plan(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let rows = preprocessor.plan_json(&load_book(dir)?)?;
    print::plan(&rows, json)
}

pub(crate) fn regenerate(
    preprocessor: &ImageGen,
    args: &super::args::Regenerate,
) -> anyhow::Result<bool> {
    let (selector, failed) = (args.selector.as_deref(), args.failed);
    let input = load_book(&args.book)?;
    let rows = preprocessor.plan_json(&input)?;
    let selected: Vec<&PlannedImage> = match (selector, failed) {
        (_, true) => rows
            .iter()
            .filter(|r| {
                r.status == Status::Generate
                    || (r.status.is_failure()
                        && !matches!(r.status, Status::Error | Status::InBatch))
            })
            .collect(),
        (Some(selector), false) => {
            let file = selector.trim_start_matches("./");
            let by_file: Vec<&PlannedImage> = rows
                .iter()
                .filter(|r| {
                    r.file == file || r.file.split_once('/').is_some_and(|(_, rest)| rest == file)
                })
                .collect();
            if !by_file.is_empty() {
                by_file
            } else if selector.len() >= 4 && selector.chars().all(|c| c.is_ascii_hexdigit()) {
                let prefix = selector.to_ascii_lowercase();
                // A figure's key, or its dark twin's: regenerating a twin alone.
                let matches =
                    |k: &Option<String>| k.as_deref().is_some_and(|k| k.starts_with(&prefix));
                rows.iter()
                    .filter(|r| matches(&r.key) || matches(&r.dark_key))
                    .collect()
            } else {
                Vec::new()
            }
        }
        (None, false) => anyhow::bail!(
            "say what to regenerate: a chapter file, the start of a cache key, or `--failed`"
        ),
    };
    // A figure regenerated makes its dark twin again too; a twin named by its key, alone.
    let twin_only = |r: &PlannedImage| {
        let hex = selector.unwrap_or_default().to_ascii_lowercase();
        let starts = |k: &Option<String>| k.as_deref().is_some_and(|k| k.starts_with(&hex));
        hex.len() >= 4 && starts(&r.dark_key) && !starts(&r.key)
    };
    let keys: std::collections::BTreeSet<String> = selected
        .iter()
        .flat_map(|r| match (failed, twin_only(r)) {
            (true, _) => vec![r.key.clone()],
            (false, true) => vec![r.dark_key.clone()],
            (false, false) => vec![r.key.clone(), r.dark_key.clone()],
        })
        .flatten()
        .collect();
    if keys.is_empty() {
        if failed {
            eprintln!("imagegen: every directive has its image; nothing to regenerate");
            return Ok(true);
        }
        anyhow::bail!(
            "no directive matches `{}`; give a chapter file as `plan` shows it, or at least 4 hex digits of a cache key",
            selector.unwrap_or_default()
        );
    }
    eprintln!(
        "imagegen: regenerating {} image{}",
        keys.len(),
        s(keys.len())
    );
    let keys: Vec<String> = keys.into_iter().collect();
    if args.batch {
        let mut batches = preprocessor.batches(&input)?;
        return super::batch::submitted(&batches.submit(&keys, None)?, false);
    }
    run_failing(preprocessor, &input, &keys)
}

pub(crate) fn generate(preprocessor: &ImageGen, dir: &Path) -> anyhow::Result<bool> {
    run_failing(preprocessor, &load_book(dir)?, &[])
}

/// Runs a build's generation on mdBook's input, failing on any failed directive.
pub(crate) fn run_failing(
    preprocessor: &ImageGen,
    input: &str,
    force: &[String],
) -> anyhow::Result<bool> {
    // A failed directive must fail the command, whatever `on-error` says for builds.
    let mut value: serde_json::Value =
        serde_json::from_str(input).context("mdBook's input is not JSON")?;
    if let Some(table) = value
        .get_mut(0)
        .and_then(|c| c.pointer_mut("/config/preprocessor/imagegen"))
        .and_then(serde_json::Value::as_object_mut)
    {
        table.insert("on-error".to_owned(), "fail".into());
    }
    match preprocessor.regenerate_json(&value.to_string(), force) {
        Ok(_) => Ok(true),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(false)
        }
    }
}

pub(crate) fn install(dir: &Path) -> anyhow::Result<bool> {
    let path = dir.join("book.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read `{}`; run this in the book's directory or pass `--book DIR`",
            path.display()
        )
    })?;
    match mdbook_imagegen::install(&text).map_err(anyhow::Error::msg)? {
        mdbook_imagegen::Installed::AlreadyThere => {
            eprintln!(
                "imagegen: `{}` already has [preprocessor.imagegen]",
                path.display()
            );
        }
        mdbook_imagegen::Installed::Added(new) => {
            mdbook_imagegen::write_book_toml(dir, &new)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            eprintln!(
                "imagegen: added [preprocessor.imagegen] to `{}`; with no provider set, images are placeholders until you configure one",
                path.display()
            );
        }
    }
    let cache = mdbook_imagegen::prepare_cache(dir)?;
    eprintln!(
        "imagegen: commit `{}` (its .gitignore keeps the local parts out)",
        shown_path(dir, &cache).display()
    );
    Ok(true)
}

pub(crate) fn review(preprocessor: &ImageGen, dir: &Path, out: &Path) -> anyhow::Result<bool> {
    let input = load_book(dir)?;
    let title = serde_json::from_str::<serde_json::Value>(&input)
        .ok()
        .and_then(|v| {
            v.pointer("/0/config/book/title")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "the book".to_owned());
    let page = preprocessor.team(&input)?.review(&title)?;
    std::fs::write(out, page).with_context(|| format!("cannot write `{}`", out.display()))?;
    eprintln!("imagegen: wrote `{}`; open it in a browser", out.display());
    Ok(true)
}

pub(crate) fn preprocess(preprocessor: &ImageGen) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!(
            "mdbook-imagegen is run by mdBook; add `[preprocessor.imagegen]` to `book.toml` and run `mdbook build`"
        );
    }
    preprocessor.run_reader(stdin.lock(), std::io::stdout())?;
    Ok(())
}
