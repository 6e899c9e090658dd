//! What a build would do for each directive, as `plan`, `regenerate --failed` and the review
//! page show it: the stages up to `resolve`, run without generating, downloading or writing
//! anything but the index, and their decision printed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::input::Opened;
use super::jobs::{self, Job, Plan};
use super::parse::{self, Page};
use super::resolve::{self, Decision, Resolution, Status};
use super::rounds::{self, Local, Mode};
use super::{Book, lookup, prompt_start};
use crate::cache::key::CacheKey;
use crate::cache::{Cache, Tier};
use crate::config::Config;
use crate::error::Result;
use crate::protocol;
use crate::request::RefImage;
use crate::storage::Remote;

/// What a build would do for one directive, as `mdbook-imagegen plan` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct PlannedImage {
    /// The chapter file, as the user knows it (`src/guide/intro.md`).
    pub file: String,
    /// The directive's line in that file.
    pub line: usize,
    /// What the build does for it.
    pub status: Status,
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
    /// What is wrong, for the statuses that are failures.
    pub message: Option<String>,
    /// With `alt-text = "describe"`, for a figure without an author's alt whose image a model
    /// makes: `cached` when its description is kept, `describe` when a build will ask for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe: Option<&'static str>,
    /// The estimated price in US dollars of describing it, for `describe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe_cost: Option<f64>,
    /// The reference images it is made from, as written (its style's first; `#id` for another
    /// directive's image).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// With `variants`: every candidate's cache key, in order (the shown one is `picked`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// With `variants`: the candidate shown, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picked: Option<u32>,
    /// With `edit`: the instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
    /// With `edit`: the cache key of the image the edit starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edits: Option<String>,
    /// The keys of the other images the directive keeps (candidates not shown, the image an
    /// edit starts from), for `gc`.
    #[serde(skip)]
    pub(crate) also: Vec<String>,
    /// The keys of the directive's profile and of each fallback, in hex: every image that
    /// may serve it.
    #[serde(skip)]
    pub(crate) chain: Vec<String>,
    /// The part of the cache the directive's own image lives in.
    #[serde(skip)]
    pub(crate) tier: Tier,
    /// The whole prompt as the directive writes it (for derived alt text).
    #[serde(skip)]
    pub(crate) full_prompt: String,
    /// The link of the chain that serves the figure (a fallback's, perhaps), when one does or
    /// is about to: its cache key, its tier, and whether a model makes it.
    #[serde(skip)]
    pub(crate) served: Option<Served>,
    /// Whether a job of the directive waits for images a build makes first (its key is not
    /// known yet): `gc` must not run.
    #[serde(skip)]
    pub(crate) provisional: bool,
    /// Whether its candidates' keys wait for such images: `pick` cannot record a choice yet.
    #[serde(skip)]
    pub(crate) candidates_wait: bool,
}

/// The link of a directive's chain that serves its figure.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) key: crate::cache::key::CacheKey,
    pub(crate) tier: Tier,
    pub(crate) by_model: bool,
}

impl Served {
    /// The link a decision serves a job's figure from.
    fn of(job: &jobs::Job, decision: &resolve::Decision) -> Option<Served> {
        let link = match decision {
            resolve::Decision::Cached(link) | resolve::Decision::Remote(link) => *link,
            resolve::Decision::Generate(links) => *links.first()?,
            resolve::Decision::Fail(..) => return None,
        };
        let (key, request) = job.chain.get(link)?;
        Some(Served {
            key: *key,
            tier: super::image::tier_of(request),
            by_model: request.kind.is_model(),
        })
    }
}

/// A book as `plan` sees it: its directives, and what the team commands need besides.
pub(crate) struct PlannedBook {
    pub(crate) rows: Vec<PlannedImage>,
    /// The book's root directory.
    pub(crate) root: PathBuf,
    /// The source directory, relative to the root.
    pub(crate) src: String,
    /// Where the build writes web files.
    pub(crate) assets_dir: PathBuf,
    pub(crate) config: Config,
}

/// Plans a book from mdBook's input: the build's rounds, with the remote asked (not
/// downloaded from) and nothing generated.
pub(crate) fn planned_book(input: &str) -> Result<PlannedBook> {
    let (context, json) = protocol::parse(input)?;
    let opened = Opened::read(&context, &json, false)?;
    let chapters = protocol::chapters(&json, opened.key);
    let book = opened.book();
    let mut pages = parse::pages(&chapters, &book, &mut Default::default());
    let mut cache = Cache::of_book(&book.ctx.root, book.config);
    let mut reader = super::references::Reader::new(&book.ctx.root);
    let mut plan = jobs::jobs(&mut pages, book.config, &mut reader, &|key| {
        cache.picked(key)
    });
    let rounds = rounds::run(
        &book,
        &pages,
        &mut plan,
        &mut cache,
        &mut Preview::default(),
    )?;
    cache.close_index();
    let resolution = Resolution {
        decisions: rounds.decisions,
        warnings: rounds.warned,
    };
    resolution.warn_deprecations();
    let mut rows = rows(&book, &pages, &plan, &resolution);
    plan_descriptions(&book, &mut rows)?;
    let assets_dir = book.assets_dir;
    let Opened { ctx, config, .. } = opened;
    Ok(PlannedBook {
        rows,
        root: ctx.root.clone(),
        src: ctx.src.to_owned(),
        assets_dir,
        config,
    })
}

