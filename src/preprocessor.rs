//! One run of the preprocessor, phase by phase: find directives in every chapter, plan a job
//! for each, look the jobs up in the cache, generate what is missing (several at a time), make
//! sure each image's asset is in the book's source directory, then splice figures into the
//! chapters.
//!
//! This is the only module that knows about chapters and files at once; it attaches the
//! chapter file and line to every problem.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::budget;
use crate::cache::{Cache, Entry, Tier};
use crate::config::{Config, Mode, OnError};
use crate::derive::{self, Manifest};
use crate::directive::{self, Directive};
use crate::error::{Error, Located, Result};
use crate::figure::{self, Figure};
use crate::generate::Got;
use crate::models::Day;
use crate::plan::{self, CacheKey, Chain, Request};
use crate::progress::{Progress, plural};
use crate::protocol::{self, Chapter, Context};
use crate::provider;
use crate::rewrite::{self, Replacement};
use crate::storage::Remote;

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
        let force: BTreeSet<CacheKey> = keys.iter().filter_map(|k| CacheKey::from_hex(k)).collect();
        let (context, mut book) = protocol::parse(input)?;
        let ctx = Context::read(&context)?;
        if !protocol::is_supported(ctx.mdbook_version) {
            tracing::warn!(
                "mdbook-imagegen {} was built for mdBook {}, and this is mdBook {}; if the build misbehaves, upgrade the one that is older",
                env!("CARGO_PKG_VERSION"),
                protocol::SUPPORTED_MDBOOK,
                ctx.mdbook_version
            );
        }
        let config = Config::from_table(ctx.table)?;
        config.check_layout(ctx.src, ctx.build_dir)?;
        let key = protocol::items_key(&book)?;
        let contents = {
            let chapters = protocol::chapters(&book, key);
            let run = Run {
                ctx: &ctx,
                config: &config,
                markdown: directive::markdown_options(key == "sections"),
                force,
                today: Day::today(),
            };
            run.rewrite(&chapters)?
        };
        protocol::set_contents(&mut book, key, contents);
        serde_json::to_string(&book)
            .map_err(|e| Error::Input(format!("cannot encode the book: {e}")))
    }
}

/// What a build would do for one directive, as `mdbook-imagegen plan` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct PlannedImage {
    /// The chapter file, as the user knows it (`src/guide/intro.md`).
    pub file: String,
    /// The directive's line in that file.
    pub line: usize,
    /// `cached`, `remote` (in the shared remote cache: downloaded, not generated), `generate`,
    /// `draw` (a placeholder, drawn locally), `over-budget`, `offline` (not cached, and the
    /// build may not call a provider), `retired` (not cached, and its model is retired) or
    /// `error`.
    pub status: &'static str,
    /// The profile the directive uses.
    pub profile: String,
    /// The provider kind of that profile.
    pub provider: String,
    /// The model the profile asks for.
    pub model: String,
    /// `WIDTHxHEIGHT`.
    pub size: String,
    /// The estimated price in US dollars of generating it, when it is to be generated and the
    /// price is known.
    pub cost: Option<f64>,
    /// The start of the prompt.
    pub prompt: String,
    /// The alt text, when the directive gives one.
    pub alt: Option<String>,
    /// The caption, when the directive gives one.
    pub caption: Option<String>,
    /// The cache key, in hex, when the directive is valid.
    pub key: Option<String>,
    /// What is wrong with the directive, for `error`.
    pub message: Option<String>,
    /// The keys of the directive's profile and of each fallback, in hex: every image that
    /// may serve it.
    #[serde(skip)]
    pub(crate) chain: Vec<String>,
    /// The part of the cache the directive's own image lives in.
    #[serde(skip)]
    pub(crate) tier: Tier,
}

/// One run's settings.
struct Run<'a> {
    ctx: &'a Context<'a>,
    config: &'a Config,
    markdown: mdbook_markdown::MarkdownOptions,
    /// Keys generated again even when cached (`regenerate`).
    force: BTreeSet<CacheKey>,
    /// The day models' lifecycles are judged on.
    today: Day,
}

impl ImageGen {
    /// What a build of this input (mdBook's `[context, book]` JSON) would generate and reuse,
    /// per directive in book order. Calls no provider and writes nothing but the index.
    pub fn plan_json(&self, input: &str) -> Result<Vec<PlannedImage>> {
        Ok(planned_book(input)?.rows)
    }
}

/// A book as `plan` sees it: its directives, and what the team commands need besides.
pub(crate) struct PlannedBook {
    pub(crate) rows: Vec<PlannedImage>,
    /// The book's root directory.
    pub(crate) root: PathBuf,
    /// The source directory, relative to the root.
    pub(crate) src: String,
    pub(crate) config: Config,
}

/// Plans a book from mdBook's input, reading the input once.
pub(crate) fn planned_book(input: &str) -> Result<PlannedBook> {
    let (context, book) = protocol::parse(input)?;
    let ctx = Context::read(&context)?;
    let config = Config::from_table(ctx.table)?;
    config.check_layout(ctx.src, ctx.build_dir)?;
    let key = protocol::items_key(&book)?;
    let chapters = protocol::chapters(&book, key);
    let run = Run {
        ctx: &ctx,
        config: &config,
        markdown: directive::markdown_options(key == "sections"),
        force: BTreeSet::new(),
        today: Day::today(),
    };
    let rows = run.plan(&chapters)?;
    Ok(PlannedBook {
        rows,
        root: ctx.root.clone(),
        src: ctx.src.to_owned(),
        config,
    })
}

