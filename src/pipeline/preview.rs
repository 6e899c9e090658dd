//! What a build would do for each directive, as `plan`, `regenerate --failed` and the review
//! page show it: the stages up to `resolve`, run without generating, downloading or writing
//! anything but the index, and their decision printed.

mod directives;
mod planned;
mod row;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::input::Opened;
use super::jobs;
use super::lookup;
use super::parse;
use super::resolve::{Decision, Resolution, Status};
use super::rounds::{self, Asked, Decided, Mode};
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::config::Config;
use crate::error::Result;
use crate::protocol;
use crate::request::RefImage;
pub(crate) use planned::{Planned, Variants};

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
    /// The same through `batch submit`: what the providers' batch APIs take at their batch
    /// price (half), the rest at the synchronous one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_cost: Option<f64>,
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
    /// For an image to generate that another machine is generating now (it holds the claim
    /// in the remote cache): that machine and process, and when the claim expires. A build
    /// waits for its image rather than paying for it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// With a judge, for a figure whose image a model makes: `pass` or `review` when its
    /// judgement is kept (by `min-score`), `judge` when a build will ask for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// The score of its judgement, 0 to 1, when kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The estimated price in US dollars of judging it, for `judge` (with `gate`, the worst
    /// case of its new attempts included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_cost: Option<f64>,
    /// With a dark twin: what the build does for it (`cached`, `generate`, `draw`, …, or
    /// `error` when it cannot be made). Its price is in `cost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark: Option<Status>,
    /// The dark twin's cache key, in hex, once known (it covers the light image's master).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_key: Option<String>,
    /// Why the dark twin cannot be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_message: Option<String>,
}

/// A book as `plan` sees it: its directives, and what the team commands need besides.
pub(crate) struct PlannedBook {
    pub(crate) planned: Vec<Planned>,
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
    let mut preview = Preview::default();
    let mut rounds = rounds::run(&book, &pages, &mut plan, &mut cache, &mut preview)?;
    let judged = judged_as_kept(
        &book,
        &mut cache,
        &pages,
        &mut plan,
        &mut preview,
        &mut rounds,
    )?;
    super::dark::run(
        &book,
        &mut cache,
        &pages,
        &mut plan,
        &mut preview,
        &mut rounds,
    )?;
    cache.close_index();
    let resolution = Resolution {
        decisions: rounds.decisions,
        warnings: rounds.warned,
    };
    resolution.warn_deprecations();
    let mut planned = directives::planned(&book, &pages, &plan, &resolution);
    directives::plan_descriptions(&book, &mut planned)?;
    directives::plan_judgements(&book, &plan, &judged, &mut planned);
    if book
        .config
        .judge
        .as_ref()
        .is_some_and(|j| j.mode == crate::config::JudgeMode::Gate)
    {
        // Which new attempts such a figure keeps depends on judgements of images not here
        // yet: `gc` must wait for a build.
        for p in planned.iter_mut().filter(|p| p.status == Status::Remote) {
            if let Some(job) = p.job.as_mut() {
                job.provisional = true;
            }
        }
    }
    if let Some(remote) = &rounds.remote {
        directives::note_claims(remote, &mut planned);
    }
    directives::note_batches(&book.cache_root(), &mut planned);
    let assets_dir = book.assets_dir;
    let Opened { ctx, config, .. } = opened;
    Ok(PlannedBook {
        planned,
        root: ctx.root.clone(),
        src: ctx.src.to_owned(),
        assets_dir,
        config,
    })
}

/// With a judge, what a build would show as `plan` sees it: the judgements kept of the images
/// kept, by job; variants ranked and `gate`'s new attempts followed as far as the cache knows
/// them (a new attempt that is not made yet is priced, not followed).
fn judged_as_kept(
    book: &super::Book<'_>,
    cache: &mut Cache,
    pages: &[super::parse::Page<'_>],
    plan: &mut jobs::Plan,
    preview: &mut Preview,
    rounds: &mut rounds::Rounds,
) -> Result<BTreeMap<usize, crate::judgement::Record>> {
    let Some(id) = book.config.judge_id() else {
        return Ok(BTreeMap::new());
    };
    let kept = |cache: &mut Cache, preview: &mut Preview| {
        let mut by_job = BTreeMap::new();
        for (job, master) in preview.masters.iter().enumerate() {
            if let Some(record) = master
                .as_deref()
                .and_then(|m| cache.note::<crate::judgement::Record>(m, &id))
            {
                by_job.insert(job, record);
            }
        }
        by_job
    };
    let judged = kept(cache, preview);
    let score = |job: usize| judged.get(&job).map(|r| r.score);
    super::judge::rank(plan, pages, &score, &|key| cache.picked(key).is_some());
    let picks: BTreeSet<CacheKey> = (plan.candidates.values())
        .map(|(jobs, _)| plan.jobs[jobs[0]].key)
        .filter(|key| cache.picked(*key).is_some())
        .collect();
    let mut last = judged.clone();
    super::judge::gate(
        book,
        cache,
        pages,
        plan,
        preview,
        rounds,
        &|key| picks.contains(&key),
        &mut |cache, _, preview, _| {
            last = kept(cache, preview);
            last.clone()
        },
    )?;
    Ok(last)
}

/// `plan`'s [`Mode`]: the remote asked, nothing fetched, generated or written; each job's
/// image, as a reference for the directives planned after it, is the master's hash when
/// cached and a stand-in when a build would make or fetch it first.
#[derive(Default)]
struct Preview {
    none: BTreeSet<CacheKey>,
    references: Vec<std::result::Result<RefImage, String>>,
    /// Each job's master, when cached here.
    masters: Vec<Option<String>>,
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
    fn remote(&mut self, asked: Asked<'_, '_>) -> Result<Self::Held> {
        let (jobs, local) = (asked.jobs, asked.local);
        if asked.remote.is_none() && lookup::needs_remote(jobs, local, &self.none) {
            *asked.remote = asked.book.remote_if(|| true);
        }
        Ok(lookup::check(
            asked.cache,
            asked.remote.as_ref(),
            jobs,
            local,
        ))
    }

    fn act(&mut self, decided: Decided<'_, '_, Self::Held>) -> Result<()> {
        let decisions = &decided.resolution.decisions;
        for ((job, decision), found) in decided.jobs.iter().zip(decisions).zip(&decided.local) {
            self.masters.push(match (decision, found) {
                (Decision::Cached(_), Some((_, ready))) => Some(ready.entry.master.clone()),
                _ => None,
            });
            self.references.push(match (decision, found) {
                (Decision::Fail(_, message), _) => Err(message.clone()),
                (Decision::Cached(_), Some((_, ready))) => {
                    let mut master = super::references::known(&ready.entry.master);
                    let name = format!("master.{}", ready.entry.extension);
                    master.media_type = crate::vocab::media_type_of(&name);
                    Ok(master)
                }
                _ => Ok(super::references::stand_in(job.key)),
            });
        }
        Ok(())
    }

    fn reference(&self, job: usize) -> Option<std::result::Result<RefImage, String>> {
        self.references.get(job).cloned()
    }

    fn failed(&self, job: usize) -> bool {
        matches!(self.references.get(job), Some(Err(_)))
    }

    fn master_of(&self, _cache: &Cache, job: usize) -> Option<RefImage> {
        self.references.get(job)?.as_ref().ok().cloned()
    }
}
