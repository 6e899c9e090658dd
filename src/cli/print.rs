//! The tables and JSON the commands print on stdout. Text from the cache or the book goes
//! through [`t`]: on one line, controls escaped, capped.

use std::io::Write;
use std::path::{Path, PathBuf};

use mdbook_imagegen::{ImageGen, PlannedImage, Status};

use super::capture::load_team;

/// What `plan` adds after a prompt for a directive's references, variants and edit:
/// `  [from art/house.png, #keeper; candidate 2 of 3; edit: make it night]`.
fn art_direction(row: &PlannedImage) -> String {
    let mut notes = Vec::new();
    if !row.references.is_empty() {
        notes.push(format!("from {}", row.references.join(", ")));
    }
    if let Some(picked) = row.picked {
        notes.push(format!("candidate {picked} of {}", row.candidates.len()));
    }
    if let Some(edit) = &row.edit {
        notes.push(format!("edit: {edit}"));
    }
    if let (Some(score), Some(verdict)) = (row.score, row.verdict) {
        notes.push(format!("score {score:.2}, {verdict}"));
    }
    match (&row.dark, &row.dark_message, &row.dark_key) {
        (Some(_), Some(message), _) => notes.push(format!("dark twin fails: {message}")),
        (Some(status), None, None) => notes.push(format!(
            "dark twin: {}, after its light image",
            status.as_str()
        )),
        (Some(status), None, Some(_)) => notes.push(format!("dark twin: {}", status.as_str())),
        _ => {}
    }
    if row.key.is_none() && !row.status.is_failure() {
        notes.push("after the images it references".to_owned());
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("  [{}]", notes.join("; "))
    }
}

/// The plan as a table (or JSON), with a closing count per status. Returns whether no directive
/// fails for a reason only the book can fix.
pub(crate) fn plan(rows: &[PlannedImage], json: bool) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &rows)?;
        return Ok(true);
    }
    let place = |r: &PlannedImage| format!("{}:{}", t(&r.file), r.line);
    let width = rows.iter().map(|r| place(r).len()).max().unwrap_or(0);
    for row in rows {
        let cost = match (paid(row), row.cost) {
            (true, Some(cost)) => format!("${cost:.3}"),
            (true, None) => "price?".to_owned(),
            _ => String::new(),
        };
        let what = match &row.message {
            Some(message) if row.status.is_failure() => t(message),
            _ => t(format!(
                "{} {} {}  {}{}{}",
                row.provider,
                row.model,
                row.size,
                row.prompt,
                art_direction(row),
                claimed(row)
            )),
        };
        writeln!(
            stdout,
            "{:width$}  {:11} {:>7}  {what}",
            place(row),
            row.status.as_str(),
            cost
        )?;
    }
    let count = |status: Status| rows.iter().filter(|r| r.status == status).count();
    let mut parts = vec![format!("{} cached", count(Status::Cached))];
    parts.push(to_generate(rows));
    for (status, label) in [
        (Status::Remote, "in the remote cache"),
        (Status::Draw, "placeholders to draw"),
        (Status::OverBudget, "over budget"),
        (Status::Offline, "missing (offline)"),
        (Status::Retired, "for retired models"),
        (Status::InBatch, "in batches not collected yet"),
        (Status::Error, "with errors"),
    ] {
        if count(status) > 0 {
            parts.push(format!("{} {label}", count(status)));
        }
    }
    parts.extend(dark_parts(rows));
    parts.extend(vision_parts(rows));
    writeln!(
        stdout,
        "\n{} directive{}: {}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )?;
    let twins_fail = rows
        .iter()
        .any(|r| matches!(r.dark, Some(Status::Error | Status::Retired)));
    Ok(count(Status::Error) == 0 && count(Status::Retired) == 0 && !twins_fail)
}

