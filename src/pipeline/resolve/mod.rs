//! Stage 3, resolve: the one place that decides what each job gets — the local cache's image,
//! the remote's, a provider's new one, or a failure (offline, over budget, a retired model).
//! Pure: what the cache and the remote hold comes in as [`Facts`], gathered by `lookup`.
//! Builds act on the decisions; `plan`, `regenerate --failed` and the review page print them.

mod budget;

use std::fmt;

use super::jobs::Job;
use crate::config::Config;
use crate::models::{self, Day};
use crate::request::{Chain, Request};

/// What becomes of a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Status {
    /// Its image is in the local cache.
    Cached,
    /// Its image is in the shared remote cache: downloaded, not generated.
    Remote,
    /// A provider generates it.
    Generate,
    /// A placeholder is drawn locally.
    Draw,
    /// Not generated: the build's budget is spent.
    OverBudget,
    /// Not cached, and the build may not call a provider (`offline = true`).
    Offline,
    /// Not cached, and its model is retired.
    Retired,
    /// The directive is malformed or names something the book does not define.
    Error,
    /// Not cached, and in a batch not collected yet (`batch collect`): a build does not
    /// generate it.
    InBatch,
}

impl Status {
    /// The name `plan` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Cached => "cached",
            Status::Remote => "remote",
            Status::Generate => "generate",
            Status::Draw => "draw",
            Status::OverBudget => "over-budget",
            Status::Offline => "offline",
            Status::Retired => "retired",
            Status::Error => "error",
            Status::InBatch => "in-batch",
        }
    }

    /// Whether the build gives the directive an error figure (or fails) instead of an image.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::OverBudget
                | Status::Offline
                | Status::Retired
                | Status::Error
                | Status::InBatch
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of one job before deciding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The link of the chain whose image the local cache holds, if any.
    pub(crate) local: Option<usize>,
    /// The link whose image the remote cache holds (a build has downloaded it by now).
    pub(crate) remote: Option<usize>,
}

/// What a job gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// The local cache's image of this link of the chain.
    Cached(usize),
    /// The remote cache's image of this link.
    Remote(usize),
    /// A new image, from the first of these links that answers.
    Generate(Vec<usize>),
    /// No image: why, and what to do.
    Fail(Status, String),
}

impl Decision {
    /// The status `plan` shows for it.
    pub(crate) fn status(&self, job: &Job) -> Status {
        match self {
            Decision::Cached(_) => Status::Cached,
            Decision::Remote(_) => Status::Remote,
            Decision::Generate(links) if job.chain[links[0]].1.kind.is_model() => Status::Generate,
            Decision::Generate(_) => Status::Draw,
            Decision::Fail(status, _) => *status,
        }
    }

    /// The request it generates first, if it generates.
    pub(crate) fn first_request<'j>(&self, job: &'j Job) -> Option<&'j Request> {
        match self {
            Decision::Generate(links) => Some(&job.chain[links[0]].1),
            _ => None,
        }
    }

    /// The links it generates from, as a chain.
    pub(crate) fn to_generate(&self, job: &Job) -> Option<Chain> {
        match self {
            Decision::Generate(links) => {
                Some(links.iter().map(|&l| job.chain[l].clone()).collect())
            }
            _ => None,
        }
    }
}

/// The decisions for every job, and the warnings the build gives once.
#[derive(Debug)]
pub(crate) struct Resolution {
    pub(crate) decisions: Vec<Decision>,
    /// About deprecated models a generation will call, each once.
    pub(crate) warnings: Vec<String>,
}

impl Resolution {
    /// Gives the warnings about deprecated models.
    pub(crate) fn warn_deprecations(&self) {
        for warning in &self.warnings {
            tracing::warn!("imagegen: {warning}");
        }
    }

    /// Gives the warnings a build gives: deprecated models, and a budget that stopped it.
    pub(crate) fn warn(&self) {
        self.warn_deprecations();
        let skipped = self
            .decisions
            .iter()
            .filter(|d| matches!(d, Decision::Fail(Status::OverBudget, _)))
            .count();
        if skipped > 0 {
            tracing::warn!(
                "imagegen: stopped at the build's budget; {skipped} image{} not generated",
                crate::progress::plural(skipped)
            );
        }
    }
}

