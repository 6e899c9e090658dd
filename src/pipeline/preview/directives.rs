//! What a build would do for each directive, from its plan and the rounds' decisions: one
//! [`Planned`] per directive (and per malformed block), in book order.

use std::collections::BTreeSet;

use super::planned::{Describe, Planned, PlannedDark, PlannedJob, PlannedJudge, Served, Variants};
use crate::cache::key::CacheKey;
use crate::error::Result;
use crate::pipeline::Book;
use crate::pipeline::image::tier_of;
use crate::pipeline::jobs::{At, Job, Plan};
use crate::pipeline::parse::Page;
use crate::pipeline::references::is_provisional;
use crate::pipeline::resolve::{Decision, Resolution, Status};

/// One entry per directive (and per malformed one), in book order. A directive that uses the
/// same image as an earlier one shows it as made once: `cached` where the first generates it.
pub(super) fn planned(
    book: &Book<'_>,
    pages: &[Page<'_>],
    plan: &Plan,
    resolution: &Resolution,
) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut seen = vec![false; plan.jobs.len()];
    for (p, (page, uses)) in pages.iter().zip(&plan.uses).enumerate() {
        for problem in &page.problems {
            out.push(Planned::new(
                &page.file,
                problem.line,
                "",
                problem.message.clone(),
            ));
        }
        for (d, (directive, use_)) in page.directives.iter().zip(uses).enumerate() {
            let mut planned =
                Planned::new(&page.file, directive.line, &directive.prompt, String::new());
            planned.alt.clone_from(&directive.attrs.alt);
            planned.caption.clone_from(&directive.attrs.caption);
            planned.references = crate::request::wanted(directive, book.config)
                .map(|w| w.iter().map(crate::request::Wanted::label).collect())
                .unwrap_or_default();
            planned.edit.clone_from(&directive.attrs.edit);
            let job = match use_ {
                Ok(job) => *job,
                Err(message) => {
                    planned.message = Some(message.clone());
                    out.push(planned);
                    continue;
                }
            };
            let mut made = of_job(&mut planned, &plan.jobs[job], &resolution.decisions[job]);
            art_direction(&mut made, plan, (p, d), directive.attrs.edit.is_some());
            made.dark = dark(plan, resolution, (p, d));
            let here = Made::of(book, plan, resolution, (p, d), &mut seen);
            // One made by an earlier directive shows as cached here; one whose image is cached
            // but whose other candidates (or the image its edit starts from) a build still
            // makes, as made.
            if planned.status == Status::Generate && !here.here {
                planned.status = Status::Cached;
            }
            if planned.status == Status::Cached && here.here {
                planned.status = if here.cost.is_some() || here.by_model {
                    Status::Generate
                } else {
                    Status::Draw
                };
            }
            made.cost = here.cost;
            made.batch_cost = here.batch_cost;
            planned.job = Some(made);
            out.push(planned);
        }
    }
    out
}

/// What a directive takes from the job whose image its figure shows, and that job's decision:
/// its status and message, and the job as planned (without what `art_direction` adds).
fn of_job(planned: &mut Planned, job: &Job, decision: &Decision) -> PlannedJob {
    let request = &job.chain[0].1;
    planned.status = decision.status(job);
    planned.message = match decision {
        Decision::Fail(_, message) => Some(message.clone()),
        _ => None,
    };
    let own_waits = is_provisional(request);
    if own_waits && planned.message.is_none() {
        planned.message = Some(
            "made after the images it references, which a build makes first; its key is known then"
                .into(),
        );
    }
    PlannedJob {
        profile: request.profile.clone(),
        kind: request.kind,
        model: request.model.clone(),
        size: request.size_label(),
        tier: tier_of(request),
        chain: job.chain.iter().map(|(k, _)| *k).collect(),
        own_waits,
        also: Vec::new(),
        variants: None,
        edits: None,
        served: Served::of(job, decision),
        provisional: own_waits,
        cost: None,
        batch_cost: None,
        dark: None,
    }
}