/// How many images a build generates, at what estimated price (and through `batch submit`),
/// and how many of them another machine is generating now.
fn to_generate(rows: &[PlannedImage]) -> String {
    let paid: Vec<&PlannedImage> = rows.iter().filter(|r| paid(r)).collect();
    let total: f64 = paid.iter().filter_map(|r| r.cost).sum();
    let batch_total: f64 = paid.iter().filter_map(|r| r.batch_cost.or(r.cost)).sum();
    let by_batch = if batch_total + 0.005 < total {
        format!(", ${batch_total:.2} by `batch submit`")
    } else {
        String::new()
    };
    let claimed = match rows.iter().filter(|r| r.claimed_by.is_some()).count() {
        0 => String::new(),
        n => format!("; {n} generating on another machine now, which a build waits for"),
    };
    let generate = rows.iter().filter(|r| r.status == Status::Generate).count();
    format!("{generate} to generate (estimated ${total:.2}{by_batch}{claimed})")
}

/// Whether a build pays for something of this row: its image, or its dark twin.
fn paid(row: &PlannedImage) -> bool {
    row.status == Status::Generate || row.dark == Some(Status::Generate)
}

/// What `plan`'s closing line says of dark twins.
fn dark_parts(rows: &[PlannedImage]) -> Vec<String> {
    let twins = |status: Status| rows.iter().filter(|r| r.dark == Some(status)).count();
    let mut parts = Vec::new();
    if twins(Status::Generate) > 0 {
        parts.push(format!(
            "{} dark twins to generate",
            twins(Status::Generate)
        ));
    }
    let failing = rows
        .iter()
        .filter(|r| r.dark.is_some_and(Status::is_failure))
        .count();
    if failing > 0 {
        parts.push(format!("{failing} dark twins that fail"));
    }
    parts
}

/// What `plan`'s closing line says of descriptions and judgements.
fn vision_parts(rows: &[PlannedImage]) -> Vec<String> {
    let mut parts = Vec::new();
    let describe = rows
        .iter()
        .filter(|r| r.describe == Some("describe"))
        .count();
    if describe > 0 {
        let cost: f64 = rows.iter().filter_map(|r| r.describe_cost).sum();
        parts.push(format!("{describe} to describe (estimated ${cost:.4})"));
    }
    let verdicts = |v: &str| rows.iter().filter(|r| r.verdict == Some(v)).count();
    if verdicts("judge") > 0 {
        let cost: f64 = rows.iter().filter_map(|r| r.judge_cost).sum();
        parts.push(format!(
            "{} to judge (estimated ${cost:.4} at most)",
            verdicts("judge")
        ));
    }
    if verdicts("review") > 0 {
        parts.push(format!(
            "{} to review (below `min-score`)",
            verdicts("review")
        ));
    }
    parts
}

/// `  (generating on HOST (process N) until …)` for an image another machine holds the claim of.
fn claimed(row: &PlannedImage) -> String {
    row.claimed_by
        .as_ref()
        .map(|by| format!("  (generating on {by})"))
        .unwrap_or_default()
}

pub(crate) fn list(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
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
        let mut made_from = String::new();
        if let Some(candidate) = image.candidate {
            made_from.push_str(&format!("  (candidate {candidate})"));
        }
        if let Some(retry) = image.retry {
            made_from.push_str(&format!("  (new attempt {retry})"));
        }
        if let Some(light) = &image.dark_of {
            made_from.push_str(&format!(
                "  (dark twin of {})",
                t(light.get(..12).unwrap_or(light))
            ));
        }
        if let (Some(score), Some(verdict)) = (image.score, image.verdict) {
            made_from.push_str(&format!("  score {score:.2} {verdict}"));
        }
        if !image.references.is_empty() {
            made_from.push_str(&format!("  from {}", t(image.references.join(", "))));
        }
        writeln!(
            stdout,
            "{}  {:11} {:16} {:9} ${:<6.3} {:>4}  {chapters}  {}{made_from}",
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

/// Records which candidate of a directive's variants its figure shows.
pub(crate) fn pick(
    preprocessor: &ImageGen,
    dir: &Path,
    selector: &str,
    number: u32,
    json: bool,
) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let picked = team.pick(selector, number)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &picked)?;
    } else {
        writeln!(
            stdout,
            "{}:{} shows candidate {} of {} ({}); commit `{}`",
            t(&picked.file),
            picked.line,
            picked.candidate,
            picked.of,
            &picked.key[..16],
            t(&picked.path)
        )?;
        if !picked.scores.is_empty() {
            let scores: Vec<String> = (picked.scores.iter().enumerate())
                .map(|(i, score)| match score {
                    Some(score) => format!("{}: {score:.2}", i + 1),
                    None => format!("{}: not judged", i + 1),
                })
                .collect();
            writeln!(stdout, "scores: {}", scores.join(", "))?;
        }
    }
    Ok(true)
}