impl Run<'_> {
    fn plan(&self, chapters: &[Chapter<'_>]) -> Result<Vec<PlannedImage>> {
        let cache_root = self.ctx.root.join(&self.config.cache_dir);
        let mut cache = Cache::open(&cache_root);
        if self.config.storage.is_some() {
            cache.expect_remote_masters();
        }
        let mut rows = Vec::new();
        // Chains still to generate, with the row each first appears in.
        let mut to_generate: Vec<(Chain, usize)> = Vec::new();
        let mut seen: HashMap<CacheKey, usize> = HashMap::new();
        let mut warned: BTreeSet<String> = BTreeSet::new();
        for chapter in chapters
            .iter()
            .filter(|c| directive::may_contain(c.content))
        {
            let (directives, problems) = directive::parse(chapter.content, &self.markdown);
            let file = self.chapter_file(chapter);
            let error = |line: usize, prompt: String, message: Option<String>| PlannedImage {
                file: file.clone(),
                line,
                status: "error",
                profile: String::new(),
                provider: String::new(),
                model: String::new(),
                size: String::new(),
                cost: None,
                prompt,
                alt: None,
                caption: None,
                key: None,
                message,
                chain: Vec::new(),
                tier: Tier::Committed,
            };
            for problem in problems {
                rows.push(error(problem.line, String::new(), Some(problem.message)));
            }
            for directive in &directives {
                let mut row = error(directive.line, prompt_start(&directive.prompt), None);
                row.alt.clone_from(&directive.attrs.alt);
                row.caption.clone_from(&directive.attrs.caption);
                let chain = match plan::chain(directive, self.config) {
                    Ok(chain) => chain,
                    Err(message) => {
                        row.message = Some(message);
                        rows.push(row);
                        continue;
                    }
                };
                let (key, request) = &chain[0];
                row.profile = request.profile.clone();
                row.provider = request.kind.as_str().to_owned();
                row.model = request.model.clone();
                row.size = format!("{}x{}", request.size.width, request.size.height);
                row.key = Some(key.to_hex());
                row.chain = chain.iter().map(|(k, _)| k.to_hex()).collect();
                row.tier = tier_of(request);
                if let Some(&first) = seen.get(key) {
                    // The same image as an earlier directive: made once.
                    row.status = if rows[first].status == "generate" {
                        "cached"
                    } else {
                        rows[first].status
                    };
                    rows.push(row);
                    continue;
                }
                seen.insert(*key, rows.len());
                let mut cached = false;
                for (link, (link_key, link_request)) in chain.iter().enumerate() {
                    if link > 0 && !link_request.kind.is_model() {
                        continue;
                    }
                    let tier = tier_of(link_request);
                    if let Some(entry) = cache.lookup(tier, *link_key)?
                        && cache.master_path(tier, &entry).exists()
                    {
                        cached = true;
                        break;
                    }
                }
                row.status = if cached {
                    "cached"
                } else if !request.kind.is_model() {
                    "draw"
                } else if self.config.offline {
                    "offline"
                } else if let Some(message) = plan::retired(&chain, self.config, self.today) {
                    row.message = Some(message);
                    "retired"
                } else {
                    plan::warn_deprecations(&chain, self.config, self.today, &mut warned);
                    row.cost = self
                        .config
                        .profile(&request.profile)
                        .ok()
                        .and_then(|p| crate::price::estimate(request, p, &self.config.prices));
                    to_generate.push((chain.clone(), rows.len()));
                    "generate"
                };
                rows.push(row);
            }
        }
        // What the shared remote cache has is downloaded, not generated.
        let open: Vec<usize> = (0..rows.len())
            .filter(|&i| matches!(rows[i].status, "generate" | "offline"))
            .collect();
        let keys: Vec<CacheKey> = open
            .iter()
            .flat_map(|&i| rows[i].chain.iter())
            .filter_map(|k| CacheKey::from_hex(k))
            .collect();
        // Set up only when some image is missing here.
        let remote = if keys.is_empty() {
            None
        } else {
            self.open_remote()
        };
        if let Some(remote) = &remote
            && let Some(present) = remote.degrade(cache.remote_has(remote, &keys))
        {
            for i in open {
                let found = rows[i]
                    .chain
                    .iter()
                    .filter_map(|k| CacheKey::from_hex(k))
                    .any(|k| present.contains(&k));
                if found {
                    rows[i].status = "remote";
                    rows[i].cost = None;
                }
            }
            to_generate.retain(|(_, row)| rows[*row].status == "generate");
            // A later directive with the same image follows the first one.
            for i in 0..rows.len() {
                if let Some(key) = rows[i].key.as_deref().and_then(CacheKey::from_hex)
                    && let Some(&first) = seen.get(&key)
                    && first != i
                    && rows[first].status == "remote"
                {
                    rows[i].status = "remote";
                }
            }
        }
        cache.close_index();
        let chains: Vec<&Chain> = to_generate.iter().map(|(chain, _)| chain).collect();
        for (verdict, (_, row)) in budget::apply(&chains, self.config)
            .into_iter()
            .zip(&to_generate)
        {
            if let Some(reason) = verdict {
                rows[*row].status = "over-budget";
                rows[*row].message = Some(reason);
            }
        }
        Ok(rows)
    }
}

/// A chapter with directives.
struct Page<'a> {
    chapter: Chapter<'a>,
    /// The chapter's file as the user knows it (`src/guide/intro.md`).
    file: String,
    directives: Vec<Directive>,
    problems: Vec<directive::Problem>,
}

