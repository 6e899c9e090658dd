//! The `mdbook-imagegen` binary: what mdBook runs for `[preprocessor.imagegen]`.
//!
//! stdout carries the book JSON and nothing else; every message goes to stderr.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mdbook_imagegen::{ImageGen, PlannedImage, Team};

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
    /// Lists the images in the cache with the chapters that use them.
    List {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Counts, cost and generation time per provider and model, over the whole cache.
    Stats {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deletes the images no directive uses any more: records, masters, tuned qualities and
    /// web files. Prints what and how many bytes.
    Gc {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Clean the shared remote cache too (`[preprocessor.imagegen.storage]`). It is shared
        /// by every branch and machine, so only images no directive of this checkout uses and
        /// older than `--grace` go.
        #[arg(long)]
        remote: bool,
        /// With `--remote`: keep unused remote images younger than this (`7d`, `12h`, `0s`),
        /// so that branches in flight keep theirs.
        #[arg(long, default_value = "7d", requires = "remote", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Uploads the local cache to the shared remote cache (`[preprocessor.imagegen.storage]`):
    /// every master, record and tuned quality the remote lacks, masters first. Moves a
    /// git-committed cache into a bucket, and finishes uploads an outage interrupted.
    Push {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Checks the cache: every master matches its name, every record reads and has its
    /// master, the index agrees with the records. Exits non-zero when anything is wrong.
    Verify {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Repair what can be repaired, and say what cannot.
        #[arg(long)]
        fix: bool,
        /// Check the shared remote cache instead (downloads every master once; repairs
        /// nothing).
        #[arg(long, conflicts_with = "fix")]
        remote: bool,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Generates new images for a chapter, a cache-key prefix, or the directives whose image
    /// is missing (`--failed`), even when cached. The old masters stay until `gc`.
    Regenerate {
        /// A chapter file (`src/guide/intro.md` or `guide/intro.md`) or the start of a cache
        /// key (at least 4 hex digits, as `list` and `plan --json` show them).
        selector: Option<String>,
        /// Every directive whose image is not in the cache.
        #[arg(long, conflicts_with = "selector")]
        failed: bool,
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Writes a self-contained HTML page showing every image of the book at a glance
    /// (thumbnail, prompt, alt text, caption, provider, model, size, cost, chapter, problems).
    Review {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Where to write the page.
        #[arg(long, default_value = "imagegen-review.html")]
        out: PathBuf,
    },
    /// Rebuilds the cache index from the records.
    Reindex {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Adds `[preprocessor.imagegen]` (with `after = ["links"]`) to book.toml, keeping its
    /// comments and formatting, and creates the cache directory with its `.gitignore`.
    Install {
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
        Some(Command::List { book, json }) => report(list(&preprocessor, &book, json)),
        Some(Command::Stats { book, json }) => report(stats(&preprocessor, &book, json)),
        Some(Command::Gc {
            book,
            dry_run,
            remote,
            grace,
            json,
        }) => report(gc(
            &preprocessor,
            &book,
            dry_run,
            remote.then_some(grace),
            json,
        )),
        Some(Command::Push { book, json }) => report(push(&preprocessor, &book, json)),
        Some(Command::Verify {
            book,
            remote: true,
            json,
            ..
        }) => report(verify_remote(&preprocessor, &book, json)),
        Some(Command::Verify {
            book, fix, json, ..
        }) => report(verify(&preprocessor, &book, fix, json)),
        Some(Command::Install { book }) => report(install(&book)),
        Some(Command::Review { book, out }) => report(review(&preprocessor, &book, &out)),
        Some(Command::Regenerate {
            selector,
            failed,
            book,
        }) => report(regenerate(
            &preprocessor,
            &book,
            selector.as_deref(),
            failed,
        )),
        Some(Command::Reindex { book }) => report(
            load_team(&preprocessor, &book)
                .and_then(|team| Ok(team.reindex()?))
                .map(|keys| {
                    eprintln!("imagegen: the index holds {keys} image{}", s(keys));
                    true
                }),
        ),
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

/// Text from the cache or the book, for the terminal: on one line, controls escaped, capped.
fn t(text: impl AsRef<str>) -> String {
    mdbook_imagegen::for_terminal(text.as_ref())
}

fn plan(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let rows = preprocessor.plan_json(&load_book(dir)?)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &rows)?;
        return Ok(true);
    }
    let place = |r: &PlannedImage| format!("{}:{}", t(&r.file), r.line);
    let width = rows.iter().map(|r| place(r).len()).max().unwrap_or(0);
    for row in &rows {
        let cost = match (row.status, row.cost) {
            ("generate", Some(cost)) => format!("${cost:.3}"),
            ("generate", None) => "price?".to_owned(),
            _ => String::new(),
        };
        let what = match &row.message {
            Some(message) if matches!(row.status, "error" | "over-budget" | "retired") => {
                t(message)
            }
            _ => t(format!(
                "{} {} {}  {}",
                row.provider, row.model, row.size, row.prompt
            )),
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
        ("remote", "in the remote cache"),
        ("draw", "placeholders to draw"),
        ("over-budget", "over budget"),
        ("offline", "missing (offline)"),
        ("retired", "for retired models"),
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
    Ok(count("error") == 0 && count("retired") == 0)
}

fn regenerate(
    preprocessor: &ImageGen,
    dir: &Path,
    selector: Option<&str>,
    failed: bool,
) -> anyhow::Result<bool> {
    let input = load_book(dir)?;
    let rows = preprocessor.plan_json(&input)?;
    let selected: Vec<&PlannedImage> = match (selector, failed) {
        (_, true) => rows
            .iter()
            .filter(|r| matches!(r.status, "generate" | "offline" | "over-budget" | "retired"))
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
                rows.iter()
                    .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(&prefix)))
                    .collect()
            } else {
                Vec::new()
            }
        }
        (None, false) => anyhow::bail!(
            "say what to regenerate: a chapter file, the start of a cache key, or `--failed`"
        ),
    };
    let keys: std::collections::BTreeSet<String> =
        selected.iter().filter_map(|r| r.key.clone()).collect();
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
    run_failing(preprocessor, &input, &keys)
}

fn generate(preprocessor: &ImageGen, dir: &Path) -> anyhow::Result<bool> {
    run_failing(preprocessor, &load_book(dir)?, &[])
}

/// Runs a build's generation on mdBook's input, failing on any failed directive.
fn run_failing(preprocessor: &ImageGen, input: &str, force: &[String]) -> anyhow::Result<bool> {
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

/// Pretty JSON and a final newline.
fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A path relative to the book, as the user would type it.
fn shown_path(dir: &Path, path: &Path) -> PathBuf {
    let base = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    path.strip_prefix(&base).unwrap_or(path).to_owned()
}

fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn install(dir: &Path) -> anyhow::Result<bool> {
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
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(new.as_bytes())?;
            file.as_file().sync_all()?;
            file.persist(&path).map_err(|e| e.error)?;
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

fn review(preprocessor: &ImageGen, dir: &Path, out: &Path) -> anyhow::Result<bool> {
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

fn load_team(preprocessor: &ImageGen, dir: &Path) -> anyhow::Result<Team> {
    Ok(preprocessor.team(&load_book(dir)?)?)
}

fn list(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let images = load_team(preprocessor, dir)?.list()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &images)?;
        return Ok(true);
    }
    let now = std::time::SystemTime::now();
    for image in &images {
        let age = humantime::parse_rfc3339_weak(&image.created_at)
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map_or_else(|| "?".to_owned(), |d| format!("{}d", d.as_secs() / 86_400));
        let chapters = if image.chapters.is_empty() {
            "(unused)".to_owned()
        } else {
            t(image.chapters.join(", "))
        };
        writeln!(
            stdout,
            "{}  {:11} {:16} {:9} ${:<6.3} {:>4}  {chapters}  {}",
            &image.key[..12],
            t(&image.provider),
            t(&image.model),
            t(&image.size),
            image.cost,
            age,
            t(&image.prompt)
        )?;
    }
    let unused = images.iter().filter(|i| i.chapters.is_empty()).count();
    writeln!(
        stdout,
        "\n{} image{}, {unused} unused",
        images.len(),
        s(images.len())
    )?;
    Ok(true)
}

fn stats(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let stats = team.stats()?;
    let errors = team
        .directives()
        .iter()
        .filter(|d| d.status == "error")
        .count();
    let remote = team.remote_stats()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({ "models": stats, "directives_with_errors": errors, "remote": remote });
        print_json(&mut stdout, &value)?;
        return Ok(true);
    }
    writeln!(
        stdout,
        "{:12} {:20} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "provider", "model", "images", "cost", "average", "per image", "requests"
    )?;
    for stat in &stats {
        writeln!(
            stdout,
            "{:12} {:20} {:>7} {:>9} {:>9} {:>8.1}s {:>8}",
            t(&stat.provider),
            t(&stat.model),
            stat.images,
            format!("${:.2}", stat.cost),
            format!("${:.3}", stat.cost / stat.images.max(1) as f64),
            stat.average_seconds,
            stat.requests
        )?;
    }
    let images: usize = stats.iter().map(|s| s.images).sum();
    let cost: f64 = stats.iter().map(|s| s.cost).fold(0.0, |a, b| a + b);
    writeln!(
        stdout,
        "\n{images} image{} in the cache, ${cost:.2} estimated in all; {errors} directive{} with errors in the book",
        s(images),
        s(errors)
    )?;
    if let Some(remote) = remote {
        writeln!(
            stdout,
            "remote `{}`: {} record{}, {} master{} ({:.1} MB), {} web file{} ({:.1} MB)",
            remote.store,
            remote.records,
            s(remote.records),
            remote.masters,
            s(remote.masters),
            remote.master_bytes as f64 / 1_000_000.0,
            remote.assets,
            s(remote.assets),
            remote.asset_bytes as f64 / 1_000_000.0
        )?;
    }
    Ok(true)
}

fn gc(
    preprocessor: &ImageGen,
    dir: &Path,
    dry_run: bool,
    remote_grace: Option<std::time::Duration>,
    json: bool,
) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let removed = team.gc(dry_run)?;
    let remote = match remote_grace {
        Some(grace) => Some(team.gc_remote(dry_run, grace)?),
        None => None,
    };
    let mut stdout = std::io::stdout().lock();
    if json {
        let files: Vec<serde_json::Value> = removed
            .iter()
            .map(|(path, bytes)| serde_json::json!({ "path": shown_path(dir, path), "bytes": bytes }))
            .collect();
        let mut value = serde_json::json!({ "dry_run": dry_run, "files": files });
        if let Some(remote) = &remote {
            value["remote"] = serde_json::to_value(remote)?;
        }
        print_json(&mut stdout, &value)?;
        return Ok(true);
    }
    if let Some(remote) = &remote {
        for object in remote {
            writeln!(
                stdout,
                "{:>10}  remote: {} ({})",
                object.bytes,
                t(&object.path),
                t(&object.what)
            )?;
        }
        let total: u64 = remote.iter().map(|o| o.bytes).sum();
        writeln!(
            stdout,
            "{} {} remote object{}, {:.1} MB",
            if dry_run { "would delete" } else { "deleted" },
            remote.len(),
            s(remote.len()),
            total as f64 / 1_000_000.0
        )?;
    }
    for (path, bytes) in &removed {
        let shown = shown_path(dir, path);
        writeln!(stdout, "{:>10}  {}", bytes, t(shown.display().to_string()))?;
    }
    let total: u64 = removed.iter().map(|(_, b)| b).sum();
    writeln!(
        stdout,
        "{} {} file{}, {:.1} MB",
        if dry_run { "would delete" } else { "deleted" },
        removed.len(),
        s(removed.len()),
        total as f64 / 1_000_000.0
    )?;
    Ok(true)
}

fn push(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let pushed = load_team(preprocessor, dir)?.push()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &pushed)?;
    } else {
        writeln!(
            stdout,
            "uploaded {} file{} ({:.1} MB) to `{}`; {} already there",
            pushed.uploaded,
            s(pushed.uploaded),
            pushed.bytes as f64 / 1_000_000.0,
            pushed.store,
            pushed.present
        )?;
    }
    Ok(true)
}

fn verify_remote(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let problems = load_team(preprocessor, dir)?.verify_remote()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &problems)?;
        return Ok(problems.is_empty());
    }
    for problem in &problems {
        writeln!(stdout, "remote: {}: {}", t(&problem.path), t(&problem.what))?;
    }
    if problems.is_empty() {
        writeln!(stdout, "the remote cache is sound")?;
    } else {
        writeln!(stdout, "{} problem{}", problems.len(), s(problems.len()))?;
    }
    Ok(problems.is_empty())
}

fn verify(preprocessor: &ImageGen, dir: &Path, fix: bool, json: bool) -> anyhow::Result<bool> {
    let problems = load_team(preprocessor, dir)?.verify(fix)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &problems)?;
        return Ok(problems.iter().all(|p| fix && p.fixable));
    }
    for problem in &problems {
        let shown = shown_path(dir, &problem.path);
        let state = match (fix, problem.fixable) {
            (true, true) => "fixed: ",
            (true, false) => "cannot fix: ",
            _ => "",
        };
        writeln!(
            stdout,
            "{}: {state}{}",
            t(shown.display().to_string()),
            t(&problem.what)
        )?;
    }
    let left = problems.iter().filter(|p| !(fix && p.fixable)).count();
    if problems.is_empty() {
        writeln!(stdout, "the cache is sound")?;
    } else if fix {
        writeln!(
            stdout,
            "{} problem{} fixed, {left} left",
            problems.len() - left,
            s(problems.len() - left)
        )?;
    } else {
        writeln!(stdout, "{} problem{}", problems.len(), s(problems.len()))?;
    }
    Ok(left == 0)
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