/// The directives without an author's alt (or, with `write`, what was written into them).
/// Returns whether every one it was asked to write was written.
pub(crate) fn alt(
    preprocessor: &ImageGen,
    dir: &Path,
    write: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let mut stdout = std::io::stdout().lock();
    if write {
        let written = team.write_alts()?;
        if json {
            print_json(&mut stdout, &written)?;
        } else {
            for w in &written {
                match &w.skipped {
                    None => writeln!(stdout, "{}:{}  alt=\"{}\"", t(&w.file), w.line, t(&w.alt))?,
                    Some(why) => {
                        writeln!(stdout, "{}:{}  skipped: {}", t(&w.file), w.line, t(why))?
                    }
                }
            }
            let done = written.iter().filter(|w| w.skipped.is_none()).count();
            writeln!(
                stdout,
                "\nwrote alt text into {done} directive{}; review the change with `git diff`",
                s(done)
            )?;
        }
        return Ok(written.iter().all(|w| w.skipped.is_none()));
    }
    let missing = team.missing_alts()?;
    if json {
        print_json(&mut stdout, &missing)?;
        return Ok(true);
    }
    let place = |m: &mdbook_imagegen::MissingAlt| format!("{}:{}", t(&m.file), m.line);
    let width = missing.iter().map(|m| place(m).len()).max().unwrap_or(0);
    for m in &missing {
        let from = match (m.from, &m.model) {
            ("described", Some(model)) => format!("described by {}", t(model)),
            ("prompt", _) => "from the prompt".to_owned(),
            _ => "not generated yet".to_owned(),
        };
        writeln!(stdout, "{:width$}  {from:24}  {}", place(m), t(&m.alt))?;
        if let Some(description) = &m.description {
            writeln!(
                stdout,
                "{:width$}  {:24}  description: {}",
                "",
                "",
                t(description)
            )?;
        }
    }
    writeln!(
        stdout,
        "\n{} figure{} without alt text from {} author{}",
        missing.len(),
        s(missing.len()),
        if missing.len() == 1 { "its" } else { "their" },
        if missing.is_empty() {
            ""
        } else {
            "; `mdbook-imagegen alt --write` puts the shown wording into the Markdown"
        }
    )?;
    Ok(true)
}

/// The rows of `stats` for what vision models wrote: descriptions and judgements.
fn note_rows(
    stdout: &mut impl Write,
    descriptions: &[mdbook_imagegen::DescriptionStat],
    judgements: &[mdbook_imagegen::JudgementStat],
) -> std::io::Result<()> {
    for stat in descriptions {
        writeln!(
            stdout,
            "{:12} {:20} {:>7} {:>9} {:>9} {:>9} {:>8}  (alt text)",
            t(&stat.provider),
            t(&stat.model),
            stat.descriptions,
            format!("${:.4}", stat.cost),
            "",
            format!("${:.4}", stat.cost / stat.descriptions.max(1) as f64),
            stat.requests
        )?;
    }
    for stat in judgements {
        writeln!(
            stdout,
            "{:12} {:20} {:>7} {:>9} {:>9} {:>9} {:>8}  (judge: average score {:.2}, {} to review)",
            t(&stat.provider),
            t(&stat.model),
            stat.judgements,
            format!("${:.4}", stat.cost),
            "",
            format!("${:.4}", stat.cost / stat.judgements.max(1) as f64),
            stat.requests,
            stat.average_score,
            stat.review
        )?;
    }
    Ok(())
}

