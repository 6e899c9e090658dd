//! The build, as stages in the order data flows:
//!
//! ```text
//! parse::pages → jobs::jobs → lookup (local cache, remote) → resolve::resolve
//!   → generate::run → derive::run → judge (with a judge) → dark::run (dark twins)
//!   → publish::run → describe::run → render::pages
//! ```
//!
//! Each stage is a module with a typed input and output. [`resolve::resolve`] is the one place
//! that decides what each image gets (the local cache, the remote, a provider, or a failure for
//! being offline, over budget or on a retired model); `plan`, `regenerate --failed` and the
//! review page print that same decision (see [`preview`]), so they cannot disagree with a build.
//!
//! This module only runs the stages in order; it is the only one that knows about chapters and
//! the cache at once.

mod dark;
mod derive;
mod describe;
mod generate;
mod image;
mod input;
mod jobs;
mod judge;
mod lookup;
mod make;
mod parse;
mod prefetch;
mod preview;
mod publish;
mod references;
mod render;
mod resolve;
mod rounds;
mod web_files;
mod workers;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::config::{Config, OnError};
use crate::error::{Error, Result};
use crate::models::Day;
use crate::protocol::{self, Chapter, Context};
use crate::storage::Remote;
use prefetch::Prepared;

pub use preview::PlannedImage;
pub(crate) use preview::{Planned, Variants, planned_book};
pub use resolve::Status;

/// The mdBook preprocessor. Its name in `book.toml` is `imagegen`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct ImageGen {}

impl ImageGen {
    /// The preprocessor's name, as in `[preprocessor.imagegen]`.
    pub const NAME: &'static str = "imagegen";

    /// Whether a renderer is supported: all are. HTML gets `<figure>`s, the others Markdown
    /// images, and `test` gets neither.
    pub fn supports_renderer(&self, _renderer: &str) -> bool {
        true
    }

    /// Runs the preprocessor on mdBook's `[context, book]` JSON and returns the book JSON.
    pub fn run_json(&self, input: &str) -> Result<String> {
        self.regenerate_json(input, &[])
    }

    /// Like [`ImageGen::run_json`], but the images of these cache keys (hex) are generated
    /// again even though they are cached. Each new image replaces the old one's record; the
    /// old master stays until `gc`.
    pub fn regenerate_json(&self, input: &str, keys: &[String]) -> Result<String> {
        let (context, json) = protocol::parse(input)?;
        let book = run(
            context,
            json,
            keys,
            Prepared::default(),
            &mut Default::default(),
        )?;
        serde_json::to_string(&book)
            .map_err(|e| Error::Input(format!("cannot encode the book: {e}")))
    }

    /// Like [`ImageGen::run_json`], reading mdBook's input from `reader` as it arrives (the
    /// chapters are parsed and their images looked up while mdBook is still writing the rest)
    /// and writing the book to `out`.
    pub fn run_reader(&self, reader: impl std::io::Read, out: impl std::io::Write) -> Result<()> {
        let prefetch = prefetch::Prefetch::start();
        let read = protocol::read(
            reader,
            |context| prefetch.context(context),
            &mut |content| prefetch.chapter(content),
        );
        let read_in = Instant::now();
        let prepared = prefetch.finish();
        let (context, json) = read?;
        let book = run(context, json, &[], prepared, &mut Default::default())?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer(&mut out, &book)
            .map_err(std::io::Error::from)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|source| Error::Pipe {
                action: "write the book to stdout",
                source,
            })?;
        tracing::debug!(
            "from the input's last byte to the book written: {:.2?}",
            read_in.elapsed()
        );
        // Freeing the book's many small allocations takes a while; mdBook need not wait for it.
        std::thread::spawn(move || drop(book));
        Ok(())
    }

    /// What a build of this input (mdBook's `[context, book]` JSON) would generate and reuse,
    /// per directive in book order. Calls no provider and writes nothing but the index.
    pub fn plan_json(&self, input: &str) -> Result<Vec<PlannedImage>> {
        Ok(planned_book(input)?
            .planned
            .iter()
            .map(PlannedImage::from)
            .collect())
    }
}

/// The book's settings and root directory, from mdBook's input, for the `batch` commands
/// that plan nothing.
pub(crate) fn settings_of(input: &str) -> Result<(crate::config::Config, PathBuf)> {
    let (context, json) = protocol::parse(input)?;
    let input::Opened { ctx, config, .. } = input::Opened::read(&context, &json, false)?;
    Ok((config, ctx.root.clone()))
}