/// A directive's dark twin: what a build does for it, and its key once known.
fn dark(plan: &Plan, resolution: &Resolution, at: At) -> Option<PlannedDark> {
    Some(match plan.twin(at)? {
        Err(message) => PlannedDark {
            status: Status::Error,
            key: None,
            tier: crate::cache::Tier::Local,
            message: Some(message.clone()),
        },
        Ok(j) => {
            let (job, decision) = (&plan.jobs[*j], &resolution.decisions[*j]);
            PlannedDark {
                status: decision.status(job),
                key: (!is_provisional(&job.chain[0].1)).then_some(job.key),
                tier: tier_of(&job.chain[0].1),
                message: match decision {
                    Decision::Fail(_, message) => Some(message.clone()),
                    _ => None,
                },
            }
        }
    })
}

/// What a directive's variants and edit keep: the keys of its other jobs (every link: a
/// candidate a fallback made is kept like the one shown), its candidates and the one picked,
/// the image its edit starts from.
fn art_direction(job: &mut PlannedJob, plan: &Plan, at: At, edits: bool) {
    let others = &plan.also[at.0][at.1];
    let waits = |j: &usize| is_provisional(&plan.jobs[*j].chain[0].1);
    job.provisional |= others.iter().any(waits);
    job.also = others
        .iter()
        .flat_map(|&j| plan.jobs[j].chain.iter().map(|(k, _)| *k))
        .collect();
    job.variants = plan
        .candidates
        .get(&at)
        .map(|(candidates, chosen)| Variants {
            candidates: candidates.iter().map(|&j| plan.jobs[j].key).collect(),
            picked: chosen + 1,
            wait: candidates.iter().any(waits),
        });
    if edits {
        job.edits = plan.edits.get(&at).map(|&j| plan.jobs[j].key);
    }
}

/// What a build makes for one directive that no earlier directive makes.
struct Made {
    /// Whether it makes anything besides its dark twin (the twin's own status is `dark`: a
    /// figure whose image is here is not one to regenerate for its twin).
    here: bool,
    /// Whether a model makes some of it.
    by_model: bool,
    /// The estimated price of what a model makes, when known.
    cost: Option<f64>,
    /// The same through the batch APIs: half for what a batch may make.
    batch_cost: Option<f64>,
}

impl Made {
    fn of(
        book: &Book<'_>,
        plan: &Plan,
        resolution: &Resolution,
        at: At,
        seen: &mut [bool],
    ) -> Made {
        let mut made = Made {
            here: false,
            by_model: false,
            cost: None,
            batch_cost: None,
        };
        let twin = plan.twin(at).and_then(|t| t.as_ref().ok()).copied();
        for j in plan.jobs_of(at) {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            let Some(request) = resolution.decisions[j].first_request(&plan.jobs[j]) else {
                continue;
            };
            if Some(j) != twin {
                made.here = true;
                made.by_model |= request.kind.is_model();
            }
            let profile = book.config.profile(&request.profile).ok();
            let price = profile
                .filter(|_| request.kind.is_model())
                .and_then(|p| crate::price::estimate(request, p, &book.config.prices));
            if let Some(price) = price {
                made.cost = Some(made.cost.unwrap_or(0.0) + price);
                let batched = profile.is_some_and(|p| {
                    crate::models::batch::batchable(request.kind, &request.model, p.batch).is_ok()
                });
                let share = if batched {
                    crate::batch::run::BATCH_SHARE
                } else {
                    1.0
                };
                made.batch_cost = Some(made.batch_cost.unwrap_or(0.0) + price * share);
            }
        }
        made
    }
}

/// Marks each image to generate that is in a pending batch (`.imagegen/batches/`): a build
/// leaves it alone, so `plan` says so. The batch files are read only when something is to be
/// generated.
pub(super) fn note_batches(cache_root: &std::path::Path, planned: &mut [Planned]) {
    if !planned.iter().any(|p| p.status == Status::Generate) {
        return;
    }
    let pending = crate::batch::store::pending(cache_root);
    if pending.is_empty() {
        return;
    }
    for p in planned.iter_mut().filter(|p| p.status == Status::Generate) {
        if let Some(batch) = p.key().and_then(|key| pending.get(&key)) {
            p.status = Status::InBatch;
            p.message = Some(format!(
                "in {batch}, not collected yet; run `mdbook-imagegen batch collect`"
            ));
        }
    }
}

