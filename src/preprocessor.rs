//! One run of the preprocessor, phase by phase: find directives in every chapter, plan a job
//! for each, look the jobs up in the cache, generate what is missing (several at a time), make
//! sure each image's asset is in the book's source directory, then splice figures into the
//! chapters.
//!
//! This is the only module that knows about chapters and files at once; it attaches the
//! chapter file and line to every problem.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::{Cache, Entry, Tier};
use crate::config::{Config, OnError};
use crate::directive::{self, Directive};
use crate::error::{Error, Located, Result};
use crate::figure::{self, Figure};
use crate::plan::{self, CacheKey, Chain, Request};
use crate::progress::{Progress, plural};
use crate::protocol::{self, Chapter, Context};
use crate::provider;
use crate::rewrite::{self, Replacement};

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
        let key = protocol::items_key(&book)?;
        let contents = {
            let chapters = protocol::chapters(&book, key);
            let run = Run {
                ctx: &ctx,
                config: &config,
                markdown: directive::markdown_options(key == "sections"),
            };
            run.rewrite(&chapters)?
        };
        protocol::set_contents(&mut book, key, contents);
        serde_json::to_string(&book)
            .map_err(|e| Error::Input(format!("cannot encode the book: {e}")))
    }
}

/// One run's settings.
struct Run<'a> {
    ctx: &'a Context<'a>,
    config: &'a Config,
    markdown: mdbook_markdown::MarkdownOptions,
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
    Ready {
        entry: Entry,
        asset: String,
    },
    Failed(String),
    /// The index named a master that is no longer there.
    MasterMissing,
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
        let mut outcomes: HashMap<CacheKey, Outcome> = HashMap::new();
        // The jobs to generate, and the directive key each one answers for.
        let mut missing: Vec<Chain> = Vec::new();
        let mut missing_keys: Vec<CacheKey> = Vec::new();
        'jobs: for (key, chain) in &jobs {
            // An image made by a fallback profile serves the directive as well as its own,
            // except a placeholder: it only stands in until the directive's provider answers.
            for (link, (link_key, request)) in chain.iter().enumerate() {
                if link > 0 && !provider::is_committed(request.kind) {
                    continue;
                }
                let tier = tier_of(request);
                if let Some(entry) = cache.lookup(tier, *link_key)? {
                    match self.ensure_asset(&cache, tier, entry) {
                        // A master removed by hand (the index still names it) is made again.
                        Outcome::MasterMissing => {}
                        outcome => {
                            outcomes.insert(*key, outcome);
                            continue 'jobs;
                        }
                    }
                }
            }
            if self.config.offline {
                let local: Chain = chain
                    .iter()
                    .filter(|(_, r)| !provider::needs_network(r.kind))
                    .cloned()
                    .collect();
                if local.is_empty() {
                    outcomes.insert(
                        *key,
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
            missing_keys.push(*key);
        }
        cache.close_index();
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
            let env = provider::Env {
                config: self.config,
                root: &self.ctx.root,
                sleep: &sleep,
                var: &var,
            };
            let mut progress = Progress::start(missing.len(), self.config.max_concurrency);
            crate::generate::run(
                &missing,
                self.config.max_concurrency,
                &env,
                &mut progress,
                |i, result| {
                    let key = missing_keys[i];
                    let outcome = match result {
                        Ok(made) => {
                            let tier = tier_of(made.request);
                            match cache.store(tier, made.key, made.request, &made.master) {
                                Ok(entry) => {
                                    summary.add(made.request, &made.master);
                                    tracing::debug!(
                                        "generated {:?} with `{}` in {:.1?}",
                                        made.key,
                                        made.request.profile,
                                        made.master.elapsed
                                    );
                                    self.ensure_asset(&cache, tier, entry)
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

        let first_chapter = chapters
            .iter()
            .find(|c| c.path.is_some())
            .map(|c| c.ordinal);
        let mut contents = Vec::new();
        let mut refs = BTreeMap::new();
        for (page, planned) in pages.iter().zip(&requests) {
            let mut replacements = Vec::new();
            let mut keys = Vec::new();
            let url_base = self.url_base(&page.chapter, first_chapter);
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
                            Outcome::Ready { entry, asset, .. } => Ok((entry, asset)),
                            Outcome::Failed(message) => Err(message.clone()),
                            Outcome::MasterMissing => unreachable!("regenerated above"),
                        }
                    }
                    Err(message) => Err(message.clone()),
                };
                let text = match result {
                    Ok((entry, asset)) => self.figure(directive, entry, &url_base, asset),
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

    /// Copies an entry's master into the assets directory unless an identical file is there.
    fn ensure_asset(&self, cache: &Cache, tier: Tier, entry: Entry) -> Outcome {
        let asset = asset_name(&entry);
        let dir = self.assets_dir();
        let path = dir.join(&asset);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.bytes) {
            return Outcome::Ready { entry, asset };
        }
        let master_path = cache.master_path(tier, &entry);
        let bytes = match fs_err::read(&master_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::MasterMissing,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if blake3::hash(&bytes).to_hex().as_str() != entry.master {
            return Outcome::Failed(format!(
                "the cached master `{}` is damaged; delete it and its record in `{}` to generate the image again",
                master_path.display(),
                self.config.cache_dir.display()
            ));
        }
        match write_asset(&dir, &path, &bytes) {
            Ok(()) => Outcome::Ready { entry, asset },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn assets_dir(&self) -> PathBuf {
        self.ctx
            .root
            .join(self.ctx.src)
            .join(&self.config.assets_dir)
    }

    /// How a chapter's page reaches the assets: relative to the page, except for a nested first
    /// chapter, whose HTML mdBook also shows at the root as `index.html`.
    fn url_base(&self, chapter: &Chapter<'_>, first_chapter: Option<usize>) -> UrlBase {
        let path = chapter.path.or(chapter.source_path).unwrap_or("");
        let nested = path.contains(['/', '\\']);
        if nested && first_chapter == Some(chapter.ordinal) && self.ctx.renderer == "html" {
            match self.ctx.site_url {
                Some(site_url) => return UrlBase::Rooted(site_url.to_owned()),
                None => tracing::warn!(
                    "the first chapter `{path}` is in a subdirectory, and mdBook also shows it as `index.html`, where its images' relative paths do not resolve; set `output.html.site-url` in `book.toml` to fix that page"
                ),
            }
        }
        UrlBase::Relative(path.to_owned())
    }

    fn figure(&self, directive: &Directive, entry: &Entry, base: &UrlBase, asset: &str) -> String {
        let src = match base {
            UrlBase::Relative(chapter_path) => {
                rewrite::asset_url(chapter_path, &self.config.assets_dir, asset)
            }
            UrlBase::Rooted(site_url) => {
                rewrite::rooted_asset_url(site_url, &self.config.assets_dir, asset)
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
        let figure = Figure {
            src: &src,
            alt,
            caption: attrs.caption.as_deref(),
            width: entry.width,
            height: entry.height,
            display_width: attrs.width,
            class: attrs.class.as_deref(),
            id: attrs.id.as_deref(),
        };
        if self.ctx.renderer == "html" {
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

/// Where a page's image URLs start.
enum UrlBase {
    /// Relative to the chapter at this path.
    Relative(String),
    /// From `output.html.site-url`.
    Rooted(String),
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

/// An asset's file name: the start of its master's hash, so that it changes with the image.
fn asset_name(entry: &Entry) -> String {
    format!("{}.{}", &entry.master[..16], entry.extension)
}

fn tier_of(request: &Request) -> Tier {
    if provider::is_committed(request.kind) {
        Tier::Committed
    } else {
        Tier::Local
    }
}

/// Writes an asset atomically, creating its directory (with a `.gitignore` that keeps the
/// derived files out of git) when missing.
fn write_asset(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if !dir.is_dir() {
        fs_err::create_dir_all(dir)?;
        fs_err::write(
            dir.join(".gitignore"),
            "# Written by mdbook-imagegen: these files are made from the masters in the cache.\n*\n",
        )?;
    }
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The start of a prompt, for messages.
fn prompt_start(prompt: &str) -> String {
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