/// Runs a build for a `batch` command on mdBook's input: `batching` says what it gathers, and
/// holds it when the build is done.
pub(crate) fn run_batch(
    input: &str,
    keys: &[String],
    batching: &mut crate::batch::hook::Batching,
) -> Result<()> {
    let (context, json) = protocol::parse(input)?;
    run(context, json, keys, Prepared::default(), batching).map(drop)
}

/// Runs the build on mdBook's input, with what the head start prepared; returns the book.
fn run(
    context: serde_json::Value,
    mut json: serde_json::Value,
    keys: &[String],
    mut prepared: Prepared,
    batching: &mut crate::batch::hook::Batching,
) -> Result<serde_json::Value> {
    let force: BTreeSet<CacheKey> = keys.iter().filter_map(|k| CacheKey::from_hex(k)).collect();
    let opened = input::Opened::read(&context, &json, true)?;
    if prepared.sections != opened.sections() {
        prepared = Prepared::default();
    }
    let contents = {
        let chapters = protocol::chapters(&json, opened.key);
        let mut book = opened.book();
        book.batching = std::mem::take(batching);
        let built = build(&book, &chapters, &force, prepared);
        *batching = std::mem::take(&mut book.batching);
        built?
    };
    let key = opened.key;
    protocol::set_contents(&mut json, key, contents);
    Ok(json)
}