/// What became of one cache key.
enum Outcome {
    /// The master is in the cache; its web files are listed once derived.
    Ready {
        entry: Entry,
        tier: Tier,
        /// The provider kind and model that made it, for the provenance metadata.
        origin: (&'static str, String),
        by_model: bool,
        /// The shape the figure is cropped to, when the master's is not the requested one.
        frame: Option<(u32, u32)>,
        /// The derivation id of the master under this book's output settings.
        derivation: String,
        manifest: Option<Manifest>,
    },
    Failed(String),
}

impl Run<'_> {
    /// Returns the new content of every chapter that had directives.
    fn rewrite(&self, chapters: &[Chapter<'_>]) -> Result<Vec<(usize, String)>> {
        let parse_started = Instant::now();
        let pages: Vec<Page<'_>> = chapters
            .iter()
            .filter(|c| directive::may_contain(c.content))
            .filter_map(|&chapter| {
                let (directives, problems) = directive::parse(chapter.content, &self.markdown);
                (!directives.is_empty() || !problems.is_empty()).then(|| Page {
                    file: self.chapter_file(&chapter),
                    chapter,
                    directives,
                    problems,
                })
            })
            .collect();
        if pages.is_empty() {
            return Ok(Vec::new());
        }
        let parsed = Instant::now();
        if self.ctx.renderer == "test" {
            // `mdbook test` only runs code; it never gets images, and never calls a provider.
            return Ok(pages.iter().map(|page| strip(page)).collect());
        }

        let started = Instant::now();
        let mut failures: Vec<Located> = Vec::new();
        let mut requests: Vec<Vec<Result<CacheKey, String>>> = Vec::new();
        let mut jobs: BTreeMap<CacheKey, Chain> = BTreeMap::new();
        for page in &pages {
            let mut planned = Vec::new();
            for directive in &page.directives {
                let chain = plan::chain(directive, self.config).map(|chain| {
                    let key = chain[0].0;
                    jobs.entry(key).or_insert(chain);
                    key
                });
                planned.push(chain);
            }
            requests.push(planned);
        }

        let cache_root = self.ctx.root.join(&self.config.cache_dir);
        let mut cache = Cache::open(&cache_root);
        if self.config.storage.is_some() {
            cache.expect_remote_masters();
        }
        let mut outcomes: HashMap<CacheKey, Outcome> = HashMap::new();
        // Jobs not in the local cache, looked for in the remote one next.
        let mut unresolved: Vec<(CacheKey, &Chain)> = Vec::new();
        'jobs: for (key, chain) in &jobs {
            if self.force.contains(key) {
                unresolved.push((*key, chain));
                continue;
            }
            // An image made by a fallback profile serves the directive as well as its own,
            // except a placeholder: it only stands in until the directive's provider answers.
            for (link, (link_key, request)) in chain.iter().enumerate() {
                if link > 0 && !request.kind.is_model() {
                    continue;
                }
                let tier = tier_of(request);
                if let Some(entry) = cache.lookup(tier, *link_key)? {
                    let outcome = self.ready(&cache, tier, entry, request);
                    // A master removed by hand (the index still names it) is made again.
                    if let Outcome::Ready {
                        entry, manifest, ..
                    } = &outcome
                        && (manifest.is_some() || cache.master_path(tier, entry).exists())
                    {
                        outcomes.insert(*key, outcome);
                        continue 'jobs;
                    }
                }
            }
            unresolved.push((*key, chain));
        }
        // Which web files the remote already serves, known while the index is open.
        let published: BTreeSet<String> = match &self.config.storage {
            Some(storage) if storage.public_url.is_some() => {
                let label = crate::storage::label(storage, &self.ctx.root);
                outcomes
                    .values()
                    .filter_map(|o| match o {
                        Outcome::Ready { derivation, .. }
                            if cache.is_published(&label, derivation) =>
                        {
                            Some(derivation.clone())
                        }
                        _ => None,
                    })
                    .collect()
            }
            _ => BTreeSet::new(),
        };
        let unpublished = self.public_url().is_some()
            && outcomes.values().any(|o| {
                matches!(o, Outcome::Ready { derivation, .. } if !published.contains(derivation))
            });
        // The remote is reached only when there is something to fetch, upload or publish: a
        // build that changed nothing does not even set up a client.
        let remote = if self.config.storage.is_some()
            && (!unresolved.is_empty() || unpublished || cache.has_pending())
        {
            self.open_remote()
        } else {
            None
        };
        let fetched = match &remote {
            Some(remote) if remote.is_up() => {
                let wanted: Vec<CacheKey> = unresolved
                    .iter()
                    .filter(|(key, _)| !self.force.contains(key))
                    .flat_map(|(_, chain)| chain.iter())
                    .filter(|(_, request)| request.kind.is_model())
                    .map(|(key, _)| *key)
                    .collect();
                let fetched = cache.fetch_remote(remote, &wanted)?;
                if !fetched.is_empty() {
                    tracing::info!(
                        "imagegen: copied {} image{} from `{}`",
                        fetched.len(),
                        plural(fetched.len()),
                        remote.label()
                    );
                }
                fetched
            }
            _ => BTreeMap::new(),
        };
        // The jobs to generate, and the directive key each one answers for.
        let mut missing: Vec<Chain> = Vec::new();
        let mut missing_keys: Vec<CacheKey> = Vec::new();
        'unresolved: for (key, chain) in unresolved {
            for (link_key, request) in chain {
                if let Some(entry) = fetched.get(link_key) {
                    let outcome = self.ready(&cache, Tier::Committed, entry.clone(), request);
                    outcomes.insert(key, outcome);
                    continue 'unresolved;
                }
            }
            if self.config.offline {
                let local: Chain = chain
                    .iter()
                    .filter(|(_, r)| !r.kind.is_model())
                    .cloned()
                    .collect();
                if local.is_empty() {
                    outcomes.insert(
                        key,
                        Outcome::Failed(format!(
                            "the image for \"{}\" is not in the cache and `offline = true`; build once with the `{}` profile's key set, or commit the cache from a build that has it",
                            prompt_start(&chain[0].1.prompt),
                            chain[0].1.profile
                        )),
                    );
                    continue;
                }
                missing.push(local);
            } else {
                missing.push(chain.clone());
            }
            missing_keys.push(key);
        }
        if let Some(remote) = &remote
            && remote.can_write()
            && let Some(done) = remote.degrade(cache.upload_pending(remote))
            && done > 0
        {
            tracing::info!(
                "imagegen: uploaded {done} image{} an earlier build could not to `{}`",
                plural(done),
                remote.label()
            );
        }
        cache.close_index();
        self.check_lifecycles(&mut missing, &mut missing_keys, &mut outcomes);
        self.apply_budget(&mut missing, &mut missing_keys, &mut outcomes, &requests);
        let looked_up = Instant::now();

