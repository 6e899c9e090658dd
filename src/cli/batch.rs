//! `batch submit`, `batch status` and `batch collect`: what they print (stdout) and say
//! (stderr).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use mdbook_imagegen::{BatchRow, Collected, ImageGen, Submitted};

use super::args::BatchCommand;
use super::capture::load_book;
use super::print::{print_json, s, t};

/// Runs a `batch` command.
pub(crate) fn run(preprocessor: &ImageGen, command: BatchCommand) -> anyhow::Result<bool> {
    match command {
        BatchCommand::Submit {
            book,
            max_cost,
            json,
        } => submit(preprocessor, &book, &[], max_cost, json),
        BatchCommand::Status { book, json } => status(preprocessor, &book, json),
        BatchCommand::Collect {
            book,
            wait,
            poll,
            json,
        } => collect(preprocessor, &book, wait, poll, json),
    }
}

pub(crate) fn submit(
    preprocessor: &ImageGen,
    dir: &Path,
    force: &[String],
    max_cost: Option<f64>,
    json: bool,
) -> anyhow::Result<bool> {
    let mut batches = preprocessor.batches(&load_book(dir)?)?;
    submitted(&batches.submit(force, max_cost)?, json)
}

/// Prints what `submit` sent; fails when a batch could not be sent.
pub(crate) fn submitted(submitted: &Submitted, json: bool) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, submitted)?;
        return Ok(submitted.errors.is_empty());
    }
    for skipped in &submitted.skipped {
        eprintln!(
            "imagegen: {}: left out: {}",
            t(&skipped.place),
            t(&skipped.reason)
        );
    }
    table(&mut stdout, &submitted.batches)?;
    let images: u64 = submitted.batches.iter().map(|b| b.total).sum();
    if submitted.batches.is_empty() && submitted.errors.is_empty() {
        writeln!(
            stdout,
            "nothing to send: every image a batch could make is cached or on its way"
        )?;
    } else {
        writeln!(
            stdout,
            "sent {images} image{} in {} batch{}: about ${:.2} at the batch price (${:.2} synchronously); commit `.imagegen/batches/` and run `mdbook-imagegen batch collect` later",
            s(images as usize),
            submitted.batches.len(),
            if submitted.batches.len() == 1 {
                ""
            } else {
                "es"
            },
            submitted.cost,
            submitted.sync_cost
        )?;
    }
    for error in &submitted.errors {
        eprintln!("error: {}", t(error));
    }
    Ok(submitted.errors.is_empty())
}

pub(crate) fn status(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let rows = preprocessor.batches(&load_book(dir)?)?.status()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &rows)?;
    } else if rows.is_empty() {
        writeln!(stdout, "no batch is waiting to be collected")?;
    } else {
        table(&mut stdout, &rows)?;
    }
    Ok(rows
        .iter()
        .all(|r| r.error.is_none() || r.state != "unknown"))
}

pub(crate) fn collect(
    preprocessor: &ImageGen,
    dir: &Path,
    wait: bool,
    poll: Duration,
    json: bool,
) -> anyhow::Result<bool> {
    let collected = preprocessor
        .batches(&load_book(dir)?)?
        .collect(wait, poll)?;
    let mut stdout = std::io::stdout().lock();
    let ok = collected.failed.is_empty() && collected.errors.is_empty();
    if json {
        print_json(&mut stdout, &collected)?;
        return Ok(ok);
    }
    print_collected(&mut stdout, &collected)?;
    for error in &collected.errors {
        eprintln!("error: {}", t(error));
    }
    Ok(ok)
}

fn print_collected(out: &mut impl std::io::Write, collected: &Collected) -> anyhow::Result<()> {
    table(out, &collected.batches)?;
    for failed in &collected.failed {
        eprintln!("imagegen: {}: {}", t(&failed.place), t(&failed.reason));
    }
    for note in &collected.notes {
        eprintln!("imagegen: {}", t(note));
    }
    let mut line = format!(
        "stored {} image{} (${:.2} at the batch price)",
        collected.stored,
        s(collected.stored),
        collected.cost
    );
    if !collected.failed.is_empty() {
        line.push_str(&format!(
            "; {} failed (the next `batch submit` sends them again)",
            collected.failed.len()
        ));
    }
    if collected.pending > 0 {
        line.push_str(&format!(
            "; {} batch{} still running (`--wait` waits for {})",
            collected.pending,
            if collected.pending == 1 { "" } else { "es" },
            if collected.pending == 1 { "it" } else { "them" }
        ));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

/// One line per batch.
fn table(out: &mut impl std::io::Write, rows: &[BatchRow]) -> anyhow::Result<()> {
    for row in rows {
        writeln!(
            out,
            "{}  {} ({} {})  {}  {}/{} done, {} failed  sent {} ({} ago)  expires {}",
            t(&row.id),
            t(&row.profile),
            t(&row.provider),
            t(&row.model),
            row.state,
            row.done,
            row.total,
            row.failed,
            t(&row.submitted_at),
            age(&row.submitted_at),
            t(&row.expires_at)
        )?;
        if let Some(error) = &row.error {
            writeln!(out, "  {}", t(error))?;
        }
    }
    Ok(())
}

/// How long ago an RFC 3339 time was, to the minute.
fn age(time: &str) -> String {
    humantime::parse_rfc3339(time)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs() / 60 * 60)).to_string())
        .map(|d| if d == "0s" { "<1m".to_owned() } else { d })
        .unwrap_or_else(|| "?".to_owned())
}