/// `models`: what this version knows of each provider's models.
pub(crate) fn models(json: bool) -> anyhow::Result<bool> {
    let rows = mdbook_imagegen::known_models();
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &rows)?;
        return Ok(true);
    }
    for row in &rows {
        let state = match (&row.shutdown, row.replacement) {
            (Some(day), Some(replacement)) if row.state == "retired" => {
                format!("retired {day} → {replacement}")
            }
            (Some(day), Some(replacement)) if row.earliest => {
                format!("deprecated, from {day} → {replacement}")
            }
            (Some(day), Some(replacement)) => {
                format!("deprecated, shut down {day} → {replacement}")
            }
            _ => row.state.to_owned(),
        };
        writeln!(stdout, "{:12} {:28} {state}", row.kind, row.model)?;
        writeln!(stdout, "{:12} {:28} takes {}", "", "", row.takes)?;
        writeln!(
            stdout,
            "{:12} {:28} read {} at {}",
            "", "", row.read, row.source
        )?;
    }
    writeln!(
        stdout,
        "\n{} models; providers change these: check the sources before relying on a date or a price",
        rows.len()
    )?;
    Ok(true)
}

pub(crate) fn stats(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let stats = team.stats()?;
    let errors = team
        .directives()
        .iter()
        .filter(|d| d.status == Status::Error)
        .count();
    let remote = team.remote_stats()?;
    let descriptions = team.description_stats()?;
    let judgements = team.judgement_stats()?;
    let dark = team.dark_stats()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({ "models": stats, "descriptions": descriptions, "judgements": judgements, "dark_twins": dark, "directives_with_errors": errors, "remote": remote });
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
    if dark.images > 0 {
        writeln!(
            stdout,
            "of which dark twins: {} image{}, ${:.2}",
            dark.images,
            if dark.images == 1 { "" } else { "s" },
            dark.cost
        )?;
    }
    note_rows(&mut stdout, &descriptions, &judgements)?;
    let images: usize = stats.iter().map(|s| s.images).sum();
    let cost: f64 = stats
        .iter()
        .map(|s| s.cost)
        .chain(descriptions.iter().map(|s| s.cost))
        .chain(judgements.iter().map(|s| s.cost))
        .fold(0.0, |a, b| a + b);
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
        claims(&mut stdout, &remote.claims)?;
    }
    Ok(true)
}

/// The images other machines are generating now, one line each.
fn claims(out: &mut impl Write, claims: &[mdbook_imagegen::RemoteClaim]) -> std::io::Result<()> {
    let live: Vec<_> = claims.iter().filter(|c| c.live).collect();
    if live.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{} image{} being generated on other machines now (live claims):",
        live.len(),
        s(live.len())
    )?;
    for claim in live {
        writeln!(
            out,
            "  {}  {} until {}",
            &claim.key[..12],
            t(&claim.holder),
            t(&claim.expires_at)
        )?;
    }
    Ok(())
}

pub(crate) fn gc(
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

pub(crate) fn push(preprocessor: &ImageGen, dir: &Path, json: bool) -> anyhow::Result<bool> {
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

pub(crate) fn verify_remote(
    preprocessor: &ImageGen,
    dir: &Path,
    json: bool,
) -> anyhow::Result<bool> {
    let team = load_team(preprocessor, dir)?;
    let problems = team.verify_remote()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &problems)?;
        return Ok(problems.is_empty());
    }
    for problem in &problems {
        writeln!(stdout, "remote: {}: {}", t(&problem.path), t(&problem.what))?;
    }
    claims(&mut stdout, &team.remote_claims()?)?;
    if problems.is_empty() {
        writeln!(stdout, "the remote cache is sound")?;
    } else {
        writeln!(stdout, "{} problem{}", problems.len(), s(problems.len()))?;
    }
    Ok(problems.is_empty())
}

pub(crate) fn verify(
    preprocessor: &ImageGen,
    dir: &Path,
    fix: bool,
    json: bool,
) -> anyhow::Result<bool> {
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

/// Text from the cache or the book, for the terminal: on one line, controls escaped, capped.
pub(crate) fn t(text: impl AsRef<str>) -> String {
    mdbook_imagegen::for_terminal(text.as_ref())
}

/// Pretty JSON and a final newline.
pub(crate) fn print_json(
    out: &mut impl Write,
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A path relative to the book, as the user would type it.
pub(crate) fn shown_path(dir: &Path, path: &Path) -> PathBuf {
    let base = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    path.strip_prefix(&base).unwrap_or(path).to_owned()
}

pub(crate) fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