/// Decides every job, in the order of their first use in the book (the budget is spent in that
/// order). In turn: an image in the local cache, then one in the remote; else a generation,
/// where `offline = true` keeps only the links that call no provider (a placeholder fallback is
/// drawn), a retired model fails before any request, and the budget stops the rest.
/// `earlier` are the requests earlier rounds of the build generate (see `plan::advance`): they
/// spend the budget first.
pub(crate) fn resolve(
    jobs: &[Job],
    facts: &[Facts],
    config: &Config,
    today: Day,
    earlier: &[&Request],
) -> Resolution {
    let mut warnings: Vec<String> = Vec::new();
    let mut decisions: Vec<Decision> = jobs
        .iter()
        .zip(facts)
        .map(|(job, facts)| {
            if let Some(link) = facts.local {
                return Decision::Cached(link);
            }
            if let Some(link) = facts.remote {
                return Decision::Remote(link);
            }
            let links: Vec<usize> = (0..job.chain.len())
                .filter(|&link| !config.offline || !job.chain[link].1.kind.is_model())
                .collect();
            if links.is_empty() {
                return Decision::Fail(Status::Offline, offline_message(job));
            }
            let models = || {
                links.iter().map(|&link| {
                    let request = &job.chain[link].1;
                    let setting = crate::request::model_setting(request, config);
                    (request.kind, request.model.as_str(), setting)
                })
            };
            if let Some(message) = models::retired(models(), today) {
                return Decision::Fail(Status::Retired, message);
            }
            for warning in models::deprecations(models(), today) {
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
            Decision::Generate(links)
        })
        .collect();
    apply_budget(jobs, &mut decisions, config, earlier);
    Resolution {
        decisions,
        warnings,
    }
}

/// Turns the generations past the build's budget into failures that say so. The budget counts
/// the first request each would send.
fn apply_budget(jobs: &[Job], decisions: &mut [Decision], config: &Config, earlier: &[&Request]) {
    let queued: Vec<(usize, &Request)> = decisions
        .iter()
        .enumerate()
        .filter_map(|(i, decision)| match decision {
            Decision::Generate(links) => Some((i, &jobs[i].chain[links[0]].1)),
            _ => None,
        })
        .collect();
    let requests: Vec<&Request> = earlier
        .iter()
        .copied()
        .chain(queued.iter().map(|(_, request)| *request))
        .collect();
    let verdicts = budget::apply(&requests, config)
        .into_iter()
        .skip(earlier.len());
    for ((i, _), verdict) in queued.iter().zip(verdicts) {
        if let Some(reason) = verdict {
            decisions[*i] = Decision::Fail(Status::OverBudget, reason);
        }
    }
}

fn offline_message(job: &Job) -> String {
    let request = &job.chain[0].1;
    format!(
        "the image for \"{}\" is not in the cache and `offline = true`; build once with the `{}` profile's key set, or commit the cache from a build that has it",
        super::prompt_start(&request.prompt),
        request.profile
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::directive::{Attrs, Directive};
    use crate::test_support::books::merged;

    /// A book with a paid profile, a gemini profile whose model is deprecated, a profile on a
    /// retired model, and the built-in placeholder.
    fn config(extra: serde_json::Value) -> Config {
        let table = json!({
            "provider": "paid",
            "providers": {
                "paid": { "kind": "openai", "model": "gpt-image-2", "price": 0.04 },
                "old": { "kind": "openai", "model": "gpt-image-1", "price": 0.04 },
                "flash": { "kind": "gemini", "model": "gemini-2.5-flash-image", "price": 0.04 },
            },
        });
        merged(table, extra)
    }

    fn job(config: &Config, prompt: &str, provider: &str) -> Job {
        let directive = Directive {
            span: 0..0,
            line: 1,
            top_level: true,
            prompt: prompt.to_owned(),
            attrs: Attrs {
                provider: Some(provider.to_owned()),
                ..Attrs::default()
            },
        };
        let chain = crate::request::chain(&directive, config, &[]).unwrap();
        Job {
            key: chain[0].0,
            chain,
        }
    }

    const NONE: Facts = Facts {
        local: None,
        remote: None,
    };
    const LOCAL_0: Facts = Facts {
        local: Some(0),
        remote: None,
    };
    const LOCAL_1: Facts = Facts {
        local: Some(1),
        remote: None,
    };
    const REMOTE_0: Facts = Facts {
        local: None,
        remote: Some(0),
    };

    /// A case: its name, the book's extra settings, the directives' profiles with what the
    /// caches hold for each, and the decisions expected.
    type Case = (
        &'static str,
        serde_json::Value,
        Vec<(&'static str, Facts)>,
        Vec<Decision>,
    );

    #[test]
    fn decisions() {
        let day = Day::parse("2026-11-29").unwrap();
        let cases: Vec<Case> = vec![
            (
                "an image in the local cache is used",
                json!({}),
                vec![("paid", LOCAL_0)],
                vec![Decision::Cached(0)],
            ),
            (
                "a fallback's cached image serves the directive",
                json!({ "fallback": ["flash"] }),
                vec![("paid", LOCAL_1)],
                vec![Decision::Cached(1)],
            ),
            (
                "the remote's image is downloaded, not generated",
                json!({}),
                vec![("paid", REMOTE_0)],
                vec![Decision::Remote(0)],
            ),
            (
                "a local image wins over the remote's",
                json!({}),
                vec![(
                    "paid",
                    Facts {
                        local: Some(0),
                        remote: Some(0),
                    },
                )],
                vec![Decision::Cached(0)],
            ),
            (
                "a missing image is generated, fallbacks after its own profile",
                json!({ "fallback": ["flash", "placeholder"] }),
                vec![("paid", NONE)],
                vec![Decision::Generate(vec![0, 1, 2])],
            ),
            (
                "a placeholder profile draws",
                json!({}),
                vec![("placeholder", NONE)],
                vec![Decision::Generate(vec![0])],
            ),
            (
                "offline with no placeholder fallback fails",
                json!({ "offline": true }),
                vec![("paid", NONE)],
                vec![Decision::Fail(Status::Offline, String::new())],
            ),
            (
                "offline draws the placeholder fallback",
                json!({ "offline": true, "fallback": ["flash", "placeholder"] }),
                vec![("paid", NONE)],
                vec![Decision::Generate(vec![2])],
            ),
            (
                "offline still uses the remote",
                json!({ "offline": true }),
                vec![("paid", REMOTE_0)],
                vec![Decision::Remote(0)],
            ),
            (
                "a retired model fails before any request",
                json!({}),
                vec![("old", NONE)],
                vec![Decision::Fail(Status::Retired, String::new())],
            ),
            (
                "a retired model's cached image keeps serving",
                json!({}),
                vec![("old", LOCAL_0)],
                vec![Decision::Cached(0)],
            ),
            (
                "a retired fallback fails the generation too",
                json!({ "fallback": ["old"] }),
                vec![("paid", NONE)],
                vec![Decision::Fail(Status::Retired, String::new())],
            ),
            (
                "the image budget stops in book order; placeholders and cached images are free",
                json!({ "max-images-per-build": 1 }),
                vec![
                    ("paid", LOCAL_0),
                    ("placeholder", NONE),
                    ("paid", NONE),
                    ("paid", NONE),
                ],
                vec![
                    Decision::Cached(0),
                    Decision::Generate(vec![0]),
                    Decision::Generate(vec![0]),
                    Decision::Fail(Status::OverBudget, String::new()),
                ],
            ),
            (
                "the cost budget counts estimated prices",
                json!({ "max-cost-per-build": 0.05 }),
                vec![("paid", NONE), ("flash", NONE)],
                vec![
                    Decision::Generate(vec![0]),
                    Decision::Fail(Status::OverBudget, String::new()),
                ],
            ),
        ];
        for (name, extra, directives, expected) in cases {
            let config = config(extra);
            let jobs: Vec<Job> = directives
                .iter()
                .enumerate()
                .map(|(i, (provider, _))| job(&config, &format!("image {i}"), provider))
                .collect();
            let facts: Vec<Facts> = directives.iter().map(|(_, facts)| *facts).collect();
            let got: Vec<Decision> = resolve(&jobs, &facts, &config, day, &[])
                .decisions
                .into_iter()
                .map(|decision| match decision {
                    Decision::Fail(status, message) => {
                        assert!(!message.is_empty(), "{name}: a failure says why");
                        Decision::Fail(status, String::new())
                    }
                    other => other,
                })
                .collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn statuses_name_what_a_build_does() {
        let config = config(json!({ "offline": true, "fallback": ["placeholder"] }));
        let paid = job(&config, "a", "paid");
        assert_eq!(Decision::Generate(vec![0]).status(&paid), Status::Generate);
        assert_eq!(Decision::Generate(vec![1]).status(&paid), Status::Draw);
        assert_eq!(Decision::Cached(1).status(&paid), Status::Cached);
        assert_eq!(Decision::Remote(0).status(&paid), Status::Remote);
    }

    #[test]
    fn a_deprecated_model_is_warned_about_once() {
        let config = config(json!({}));
        let jobs = [job(&config, "a", "flash"), job(&config, "b", "flash")];
        let day = Day::parse("2026-11-29").unwrap();
        let resolution = resolve(&jobs, &[NONE, NONE], &config, day, &[]);
        assert_eq!(resolution.warnings.len(), 1, "{:?}", resolution.warnings);
        assert!(resolution.warnings[0].contains("gemini-2.5-flash-image"));
        let cached = resolve(&jobs, &[LOCAL_0, LOCAL_0], &config, day, &[]);
        assert!(cached.warnings.is_empty(), "no warning for cached images");
    }
}
