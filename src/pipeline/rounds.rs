//! The rounds, one loop for the build and for `plan`: the first round takes every job planned
//! at once; while directives wait for the images they reference (or edit), the next round
//! plans those whose images are now known and runs on their jobs. Each round looks its jobs up
//! in the local cache and the remote, resolves them (the budget counting earlier rounds first),
//! and hands the decisions to a [`Mode`]: the build's (`make.rs`) generates the images, `plan`'s
//! (`preview.rs`) only says what a build would do.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::image::Ready;
use super::jobs::{Job, Plan};
use super::parse::Page;
use super::resolve::{self, Decision, Resolution};
use super::{Book, lookup};
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::error::Result;
use crate::request::{RefImage, Request};
use crate::storage::Remote;

/// Each job's image in the local cache (the link that serves it, and the image).
pub(crate) type Local = Vec<Option<(usize, Ready)>>;

/// What the rounds count once, whatever the mode.
#[derive(Default)]
pub(crate) struct Rounds {
    /// The remote, once a round set it up.
    pub(crate) remote: Option<Remote>,
    /// Every job's decision, in the order of `plan.jobs`.
    pub(crate) decisions: Vec<Decision>,
    /// The warnings about deprecated models, each once, in the order first given.
    pub(crate) warned: Vec<String>,
    /// The first request of each generation decided so far: the budget counts them first.
    spent: Vec<Request>,
}

/// What a round does besides looking up and resolving: make the images, or say what a build
/// would make and do none of it.
pub(crate) trait Mode {
    /// What the remote holds of a round's jobs, as the mode asked it.
    type Held;

    /// Whether the remote holds the image of `key`.
    fn holds(held: &Self::Held, key: &CacheKey) -> bool;

    /// The keys generated again even though they are cached (`regenerate`).
    fn force(&self) -> &BTreeSet<CacheKey>;

    /// What was found ahead of the round (the head start's lookups, for the first round).
    fn known(&mut self) -> HashMap<CacheKey, Option<(usize, Ready)>> {
        HashMap::new()
    }

    /// What the round did not use of [`Mode::known`], for a later round (a dark twin's).
    fn unused(&mut self, _known: HashMap<CacheKey, Option<(usize, Ready)>>) {}

    /// Before the round's lookups.
    fn open_round(&mut self, _cache: &mut Cache, _jobs: &[Job]) {}

    /// Asks the remote about the jobs missing here, setting it up when needed.
    fn remote(&mut self, asked: Asked<'_, '_>) -> Result<Self::Held>;

    /// After the round's lookups.
    fn lookups_done(&mut self, _cache: &mut Cache) {}

    /// Gives the round's warnings (those not given before).
    fn warn(&mut self, _resolution: &Resolution) {}

    /// Acts on the round's decisions.
    fn act(&mut self, decided: Decided<'_, '_, Self::Held>) -> Result<()>;

    /// Between rounds: gets ready to answer [`Mode::reference`] for the jobs `wanted` names.
    fn read_references(&mut self, _cache: &Cache, _wanted: &HashSet<usize>) {}

    /// A job's image as a reference for the directives planned after it: `None` while it is
    /// not known yet, the reason when it failed.
    fn reference(&self, job: usize) -> Option<std::result::Result<RefImage, String>>;

    /// Whether a job has no image: it failed, and its figure says why.
    fn failed(&self, job: usize) -> bool;

    /// A job's master as a reference, unread (its bytes are read only if a request sends it),
    /// once known.
    fn master_of(&self, cache: &Cache, job: usize) -> Option<RefImage>;
}

/// A round's jobs after the local lookups, handed to [`Mode::remote`].
pub(crate) struct Asked<'r, 'b> {
    pub(crate) book: &'r Book<'b>,
    pub(crate) cache: &'r mut Cache,
    pub(crate) jobs: &'r [Job],
    /// Each job's image in the local cache.
    pub(crate) local: &'r Local,
    /// The remote, set up by the mode when it needs it.
    pub(crate) remote: &'r mut Option<Remote>,
}

/// What a round settled, handed to [`Mode::act`].
pub(crate) struct Decided<'r, 'b, H> {
    pub(crate) book: &'r Book<'b>,
    pub(crate) cache: &'r mut Cache,
    pub(crate) jobs: &'r [Job],
    pub(crate) resolution: &'r Resolution,
    /// Each job's image in the local cache, as looked up.
    pub(crate) local: Local,
    pub(crate) remote: Option<&'r Remote>,
    /// What the remote holds of the jobs, as the mode asked it.
    pub(crate) held: H,
}

/// Runs the rounds: the first on every job, then one for each batch of directives that
/// [`Plan::advance`] plans (a round only when it planned new jobs).
pub(crate) fn run<M: Mode>(
    book: &Book<'_>,
    pages: &[Page<'_>],
    plan: &mut Plan,
    cache: &mut Cache,
    mode: &mut M,
) -> Result<Rounds> {
    let mut rounds = Rounds::default();
    round(book, cache, &plan.jobs, mode, &mut rounds)?;
    while plan.is_waiting() {
        let from = plan.jobs.len();
        mode.read_references(cache, &plan.referenced());
        let ready = |job: usize| mode.reference(job);
        if !plan.advance(pages, book.config, &|key| cache.picked(key), &ready) {
            plan.give_up();
            break;
        }
        if plan.jobs.len() > from {
            round(book, cache, &plan.jobs[from..], mode, &mut rounds)?;
        }
    }
    Ok(rounds)
}

/// One round on its jobs: the local cache, the remote, resolve, then the mode's action. Jobs
/// planned after the rounds (`gate`'s new attempts) get a round of their own, the budget
/// counting every earlier round first.
pub(crate) fn round<M: Mode>(
    book: &Book<'_>,
    cache: &mut Cache,
    jobs: &[Job],
    mode: &mut M,
    rounds: &mut Rounds,
) -> Result<()> {
    mode.open_round(cache, jobs);
    let mut known = mode.known();
    let local = lookup::local(book, cache, jobs, mode.force(), &mut known)?;
    mode.unused(known);
    let held = mode.remote(Asked {
        book,
        cache,
        jobs,
        local: &local,
        remote: &mut rounds.remote,
    })?;
    mode.lookups_done(cache);
    let facts = lookup::facts(jobs, &local, mode.force(), |key| M::holds(&held, key));
    let earlier: Vec<&Request> = rounds.spent.iter().collect();
    let mut resolution = resolve::resolve(jobs, &facts, book.config, book.today, &earlier);
    // A deprecated model is warned about once, whatever the round.
    resolution.warnings.retain(|w| !rounds.warned.contains(w));
    rounds.warned.extend(resolution.warnings.iter().cloned());
    mode.warn(&resolution);
    mode.act(Decided {
        book,
        cache,
        jobs,
        resolution: &resolution,
        local,
        remote: rounds.remote.as_ref(),
        held,
    })?;
    rounds.spent.extend(
        jobs.iter()
            .zip(&resolution.decisions)
            .filter_map(|(job, decision)| decision.first_request(job).cloned()),
    );
    rounds.decisions.extend(resolution.decisions);
    Ok(())
}