        let n_reused = outcomes
            .values()
            .filter(|o| matches!(o, Outcome::Ready { .. }))
            .count();
        let mut summary = Summary {
            failed: outcomes.len() - n_reused,
            ..Summary::default()
        };
        {
            let sleep = |wait| std::thread::sleep(wait);
            let var = |name: &str| std::env::var(name).ok();
            let secrets = crate::outside::Secrets::of_book(self.config.key_vars(), &var);
            let env = provider::Env {
                config: self.config,
                root: &self.ctx.root,
                sleep: &sleep,
                var: &var,
                secrets: &secrets,
            };
            let mut progress = Progress::start(missing.len(), self.config.max_concurrency);
            let single = crate::cache::SingleFlight::new(&cache_root, self.flight_wait());
            let forced = |key: &CacheKey| self.force.contains(key);
            let flight = crate::generate::Flight {
                single: &single,
                forced: &forced,
            };
            crate::generate::run(
                &missing,
                self.config.max_concurrency,
                &env,
                Some(&flight),
                &mut progress,
                |i, result| {
                    let key = missing_keys[i];
                    let outcome = match result {
                        Ok(Got::Found(request, link_key, entry)) => {
                            // Another build of the book stored it while this one waited.
                            let tier = tier_of(request);
                            cache.note_changed(tier, link_key);
                            self.ready(&cache, tier, entry, request)
                        }
                        Ok(Got::Made(made)) => {
                            let tier = tier_of(made.request);
                            let mut stored = cache
                                .store(tier, made.key, made.request, &made.master)
                                .and_then(|entry| {
                                    if self.force.contains(&key) {
                                        cache.retire_others(tier, made.key, &entry)?;
                                    }
                                    Ok(entry)
                                });
                            let mut earlier = None;
                            if let (Ok(entry), Some(remote), Tier::Committed) =
                                (&stored, &remote, tier)
                                && self.upload(&cache, remote, entry)
                            {
                                if self.force.contains(&key) {
                                    if let Err(e) = cache.retire_remote(remote, made.key, entry) {
                                        tracing::warn!(
                                            "imagegen: {e}; other machines keep the old image of {:?} until its record is deleted from the remote",
                                            prompt_start(&made.request.prompt)
                                        );
                                    }
                                } else if let Ok(found) = cache.fetch_remote(remote, &[made.key])
                                    && let Some(winner) = found.get(&made.key)
                                    && winner.record != entry.record
                                {
                                    // Another machine made this image first (two CI jobs at
                                    // once): its image wins here too, as on every machine.
                                    earlier = Some(winner.clone());
                                }
                            }
                            if let Some(winner) = earlier {
                                stored = Ok(winner);
                            }
                            match stored {
                                Ok(entry) => {
                                    summary.add(made.request, &made.master);
                                    tracing::debug!(
                                        "generated {:?} with `{}` in {:.1?}",
                                        made.key,
                                        made.request.profile,
                                        made.master.elapsed
                                    );
                                    self.ready(&cache, tier, entry, made.request)
                                }
                                Err(e) => Outcome::Failed(format!("{e}")),
                            }
                        }
                        Err(failure) => {
                            summary.failed += 1;
                            Outcome::Failed(failure.message)
                        }
                    };
                    outcomes.insert(key, outcome);
                },
            );
        }

        let derive_started = Instant::now();
        summary.derived = self.derive_missing(&mut cache, &mut outcomes);
        summary.derive_time = derive_started.elapsed();
        if let Some(remote) = &remote {
            self.publish(&mut cache, remote, &outcomes, &published);
        }