/// Notes, for each image to generate, the machine that holds its claim in the remote cache.
pub(super) fn note_claims(remote: &crate::storage::Remote, planned: &mut [Planned]) {
    let keys: Vec<CacheKey> = planned
        .iter()
        .filter(|p| p.status == Status::Generate)
        .filter_map(Planned::key)
        .collect();
    if keys.is_empty() || !remote.is_up() {
        return;
    }
    let live = crate::pipeline::generate::claims::live(remote, &keys);
    for p in planned.iter_mut() {
        if let Some(claim) = p.key().and_then(|key| live.get(&key)) {
            p.claimed_by = Some(format!("{} until {}", claim.holder(), claim.expires_at));
        }
    }
}

/// With `alt-text = "describe"`: which figures without an author's alt have their description
/// kept, and which a build will describe, at what estimated price (the price of one
/// description in `[describe]`, else the describer model's token prices for a typical image:
/// 1,500 tokens in, 150 out). A description is priced once per image, like the image.
pub(super) fn plan_descriptions(book: &Book<'_>, planned: &mut [Planned]) -> Result<()> {
    const TYPICAL: (f64, f64) = (1500.0, 150.0);
    let (Some(with), Some(id)) = (&book.config.describe, book.config.describer_id()) else {
        return Ok(());
    };
    let estimate = with
        .price
        .or_else(|| crate::price::tokens_cost(&with.model, Some(TYPICAL.0), Some(TYPICAL.1)));
    let mut cache = crate::cache::Cache::of_book(&book.ctx.root, book.config);
    let mut priced = BTreeSet::new();
    for p in planned.iter_mut() {
        let Some(served) = p.served().cloned().filter(|s| s.by_model) else {
            continue;
        };
        if p.alt.is_some() || p.status.is_failure() {
            continue;
        }
        let master = match p.status {
            Status::Cached => cache.lookup(served.tier, served.key)?.map(|e| e.master),
            _ => None,
        };
        let kept =
            master.is_some_and(|m| cache.note::<crate::description::Record>(&m, &id).is_some());
        p.describe = Some(if kept {
            Describe::Kept
        } else {
            Describe::Ask {
                cost: if priced.insert(served.key) {
                    estimate
                } else {
                    None
                },
            }
        });
    }
    Ok(())
}

/// With a judge: the score and verdict of each figure whose image's judgement is kept, and the
/// estimated price of those a build will judge (the price in `[judge]`, else the judge
/// model's token prices for a typical image: 1,500 tokens in, 1,000 out; with `gate`, plus
/// the worst case: `retries` new attempts, each made and judged). Priced once per image.
pub(super) fn plan_judgements(
    book: &Book<'_>,
    plan: &Plan,
    judged: &std::collections::BTreeMap<usize, crate::judgement::Record>,
    planned: &mut [Planned],
) {
    const TYPICAL: (f64, f64) = (1500.0, 1000.0);
    let Some(judge) = &book.config.judge else {
        return;
    };
    let with = &judge.with;
    let estimate = with
        .price
        .or_else(|| crate::price::tokens_cost(&with.model, Some(TYPICAL.0), Some(TYPICAL.1)));
    let retries = match judge.mode {
        crate::config::JudgeMode::Gate => f64::from(judge.retries),
        crate::config::JudgeMode::Report => 0.0,
    };
    let by_key: std::collections::HashMap<CacheKey, usize> = (plan.jobs.iter().enumerate())
        .flat_map(|(j, job)| job.chain.iter().map(move |(k, _)| (*k, j)))
        .collect();
    let mut priced = BTreeSet::new();
    for p in planned.iter_mut() {
        let Some(served) = p.served().cloned().filter(|s| s.by_model) else {
            continue;
        };
        let Some(&job) = by_key.get(&served.key).filter(|_| !p.status.is_failure()) else {
            continue;
        };
        p.judge = Some(match judged.get(&job) {
            Some(record) => PlannedJudge::Kept {
                score: record.score,
                mark: crate::judgement::Mark::of(record.score, judge.min_score),
            },
            None => PlannedJudge::Ask {
                cost: priced.insert(job).then(|| {
                    let request = &plan.jobs[job].chain[0].1;
                    let image = book
                        .config
                        .profile(&request.profile)
                        .ok()
                        .and_then(|profile| {
                            crate::price::estimate(request, profile, &book.config.prices)
                        });
                    let judging = estimate.unwrap_or(0.0);
                    judging + retries * (image.unwrap_or(0.0) + judging)
                }),
            },
        });
    }
}