/// `plan`'s [`Mode`]: the remote asked, nothing fetched, generated or written; each job's
/// image, as a reference for the directives planned after it, is the master's hash when
/// cached and a stand-in when a build would make or fetch it first.
#[derive(Default)]
struct Preview {
    none: BTreeSet<CacheKey>,
    references: Vec<std::result::Result<RefImage, String>>,
}

impl Mode for Preview {
    /// The keys the remote holds.
    type Held = BTreeSet<CacheKey>;

    fn holds(held: &Self::Held, key: &CacheKey) -> bool {
        held.contains(key)
    }

    fn force(&self) -> &BTreeSet<CacheKey> {
        &self.none
    }

    /// Sets the remote up when a round first needs it (asked again by the next round that
    /// needs it, if that failed); nothing is uploaded or published.
    fn remote(
        &mut self,
        book: &Book<'_>,
        cache: &mut Cache,
        jobs: &[Job],
        local: &Local,
        remote: &mut Option<Remote>,
    ) -> Result<Self::Held> {
        if remote.is_none() && lookup::needs_remote(jobs, local, &self.none) {
            *remote = book.remote_if(|| true);
        }
        Ok(lookup::check(cache, remote.as_ref(), jobs, local))
    }

    fn act(
        &mut self,
        _book: &Book<'_>,
        _cache: &mut Cache,
        _remote: Option<&Remote>,
        jobs: &[Job],
        resolution: &Resolution,
        local: Local,
        _held: Self::Held,
    ) -> Result<()> {
        for ((job, decision), found) in jobs.iter().zip(&resolution.decisions).zip(&local) {
            self.references.push(match (decision, found) {
                (Decision::Fail(_, message), _) => Err(message.clone()),
                (Decision::Cached(_), Some((_, ready))) => {
                    Ok(super::references::known(&ready.entry.master))
                }
                _ => Ok(super::references::stand_in(job.key)),
            });
        }
        Ok(())
    }

    fn reference(&self, job: usize) -> Option<std::result::Result<RefImage, String>> {
        self.references.get(job).cloned()
    }
}

/// What a row takes from the job whose image its figure shows, and that job's decision.
fn of_job(row: &mut PlannedImage, job: &jobs::Job, decision: &resolve::Decision) {
    let (key, request) = &job.chain[0];
    row.status = decision.status(job);
    row.message = match decision {
        resolve::Decision::Fail(_, message) => Some(message.clone()),
        _ => None,
    };
    row.profile = request.profile.clone();
    row.provider = request.kind.as_str().to_owned();
    row.model = request.model.clone();
    row.size = request.size.to_string();
    let provisional = super::references::is_provisional(request);
    row.key = (!provisional).then(|| key.to_hex());
    row.provisional = provisional;
    if provisional && row.message.is_none() {
        row.message = Some(
            "made after the images it references, which a build makes first; its key is known then"
                .into(),
        );
    }
    row.chain = job.chain.iter().map(|(k, _)| k.to_hex()).collect();
    row.tier = super::image::tier_of(request);
    row.served = Served::of(job, decision);
}

/// A row's references are filled in by `rows`; this adds what its variants and edit keep: the
/// keys of its other jobs (every link: a candidate a fallback made is kept like the one shown),
/// its candidates and the one picked, the image its edit starts from.
fn art_direction(row: &mut PlannedImage, plan: &Plan, at: jobs::At, edits: bool) {
    let others = &plan.also[at.0][at.1];
    let waits = |j: &usize| super::references::is_provisional(&plan.jobs[*j].chain[0].1);
    row.provisional |= others.iter().any(waits);
    row.also = others
        .iter()
        .flat_map(|&j| plan.jobs[j].chain.iter().map(|(k, _)| k.to_hex()))
        .collect();
    if let Some((candidates, chosen)) = plan.candidates.get(&at) {
        row.candidates_wait = candidates.iter().any(waits);
        row.candidates = candidates
            .iter()
            .map(|&j| plan.jobs[j].key.to_hex())
            .collect();
        row.picked = Some(chosen + 1);
    }
    if edits {
        row.edits = others.last().map(|&j| plan.jobs[j].key.to_hex());
    }
}

/// What a build makes for one directive that no earlier directive makes.
struct Made {
    /// Whether it makes anything.
    here: bool,
    /// Whether a model makes some of it.
    by_model: bool,
    /// The estimated price of what a model makes, when known.
    cost: Option<f64>,
}

