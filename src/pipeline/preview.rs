//! What a build would do for each directive, as `plan`, `regenerate --failed` and the review
//! page show it: the stages up to `resolve`, run without generating, downloading or writing
//! anything but the index, and their decision printed.

mod directives;
mod planned;
mod row;

use std::collections::BTreeSet;
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
    let mut planned = directives::planned(&book, &pages, &plan, &resolution);
    directives::plan_descriptions(&book, &mut planned)?;
    if let Some(remote) = &rounds.remote {
        directives::note_claims(remote, &mut planned);
    }
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