        let mut contents = Vec::new();
        let mut refs = BTreeMap::new();
        for (page, planned) in pages.iter().zip(&requests) {
            let mut replacements = Vec::new();
            let mut keys = Vec::new();
            let page_path = page.chapter.path.or(page.chapter.source_path).unwrap_or("");
            let mut used: Vec<&Manifest> = Vec::new();
            for problem in &page.problems {
                failures.push(Located {
                    file: page.file.clone(),
                    line: problem.line,
                    message: problem.message.clone(),
                });
                replacements.push(Replacement {
                    span: problem.span.clone(),
                    text: self.error_figure(&page.file, problem.line, &problem.message),
                    top_level: problem.top_level,
                });
            }
            for (directive, planned) in page.directives.iter().zip(planned) {
                let result = match planned {
                    Ok(key) => {
                        keys.push(key.to_hex());
                        match &outcomes[key] {
                            Outcome::Ready {
                                entry,
                                manifest: Some(manifest),
                                ..
                            } => Ok((entry, manifest)),
                            Outcome::Ready { .. } => {
                                Err("the image's web files were not made".to_owned())
                            }
                            Outcome::Failed(message) => Err(message.clone()),
                        }
                    }
                    Err(message) => Err(message.clone()),
                };
                let text = match result {
                    Ok((entry, manifest)) => {
                        used.push(manifest);
                        self.figure(directive, entry, page_path, manifest)
                    }
                    Err(message) => {
                        failures.push(Located {
                            file: page.file.clone(),
                            line: directive.line,
                            message: message.clone(),
                        });
                        self.error_figure(&page.file, directive.line, &message)
                    }
                };
                replacements.push(Replacement {
                    span: directive.span.clone(),
                    text,
                    top_level: directive.top_level,
                });
            }
            if let Err(e) = self.mirror(page_path, &used) {
                failures.push(Located {
                    file: page.file.clone(),
                    line: 1,
                    message: format!("cannot copy the chapter's images beside it: {e}"),
                });
            }
            keys.sort();
            keys.dedup();
            refs.insert(page.file.clone(), keys);
            contents.push((
                page.chapter.ordinal,
                rewrite::splice(page.chapter.content, replacements),
            ));
        }
        let spliced = Instant::now();
        cache.finish(refs)?;
        tracing::debug!(
            "parse {:.2?}, plan and look up {:.2?}, generate and splice {:.2?}, index {:.2?}",
            parsed.duration_since(parse_started),
            looked_up.duration_since(parsed),
            spliced.duration_since(looked_up),
            spliced.elapsed()
        );

