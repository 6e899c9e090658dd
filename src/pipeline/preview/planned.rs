//! What `plan` finds for each directive, typed: the data the team commands use. `plan --json`
//! prints a [`PlannedImage`](super::PlannedImage) made from it (see `row.rs`).

use crate::cache::Tier;
use crate::cache::key::CacheKey;
use crate::judgement::Mark;
use crate::pipeline::image::tier_of;
use crate::pipeline::jobs::Job;
use crate::pipeline::resolve::{Decision, Status};
use crate::vocab::ProviderKind;

/// What a build would do for one directive (or one malformed block).
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The chapter file as the user knows it (`src/guide/intro.md`), and the line.
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) status: Status,
    /// What is wrong (failures), or why the key is not known yet.
    pub(crate) message: Option<String>,
    /// The whole prompt as written (empty for a malformed block). The row shows its start.
    pub(crate) prompt: String,
    pub(crate) alt: Option<String>,
    pub(crate) caption: Option<String>,
    /// With `edit`: the instruction.
    pub(crate) edit: Option<String>,
    /// The reference images as written (`#id` for another directive's image).
    pub(crate) references: Vec<String>,
    /// What the build runs for it; `None` when it cannot plan (malformed, or a use error).
    pub(crate) job: Option<PlannedJob>,
    /// With `alt-text = "describe"`: whether its description is kept or still to be asked for.
    pub(crate) describe: Option<Describe>,
    /// Another machine generates its image now: who, and until when.
    pub(crate) claimed_by: Option<String>,
    /// With a judge, for a figure whose image a model makes: its judgement, or its price.
    pub(crate) judge: Option<PlannedJudge>,
}

/// With a judge, for a figure whose image a model makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PlannedJudge {
    /// Its image's judgement is kept: the score and the verdict under `min-score`.
    Kept { score: f64, mark: Mark },
    /// A build will ask the judge, at this estimated price (given on the first directive of an
    /// image only); with `mode = "gate"` it includes the worst case: every new attempt made
    /// and judged.
    Ask { cost: Option<f64> },
}

/// The job whose image the directive's figure shows, and what the directive keeps besides.
#[derive(Debug, Clone)]
pub(crate) struct PlannedJob {
    /// The first link's request: profile, kind, model, size.
    pub(crate) profile: String,
    pub(crate) kind: ProviderKind,
    pub(crate) model: String,
    /// `WIDTHxHEIGHT`, or `auto`.
    pub(crate) size: String,
    /// The part of the cache its own image lives in.
    pub(crate) tier: Tier,
    /// Its profile's key, then each fallback's: every image that may serve it. Never empty.
    pub(crate) chain: Vec<CacheKey>,
    /// Its own key waits for images a build makes first (the printed `key` is then absent).
    pub(crate) own_waits: bool,
    /// Every link of its other jobs (candidates not shown, the image an edit starts from).
    pub(crate) also: Vec<CacheKey>,
    pub(crate) variants: Option<Variants>,
    /// With `edit`: the key of the image the edit starts from.
    pub(crate) edits: Option<CacheKey>,
    /// The link that serves the figure, when one does or is about to.
    pub(crate) served: Option<Served>,
    /// Some job of the directive (its own or another) waits: `gc` must not run.
    pub(crate) provisional: bool,
    /// The estimated price of what a build makes for it, when known.
    pub(crate) cost: Option<f64>,
    /// The same with what a batch may make at the batch price (`batch submit`).
    pub(crate) batch_cost: Option<f64>,
    /// Its dark twin, when it asks for one and its figure has an image.
    pub(crate) dark: Option<PlannedDark>,
}

/// A directive's dark twin, as planned (its job is also among `also`).
#[derive(Debug, Clone)]
pub(crate) struct PlannedDark {
    /// What a build does for it (`error` when it cannot be made).
    pub(crate) status: Status,
    /// Its key, unless it waits for a light image a build makes first.
    pub(crate) key: Option<CacheKey>,
    /// The part of the cache it lives in.
    pub(crate) tier: Tier,
    /// Why it fails.
    pub(crate) message: Option<String>,
}

/// A directive's `variants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variants {
    /// Every candidate's key, in order; the first names the pick file. Never empty.
    pub(crate) candidates: Vec<CacheKey>,
    /// The candidate shown, from 1.
    pub(crate) picked: u32,
    /// The candidates' keys wait for images a build makes first: `pick` cannot record a choice.
    pub(crate) wait: bool,
}

/// With `alt-text = "describe"`, for a figure without an author's alt whose image a model makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Describe {
    /// Its description is kept (printed `cached`).
    Kept,
    /// A build will ask for it (printed `describe`), at this estimated price (given on the
    /// first directive of an image only: a description is priced once per image).
    Ask { cost: Option<f64> },
}

/// The link of a directive's chain that serves its figure.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) key: CacheKey,
    pub(crate) tier: Tier,
    pub(crate) by_model: bool,
}

impl Planned {
    /// A directive (or malformed block) as planned before its job is known: an error.
    pub(crate) fn new(file: &str, line: usize, prompt: &str, message: String) -> Planned {
        Planned {
            file: file.to_owned(),
            line,
            status: Status::Error,
            message: Some(message),
            prompt: prompt.to_owned(),
            alt: None,
            caption: None,
            edit: None,
            references: Vec::new(),
            job: None,
            describe: None,
            claimed_by: None,
            judge: None,
        }
    }

    /// The directive's own key, when known.
    pub(crate) fn key(&self) -> Option<CacheKey> {
        self.job.as_ref()?.key()
    }

    /// Whether some job of the directive waits for images a build makes first.
    pub(crate) fn provisional(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.provisional)
    }

    /// Its variants, with the tier its candidates live in.
    pub(crate) fn variants(&self) -> Option<(Tier, &Variants)> {
        let job = self.job.as_ref()?;
        Some((job.tier, job.variants.as_ref()?))
    }

    /// The link that serves its figure.
    pub(crate) fn served(&self) -> Option<&Served> {
        self.job.as_ref()?.served.as_ref()
    }
}

impl PlannedJob {
    /// The directive's own key, when known.
    pub(crate) fn key(&self) -> Option<CacheKey> {
        (!self.own_waits).then(|| self.chain[0])
    }

    /// Every key the directive uses or keeps, for `gc` and `list`.
    pub(crate) fn used(&self) -> impl Iterator<Item = CacheKey> + '_ {
        self.chain.iter().chain(&self.also).copied()
    }
}

impl Served {
    /// The link a decision serves a job's figure from.
    pub(super) fn of(job: &Job, decision: &Decision) -> Option<Served> {
        let link = match decision {
            Decision::Cached(link) | Decision::Remote(link) => *link,
            Decision::Generate(links) => *links.first()?,
            Decision::Fail(..) => return None,
        };
        let (key, request) = job.chain.get(link)?;
        Some(Served {
            key: *key,
            tier: tier_of(request),
            by_model: request.kind.is_model(),
        })
    }
}