/// The stages of one build, in order. Returns the new content of every chapter with directives.
fn build(
    book: &Book<'_>,
    chapters: &[Chapter<'_>],
    force: &BTreeSet<CacheKey>,
    mut prepared: Prepared,
) -> Result<Vec<(usize, String)>> {
    let started = Instant::now();
    let mut pages = parse::pages(chapters, book, &mut prepared.parsed);
    if pages.is_empty() {
        return Ok(Vec::new());
    }
    if book.ctx.renderer == "test" {
        // `mdbook test` only runs code; it never gets images, and never calls a provider.
        return Ok(pages.iter().map(parse::strip).collect());
    }
    let mut cache = prepared
        .cache
        .take()
        .unwrap_or_else(|| Cache::of_book(&book.ctx.root, book.config));
    let mut reader = references::Reader::new(&book.ctx.root);
    let mut plan = jobs::jobs(&mut pages, book.config, &mut reader, &|key| {
        cache.picked(key)
    });
    let planned = Instant::now();

    let mut make = make::Make::new(force, std::mem::take(&mut prepared.local));
    let mut rounds = rounds::run(book, &pages, &mut plan, &mut cache, &mut make)?;
    let mut derived = derive::run(book, &mut cache, &mut make.images);
    let judged = settled(
        book,
        &mut cache,
        &pages,
        &mut plan,
        &mut make,
        &mut rounds,
        &mut derived,
    )?;
    let remote = rounds.remote;
    let make::Make {
        images,
        mut summary,
        published,
        resolved,
        ..
    } = make;
    // The first round always runs, and resolves.
    let resolved = resolved.unwrap_or(planned);
    summary.derived(derived);
    if let Some(remote) = &remote {
        publish::run(book, &mut cache, remote, &images, &published);
    }
    let described = describe::run(book, &mut cache, remote.as_ref(), &pages, &plan, &images);
    let made = Instant::now();
    let mut rendered = render::pages(book, &pages, &plan, &images, &described);
    rendered.failures.extend(described.failures);
    rendered.failures.extend(judged.failures);
    let unwritten = render::alt_check(book.config, &mut rendered.authorless);
    let spliced = Instant::now();
    cache.finish(rendered.refs)?;
    tracing::debug!(
        "parse and plan {:.2?}, look up and resolve {:.2?}, generate, derive and publish {:.2?}, render {:.2?}, index {:.2?}",
        planned.duration_since(started),
        resolved.duration_since(planned),
        made.duration_since(resolved),
        spliced.duration_since(made),
        spliced.elapsed()
    );
    if book.batching.is_command() {
        // Its pages are not used, and the command reports what it did.
        return Ok(rendered.contents);
    }
    summary.report(started.elapsed());
    finish(
        book.config.on_error,
        rendered.contents,
        rendered.failures,
        unwritten,
    )
}

/// With a judge: every image a directive keeps judged, each directive with `variants` and no
/// pick showing its best-scored candidate, and with `mode = "gate"` new attempts at the
/// figures below `min-score` (generated, derived and judged in turn).
fn judged(
    book: &Book<'_>,
    cache: &mut Cache,
    pages: &[parse::Page<'_>],
    plan: &mut jobs::Plan,
    make: &mut make::Make,
    rounds: &mut rounds::Rounds,
    derived: &mut (usize, Duration),
) -> Result<judge::Judged> {
    let mut judged = judge::Judged::default();
    // A `batch` command only submits or collects: judging is the next build's.
    if book.config.judge.is_none() || book.batching.is_command() {
        return Ok(judged);
    }
    let started = Instant::now();
    let remote = rounds.remote.as_ref();
    judge::run(book, cache, remote, pages, plan, &make.images, &mut judged);
    let score = |job: usize| judged.by_job.get(&job).map(|r| r.score);
    judge::rank(plan, pages, &score, &|key| cache.picked(key).is_some());
    let picks: BTreeSet<CacheKey> = (plan.candidates.values())
        .map(|(jobs, _)| plan.jobs[jobs[0]].key)
        .filter(|key| cache.picked(*key).is_some())
        .collect();
    judge::gate(
        book,
        cache,
        pages,
        plan,
        make,
        rounds,
        &|key| picks.contains(&key),
        &mut |cache, plan, make, rounds| {
            let (count, time) = derive::run(book, cache, &mut make.images);
            *derived = (derived.0 + count, derived.1 + time);
            let remote = rounds.remote.as_ref();
            judge::run(book, cache, remote, pages, plan, &make.images, &mut judged);
            judged.by_job.clone()
        },
    )?;
    tracing::debug!("judge {:.2?}", started.elapsed());
    Ok(judged)
}

/// The figures settled: judged (with a judge, see [`judged`]), then given their dark twins
/// (`[dark]`, `dark=`), planned from the images they show, made and derived.
fn settled(
    book: &Book<'_>,
    cache: &mut Cache,
    pages: &[parse::Page<'_>],
    plan: &mut jobs::Plan,
    make: &mut make::Make,
    rounds: &mut rounds::Rounds,
    derived: &mut (usize, Duration),
) -> Result<judge::Judged> {
    let judged = judged(book, cache, pages, plan, make, rounds, derived)?;
    let before = plan.jobs.len();
    dark::run(book, cache, pages, plan, make, rounds)?;
    if plan.jobs.len() > before {
        let (count, time) = derive::run(book, cache, &mut make.images);
        *derived = (derived.0 + count, derived.1 + time);
    }
    Ok(judged)
}

/// Fails the build with every failed directive, or, with `on-error = "placeholder"`, warns
/// about each and keeps the error figures. A figure `require-alt` refuses fails the build
/// whatever `on-error` says (with every other failure listed beside it).
fn finish(
    on_error: OnError,
    contents: Vec<(usize, String)>,
    mut failures: Vec<crate::error::Located>,
    refused: Vec<crate::error::Located>,
) -> Result<Vec<(usize, String)>> {
    let must_fail = !refused.is_empty();
    // A directive that failed already (its description, say) is listed once, with both
    // reasons; one listed twice (a chapter twice in SUMMARY.md) once.
    for refusal in refused {
        let same = |f: &crate::error::Located| f.file == refusal.file && f.line == refusal.line;
        match failures.iter_mut().find(|f| same(f)) {
            Some(failure) if failure.message != refusal.message => {
                failure.message = format!("{}; and {}", failure.message, refusal.message);
            }
            Some(_) => {}
            None => failures.push(refusal),
        }
    }
    failures.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if must_fail {
        return Err(Error::Directives(failures));
    }
    if !failures.is_empty() {
        match on_error {
            OnError::Fail => return Err(Error::Directives(failures)),
            OnError::Placeholder => {
                for failure in &failures {
                    tracing::warn!("{failure}");
                }
            }
        }
    }
    Ok(contents)
}

/// What every stage reads: mdBook's context, the book's settings, and the day models'
/// lifecycles are judged on.
pub(crate) struct Book<'a> {
    pub(crate) ctx: &'a Context<'a>,
    pub(crate) config: &'a Config,
    pub(crate) today: Day,
    pub(crate) markdown: mdbook_markdown::MarkdownOptions,
    /// Where web files are written: the book's source directory, or, when figures point at a
    /// `public-url`, a local staging directory they are uploaded from.
    pub(crate) assets_dir: PathBuf,
    /// What generation does with batches: a build leaves pending ones alone; the `batch`
    /// commands submit or collect.
    pub(crate) batching: crate::batch::hook::Batching,
    /// See [`Book::pending_batches`].
    pending_batches: std::sync::OnceLock<std::collections::BTreeMap<CacheKey, String>>,
}

impl<'a> Book<'a> {
    pub(crate) fn new(ctx: &'a Context<'a>, config: &'a Config, sections: bool) -> Book<'a> {
        let assets_dir = if config
            .storage
            .as_ref()
            .is_some_and(|s| s.public_url.is_some())
        {
            ctx.root
                .join(&config.cache_dir)
                .join("local")
                .join("public")
        } else {
            ctx.root.join(ctx.src).join(&config.assets_dir)
        };
        Book {
            ctx,
            config,
            today: Day::today(),
            markdown: crate::directive::markdown_options(sections),
            assets_dir,
            batching: Default::default(),
            pending_batches: Default::default(),
        }
    }

    pub(crate) fn cache_root(&self) -> PathBuf {
        self.ctx.root.join(&self.config.cache_dir)
    }

    /// The base URL figures point at, when the remote cache serves the web files.
    pub(crate) fn public_url(&self) -> Option<&str> {
        self.config.storage.as_ref()?.public_url.as_deref()
    }

    /// The directory web files must stay inside (never written through a link below it): the
    /// book's source directory, or the cache for the staging directory of a `public-url`.
    pub(crate) fn assets_base(&self) -> PathBuf {
        if self.public_url().is_some() {
            self.cache_root()
        } else {
            self.ctx.root.join(self.ctx.src)
        }
    }

    /// Connects to the shared remote cache when the book has one and `needed` says there is
    /// something to fetch, upload or publish: a build that changed nothing does not even set up
    /// a client. A store that cannot be set up (credentials missing, a share not mounted) gives
    /// one warning and a build without it.
    pub(crate) fn remote_if(&self, needed: impl FnOnce() -> bool) -> Option<Remote> {
        let storage = self.config.storage.as_ref()?;
        if !needed() {
            return None;
        }
        let var = |name: &str| std::env::var(name).ok();
        match Remote::open(storage, &self.ctx.root, &var) {
            Ok(remote) => Some(remote),
            Err(e) => {
                tracing::warn!("imagegen: {e}; this build goes on without the remote cache");
                None
            }
        }
    }

    /// Runs `work` with what providers need from this machine: the real sleep, the process
    /// environment, and every secret the book's profiles name (to redact).
    pub(crate) fn with_provider_env<T>(
        &self,
        work: impl FnOnce(&crate::provider::Env<'_>) -> T,
    ) -> T {
        crate::provider::with_machine_env(self.config, &self.ctx.root, work)
    }

    /// The keys of the book's pending batches, with the batch each is in: read from
    /// `.imagegen/batches/` the first time a stage asks (only when something is to be
    /// generated), then kept for the rest of the build.
    pub(crate) fn pending_batches(&self) -> &std::collections::BTreeMap<CacheKey, String> {
        self.pending_batches
            .get_or_init(|| crate::batch::store::pending(&self.cache_root()))
    }

    /// The longest a build waits for another build of the book that generates the same image:
    /// as long as that build may take for it, every retry included, and a minute more.
    pub(crate) fn flight_wait(&self) -> Duration {
        let retry = self.config.retry;
        let longest = self
            .config
            .profiles
            .values()
            .filter_map(|p| p.timeout)
            .max()
            .unwrap_or(retry.timeout)
            .max(retry.timeout);
        (longest + retry.max_wait) * (retry.retries + 1) + Duration::from_secs(60)
    }
}

/// The start of a prompt, for messages.
pub(crate) fn prompt_start(prompt: &str) -> String {
    const SHOWN: usize = 60;
    if prompt.chars().count() <= SHOWN {
        prompt.to_owned()
    } else {
        format!(
            "{}…",
            prompt.chars().take(SHOWN).collect::<String>().trim_end()
        )
    }
}