        summary.report(n_reused, started.elapsed());
        failures.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        if !failures.is_empty() {
            match self.config.on_error {
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

    /// Takes out of the generation queue every image whose chain names a retired model (it
    /// fails before any request, saying what replaces the model), and warns once per build about
    /// each deprecated model the queue will call.
    fn check_lifecycles(
        &self,
        missing: &mut Vec<Chain>,
        missing_keys: &mut Vec<CacheKey>,
        outcomes: &mut HashMap<CacheKey, Outcome>,
    ) {
        let mut warned: BTreeSet<String> = BTreeSet::new();
        let mut kept = Vec::with_capacity(missing.len());
        let mut kept_keys = Vec::with_capacity(missing.len());
        for (chain, key) in missing.drain(..).zip(missing_keys.drain(..)) {
            if let Some(message) = plan::retired(&chain, self.config, self.today) {
                outcomes.insert(key, Outcome::Failed(message));
                continue;
            }
            plan::warn_deprecations(&chain, self.config, self.today, &mut warned);
            kept.push(chain);
            kept_keys.push(key);
        }
        *missing = kept;
        *missing_keys = kept_keys;
    }

    /// The longest a build waits for another build of the book that generates the same image:
    /// as long as that build may take for it, every retry included, and a minute more.
    fn flight_wait(&self) -> Duration {
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

    /// The base URL figures point at, when the remote cache serves the web files.
    fn public_url(&self) -> Option<&str> {
        self.config.storage.as_ref()?.public_url.as_deref()
    }

    /// With a `public-url`, makes sure the remote holds the web files of every figure: uploads
    /// them when this build may write, or checks they are there when it may not. Each
    /// derivation is checked once; the index remembers it.
    fn publish(
        &self,
        cache: &mut Cache,
        remote: &Remote,
        outcomes: &HashMap<CacheKey, Outcome>,
        published: &BTreeSet<String>,
    ) {
        if self.public_url().is_none() {
            return;
        }
        let mut todo: BTreeMap<&str, &Manifest> = BTreeMap::new();
        for outcome in outcomes.values() {
            if let Outcome::Ready {
                derivation,
                manifest: Some(manifest),
                ..
            } = outcome
                && !published.contains(derivation)
            {
                todo.insert(derivation, manifest);
            }
        }
        if todo.is_empty() {
            return;
        }
        if !remote.is_up() {
            tracing::warn!(
                "imagegen: {} figure{} point at `public-url` files this build could not upload or check; they may show no image until a build reaches `{}`",
                todo.len(),
                plural(todo.len()),
                remote.label()
            );
            return;
        }
        let files: BTreeSet<&str> = todo
            .values()
            .flat_map(|m| &m.files)
            .map(|f| f.name.as_str())
            .collect();
        let dir = self.assets_dir();
        let published = if remote.can_write() {
            let mut objects = Vec::new();
            for name in &files {
                match crate::files::read_regular(&dir.join(name), ASSET_CAP) {
                    Ok(bytes) => objects.push(crate::storage::Object {
                        path: crate::storage::paths::asset(name),
                        content_type: crate::vocab::media_type_of(name),
                        bytes,
                    }),
                    Err(e) => {
                        tracing::warn!("{e}");
                        return;
                    }
                }
            }
            remote.degrade(remote.upload(&objects)).is_some()
        } else {
            let paths: Vec<String> = files
                .iter()
                .map(|name| crate::storage::paths::asset(name))
                .collect();
            match remote.degrade(remote.exists(&paths)) {
                Some(present) => {
                    let absent = present.iter().filter(|p| !**p).count();
                    if absent > 0 {
                        tracing::warn!(
                            "imagegen: {absent} web file{} of this book's figures {} not in `{}` yet, so those figures show no image; a build with write access (or `mdbook-imagegen push`) uploads them",
                            plural(absent),
                            if absent == 1 { "is" } else { "are" },
                            remote.label()
                        );
                    }
                    absent == 0
                }
                None => false,
            }
        };
        if published {
            for (derivation, manifest) in todo {
                cache.record_published(remote.label(), derivation, manifest.clone());
            }
        }
    }

    /// Connects to the shared remote cache, when the book has one. A store that cannot be
    /// set up (credentials missing from the environment, a share not mounted) gives one warning
    /// and a build without it.
    fn open_remote(&self) -> Option<Remote> {
        let storage = self.config.storage.as_ref()?;
        let var = |name: &str| std::env::var(name).ok();
        match Remote::open(storage, &self.ctx.root, &var) {
            Ok(remote) => Some(remote),
            Err(e) => {
                tracing::warn!("imagegen: {e}; this build goes on without the remote cache");
                None
            }
        }
    }

    /// Uploads a new image to the remote; until that succeeds, the journal keeps it for the
    /// next build.
    /// Returns whether it is in the remote now.
    fn upload(&self, cache: &Cache, remote: &Remote, entry: &Entry) -> bool {
        if self
            .config
            .storage
            .as_ref()
            .is_none_or(|s| s.mode != Mode::ReadWrite)
        {
            return false;
        }
        if let Err(e) = cache.mark_pending(entry) {
            tracing::warn!("{e}");
        }
        remote.can_write() && remote.degrade(cache.upload_entry(remote, entry)).is_some()
    }

    /// Keeps the generations that fit the budget, in book order; the others fail with the
    /// reason, and so follow `on-error`.
    fn apply_budget(
        &self,
        missing: &mut Vec<Chain>,
        missing_keys: &mut Vec<CacheKey>,
        outcomes: &mut HashMap<CacheKey, Outcome>,
        requests: &[Vec<Result<CacheKey, String>>],
    ) {
        if self.config.max_images_per_build.is_none() && self.config.max_cost_per_build.is_none() {
            return;
        }
        let mut first_use: HashMap<CacheKey, usize> = HashMap::new();
        for key in requests.iter().flatten().flatten() {
            let next = first_use.len();
            first_use.entry(*key).or_insert(next);
        }
        let mut order: Vec<usize> = (0..missing.len()).collect();
        order.sort_by_key(|&i| {
            first_use
                .get(&missing_keys[i])
                .copied()
                .unwrap_or(usize::MAX)
        });
        let ordered: Vec<&Chain> = order.iter().map(|&i| &missing[i]).collect();
        let verdicts = budget::apply(&ordered, self.config);
        let mut kept = (Vec::new(), Vec::new());
        let mut skipped = 0;
        for (&i, verdict) in order.iter().zip(verdicts) {
            match verdict {
                None => {
                    kept.0.push(missing[i].clone());
                    kept.1.push(missing_keys[i]);
                }
                Some(reason) => {
                    skipped += 1;
                    outcomes.insert(missing_keys[i], Outcome::Failed(reason));
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(
                "imagegen: stopped at the build's budget; {skipped} image{} not generated",
                if skipped == 1 { "" } else { "s" }
            );
        }
        (*missing, *missing_keys) = kept;
    }

    /// A cached master, with its web files when the index knows them and they are all in the
    /// assets directory.
    fn ready(&self, cache: &Cache, tier: Tier, entry: Entry, request: &Request) -> Outcome {
        let origin = (request.kind.as_str(), request.model.clone());
        let by_model = request.kind.is_model();
        let frame = derive::frame(
            (entry.width, entry.height),
            (request.size.width, request.size.height),
        );
        let derivation = derive::derivation_id(
            &entry.master,
            &derive::Origin {
                provider: origin.0,
                model: &origin.1,
                by_model: by_model,
            },
            frame,
            &self.config.output,
        );
        let dir = self.assets_dir();
        let manifest = cache.manifest(&derivation).filter(|manifest| {
            manifest
                .files
                .iter()
                .all(|file| crate::files::regular_len(&dir.join(&file.name)) == Some(file.bytes))
        });
        Outcome::Ready {
            entry,
            tier,
            origin,
            by_model,
            frame,
            derivation,
            manifest,
        }
    }

    /// Makes the web files of every ready master that lacks them, spread over all cores.
    /// Returns how many masters were derived.
    fn derive_missing(
        &self,
        cache: &mut Cache,
        outcomes: &mut HashMap<CacheKey, Outcome>,
    ) -> usize {
        struct Job {
            master_path: PathBuf,
            hash: String,
            origin: (&'static str, String),
            by_model: bool,
            frame: Option<(u32, u32)>,
            /// The master's size, for the memory it takes decoded.
            pixels: (u32, u32),
            /// Where the qualities of a perceptual target are kept: name and path.
            tuned: Option<(String, PathBuf)>,
        }
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        for outcome in outcomes.values() {
            if let Outcome::Ready {
                entry,
                tier,
                origin,
                by_model,
                frame,
                derivation,
                manifest: None,
            } = outcome
            {
                jobs.entry(derivation.clone()).or_insert_with(|| Job {
                    master_path: cache.master_path(*tier, entry),
                    hash: entry.master.clone(),
                    origin: origin.clone(),
                    by_model: *by_model,
                    frame: *frame,
                    pixels: (entry.width, entry.height),
                    tuned: derive::tuned_name(&entry.master, &self.config.output)
                        .map(|name| (name.clone(), cache.tuned_path(&name))),
                });
            }
        }
        if jobs.is_empty() {
            return 0;
        }
        let dir = self.assets_dir();
        let base = self.assets_base();
        let output = &self.config.output;
        let cache_dir = &self.config.cache_dir;
        type Made = (
            String,
            Option<String>,
            Result<derive::Derived, String>,
            BTreeMap<String, u8>,
        );
        let derive_job = |(derivation, job): (String, Job)| -> Made {
            // Waits while other decoded images take the memory budget (see `memory`).
            let _memory =
                crate::memory::reserve(crate::memory::decode_cost(job.pixels.0, job.pixels.1));
            let known: BTreeMap<String, u8> = job
                .tuned
                .as_ref()
                .and_then(|(_, path)| crate::files::read_regular(path, TUNED_CAP).ok())
                .and_then(|text| serde_json::from_slice(&text).ok())
                .unwrap_or_default();
            let result = derive_one(&job.master_path, cache_dir, &job.hash, |bytes| {
                let source = derive::Source {
                    bytes,
                    hash: &job.hash,
                    origin: derive::Origin {
                        provider: job.origin.0,
                        model: &job.origin.1,
                        by_model: job.by_model,
                    },
                    frame: job.frame,
                };
                let derived = derive::derive(&source, output, &known)?;
                for (name, bytes) in &derived.files {
                    let path = dir.join(name);
                    if crate::files::regular_len(&path) == Some(bytes.len() as u64) {
                        continue;
                    }
                    write_asset(&base, &dir, &path, bytes)
                        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
                }
                Ok(derived)
            });
            (derivation, job.tuned.map(|(name, _)| name), result, known)
        };
        let results = on_workers(jobs.into_iter().collect(), derive_job);
        let mut made: HashMap<String, Result<Manifest, String>> = HashMap::new();
        for (derivation, tuned_name, result, known) in results {
            let result = result.map(|derived| {
                if !derived.tuned.is_empty()
                    && derived.tuned != known
                    && let Some(name) = tuned_name
                    && let Err(e) = cache.store_tuned(&name, &derived.tuned)
                {
                    tracing::warn!("{e}");
                }
                cache.record_manifest(derivation.clone(), derived.manifest.clone());
                derived.manifest
            });
            made.insert(derivation, result);
        }
        let count = made.values().filter(|r| r.is_ok()).count();
        for outcome in outcomes.values_mut() {
            if let Outcome::Ready {
                derivation,
                manifest: manifest @ None,
                ..
            } = outcome
            {
                match &made[derivation.as_str()] {
                    Ok(made) => *manifest = Some(made.clone()),
                    Err(message) => *outcome = Outcome::Failed(message.clone()),
                }
            }
        }
        count
    }

    /// Where web files are written: the book's source directory, or, when figures point at a
    /// `public-url`, a local staging directory they are uploaded from.
    fn assets_dir(&self) -> PathBuf {
        if self.public_url().is_some() {
            return self
                .ctx
                .root
                .join(&self.config.cache_dir)
                .join("local")
                .join("public");
        }
        self.ctx
            .root
            .join(self.ctx.src)
            .join(&self.config.assets_dir)
    }

    /// The directory web files must stay inside (never written through a link below it): the
    /// book's source directory, or the cache for the staging directory of a `public-url`.
    fn assets_base(&self) -> PathBuf {
        if self.public_url().is_some() {
            self.ctx.root.join(&self.config.cache_dir)
        } else {
            self.ctx.root.join(self.ctx.src)
        }
    }

    /// Copies the web files a chapter in a subdirectory uses into an assets directory beside
    /// it. The HTML renderer shows a chapter's figures on its own page, in `print.html` and, for
    /// the first chapter, in `index.html`; mdBook rewrites `src` for the last two but not
    /// `srcset`. With a copy beside every chapter and one at the root, the same relative URL
    /// works on all three pages.
    fn mirror(&self, page_path: &str, used: &[&Manifest]) -> std::io::Result<()> {
        if self.ctx.renderer != "html" || used.is_empty() || self.public_url().is_some() {
            return Ok(());
        }
        let Some(chapter_dir) = Path::new(page_path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(());
        };
        let source = self.assets_dir();
        let base = self.ctx.root.join(self.ctx.src);
        // A chapter reached through `..` in SUMMARY.md may lie outside the source directory:
        // nothing is written there.
        let dir = crate::files::join_inside(&base, chapter_dir)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "the chapter `{page_path}` lies outside `{}`; move it inside to show images in it",
                        self.ctx.src
                    ),
                )
            })?
            .join(&self.config.assets_dir);
        for file in used.iter().flat_map(|m| &m.files) {
            if file.role == derive::Role::Thumbnail {
                continue;
            }
            let path = dir.join(&file.name);
            if crate::files::regular_len(&path) == Some(file.bytes) {
                continue;
            }
            let bytes = crate::files::read_regular(&source.join(&file.name), ASSET_CAP)?;
            write_asset(&base, &dir, &path, &bytes)?;
        }
        Ok(())
    }

    fn figure(
        &self,
        directive: &Directive,
        entry: &Entry,
        page_path: &str,
        manifest: &Manifest,
    ) -> String {
        let html = self.ctx.renderer == "html";
        // HTML pages find the files beside them (see `mirror`); other renderers climb to the
        // root copy.
        let public = self.public_url();
        let url = |name: &str| {
            if let Some(public) = public {
                format!("{public}/{}", crate::storage::paths::asset(name))
            } else if html {
                rewrite::asset_url("", &self.config.assets_dir, name)
            } else {
                rewrite::asset_url(page_path, &self.config.assets_dir, name)
            }
        };
        let attrs = &directive.attrs;
        let derived;
        let alt = match &attrs.alt {
            Some(alt) => alt.as_str(),
            None => {
                derived = figure::derive_alt(&directive.prompt);
                &derived
            }
        };
        let sizes = match attrs.width {
            Some(width) => figure::sizes_for_width(width),
            None => self.config.output.sizes.clone(),
        };
        let sources = manifest
            .sources()
            .into_iter()
            .map(|(media_type, files)| figure::Source {
                media_type,
                candidates: files.iter().map(|f| (url(&f.name), f.width)).collect(),
            })
            .collect();
        let mut fallbacks: Vec<(String, u32)> = manifest
            .fallbacks()
            .iter()
            .map(|f| (url(&f.name), f.width))
            .collect();
        if !html {
            fallbacks.drain(..fallbacks.len().saturating_sub(1));
        }
        let (width, height) = manifest
            .main_fallback()
            .map_or((entry.width, entry.height), |f| (f.width, f.height));
        let figure = Figure {
            sources,
            fallbacks,
            sizes: &sizes,
            alt,
            caption: attrs.caption.as_deref(),
            width,
            height,
            display_width: attrs.width,
            class: attrs.class.as_deref(),
            id: attrs.id.as_deref(),
        };
        if html {
            figure::html(&figure)
        } else {
            figure::markdown(&figure)
        }
    }

    fn error_figure(&self, file: &str, line: usize, message: &str) -> String {
        let location = format!("{file}:{line}");
        if self.ctx.renderer == "html" {
            figure::error_html(&location, message)
        } else {
            figure::error_markdown(&location, message)
        }
    }

    /// The chapter's file relative to the book root, for messages.
    fn chapter_file(&self, chapter: &Chapter<'_>) -> String {
        let relative = chapter.source_path.or(chapter.path).unwrap_or("(untitled)");
        Path::new(self.ctx.src)
            .join(relative)
            .to_string_lossy()
            .replace('\\', "/")
    }
}

/// Removes every directive from a chapter, for the `test` renderer.
fn strip(page: &Page<'_>) -> (usize, String) {
    let spans = page
        .directives
        .iter()
        .map(|d| (d.span.clone(), d.top_level))
        .chain(page.problems.iter().map(|p| (p.span.clone(), p.top_level)));
    let replacements = spans
        .map(|(span, top_level)| Replacement {
            span,
            text: String::new(),
            top_level,
        })
        .collect();
    (
        page.chapter.ordinal,
        rewrite::splice(page.chapter.content, replacements),
    )
}

/// Runs `work` on every item, one plain thread per core pulling from one queue, and returns the
/// results in no set order. Plain threads, not rayon's: a worker may wait for the memory
/// budget, and a rayon thread waiting could hold up the very work that frees it.
fn on_workers<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(items.len())
        .max(1);
    let queue = std::sync::Mutex::new(items);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let item = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(item) = item else { break };
                    let result = work(item);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Reads a master, checks it against its hash, and derives from it; every failure names the
/// master and says what to do.
fn derive_one(
    master_path: &Path,
    cache_dir: &Path,
    hash: &str,
    derive: impl FnOnce(&[u8]) -> std::result::Result<derive::Derived, String>,
) -> std::result::Result<derive::Derived, String> {
    let bytes = crate::files::read_regular(master_path, provider::MAX_MASTER_BYTES as u64)
        .map_err(|e| {
            format!(
                "cannot read the cached master `{}`: {e}",
                master_path.display()
            )
        })?;
    if blake3::hash(&bytes).to_hex().as_str() != hash {
        return Err(format!(
            "the cached master `{}` is damaged; delete it and its record in `{}` to generate the image again",
            master_path.display(),
            cache_dir.display()
        ));
    }
    derive(&bytes).map_err(|e| {
        format!(
            "cannot make web images from the cached master `{}`: {e}; delete it and its record in `{}` to generate the image again",
            master_path.display(),
            cache_dir.display()
        )
    })
}

fn tier_of(request: &Request) -> Tier {
    if request.kind.is_model() {
        Tier::Committed
    } else {
        Tier::Local
    }
}

/// The largest tuned-qualities file read.
const TUNED_CAP: u64 = 64 << 10;

/// The largest web file read back (to copy or upload it).
const ASSET_CAP: u64 = crate::provider::MAX_MASTER_BYTES as u64;

/// Writes a web file atomically, creating its directory (with a `.gitignore` that keeps the
/// derived files out of git) when missing; never through a link below `base`.
fn write_asset(base: &Path, dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if !dir.is_dir() {
        crate::files::write_atomic(
            base,
            dir,
            &dir.join(".gitignore"),
            b"# Written by mdbook-imagegen: these files are made from the masters in the cache.\n*\n",
        )?;
    }
    crate::files::write_atomic(base, dir, path, bytes)
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

/// What one build generated, for the closing summary.
#[derive(Default)]
struct Summary {
    generated: usize,
    /// Masters whose web files were made.
    derived: usize,
    derive_time: Duration,
    failed: usize,
    cost: f64,
    /// Images and cost by profile and model.
    by_profile: BTreeMap<(String, String), (usize, f64)>,
}

impl Summary {
    fn add(&mut self, request: &Request, master: &provider::Master) {
        self.generated += 1;
        self.cost += master.cost_usd;
        let entry = self
            .by_profile
            .entry((request.profile.clone(), request.model.clone()))
            .or_default();
        entry.0 += 1;
        entry.1 += master.cost_usd;
    }

    /// Prints the closing summary, unless nothing was generated or failed: a build that
    /// changed nothing says nothing.
    fn report(&self, reused: usize, elapsed: Duration) {
        if self.generated == 0 && self.failed == 0 {
            if self.derived > 0 {
                tracing::info!(
                    "imagegen: made web images for {} image{} in {:.1}s",
                    self.derived,
                    plural(self.derived),
                    self.derive_time.as_secs_f64()
                );
            }
            return;
        }
        let mut line = format!(
            "imagegen: generated {} image{}, reused {reused}",
            self.generated,
            plural(self.generated)
        );
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        line.push_str(&format!(
            " in {:.1}s; estimated cost ${:.2}",
            elapsed.as_secs_f64(),
            self.cost
        ));
        tracing::info!("{line}");
        if self.by_profile.len() > 1 {
            for ((profile, model), (count, cost)) in &self.by_profile {
                tracing::info!(
                    "  `{profile}` ({model}): {count} image{}, ${cost:.2}",
                    plural(*count)
                );
            }
        }
    }
}