impl Made {
    fn of(
        book: &Book<'_>,
        plan: &Plan,
        resolution: &Resolution,
        at: jobs::At,
        seen: &mut [bool],
    ) -> Made {
        let mut made = Made {
            here: false,
            by_model: false,
            cost: None,
        };
        for j in plan.jobs_of(at) {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            let Some(request) = resolution.decisions[j].first_request(&plan.jobs[j]) else {
                continue;
            };
            made.here = true;
            made.by_model |= request.kind.is_model();
            let price = book
                .config
                .profile(&request.profile)
                .ok()
                .filter(|_| request.kind.is_model())
                .and_then(|p| crate::price::estimate(request, p, &book.config.prices));
            if let Some(price) = price {
                made.cost = Some(made.cost.unwrap_or(0.0) + price);
            }
        }
        made
    }
}

/// With `alt-text = "describe"`: which figures without an author's alt have their description
/// kept, and which a build will describe, at what estimated price (the price of one
/// description in `[describe]`, else the describer model's token prices for a typical image:
/// 1,500 tokens in, 150 out). A description is priced once per image, like the image.
fn plan_descriptions(book: &Book<'_>, rows: &mut [PlannedImage]) -> Result<()> {
    const TYPICAL: (f64, f64) = (1500.0, 150.0);
    let (Some(with), Some(id)) = (&book.config.describe, book.config.describer_id()) else {
        return Ok(());
    };
    let estimate = with
        .price
        .or_else(|| crate::price::tokens_cost(&with.model, Some(TYPICAL.0), Some(TYPICAL.1)));
    let mut cache = Cache::of_book(&book.ctx.root, book.config);
    let mut priced = BTreeSet::new();
    for row in rows.iter_mut() {
        let Some(served) = row.served.clone().filter(|s| s.by_model) else {
            continue;
        };
        if row.alt.is_some() || row.status.is_failure() {
            continue;
        }
        let master = match row.status {
            Status::Cached => cache.lookup(served.tier, served.key)?.map(|e| e.master),
            _ => None,
        };
        let kept = master.is_some_and(|m| cache.description(&m, &id).is_some());
        row.describe = Some(if kept { "cached" } else { "describe" });
        if !kept && priced.insert(served.key) {
            row.describe_cost = estimate;
        }
    }
    Ok(())
}

/// One row per directive (and per malformed one), in book order. A directive that uses the
/// same image as an earlier one shows it as made once: `cached` where the first generates it.
fn rows(
    book: &Book<'_>,
    pages: &[Page<'_>],
    plan: &Plan,
    resolution: &Resolution,
) -> Vec<PlannedImage> {
    let mut rows = Vec::new();
    let mut seen = vec![false; plan.jobs.len()];
    for (p, (page, uses)) in pages.iter().zip(&plan.uses).enumerate() {
        let error = |line: usize, prompt: &str, message: String| PlannedImage {
            file: page.file.clone(),
            line,
            status: Status::Error,
            profile: String::new(),
            provider: String::new(),
            model: String::new(),
            size: String::new(),
            cost: None,
            prompt: prompt_start(prompt),
            alt: None,
            caption: None,
            key: None,
            message: Some(message),
            chain: Vec::new(),
            tier: Tier::Committed,
            full_prompt: prompt.to_owned(),
            served: None,
            provisional: false,
            candidates_wait: false,
            describe: None,
            describe_cost: None,
            references: Vec::new(),
            candidates: Vec::new(),
            picked: None,
            edit: None,
            edits: None,
            also: Vec::new(),
        };
        for problem in &page.problems {
            rows.push(error(problem.line, "", problem.message.clone()));
        }
        for (d, (directive, use_)) in page.directives.iter().zip(uses).enumerate() {
            let mut row = error(directive.line, &directive.prompt, String::new());
            row.alt.clone_from(&directive.attrs.alt);
            row.caption.clone_from(&directive.attrs.caption);
            row.references = crate::request::wanted(directive, book.config)
                .map(|w| w.iter().map(crate::request::Wanted::label).collect())
                .unwrap_or_default();
            row.edit.clone_from(&directive.attrs.edit);
            let job = match use_ {
                Ok(job) => *job,
                Err(message) => {
                    row.message = Some(message.clone());
                    rows.push(row);
                    continue;
                }
            };
            of_job(&mut row, &plan.jobs[job], &resolution.decisions[job]);
            art_direction(&mut row, plan, (p, d), directive.attrs.edit.is_some());
            let made = Made::of(book, plan, resolution, (p, d), &mut seen);
            // One made by an earlier directive shows as cached here; one whose image is cached
            // but whose other candidates (or the image its edit starts from) a build still
            // makes, as made.
            if row.status == Status::Generate && !made.here {
                row.status = Status::Cached;
            }
            if row.status == Status::Cached && made.here {
                row.status = if made.cost.is_some() || made.by_model {
                    Status::Generate
                } else {
                    Status::Draw
                };
            }
            let cost = made.cost;
            row.cost = cost;
            rows.push(row);
        }
    }
    rows
}
