//! Stage 5b, judge (`[judge]`): a vision model checks every image a model made that a
//! directive keeps (the one shown, each candidate of `variants`, the image an edit starts
//! from) against its prompt, once per master and judge; the judgement is kept beside the
//! masters (committed) and shared through the remote cache, so a warm build asks nothing.
//!
//! Then the scores are used: a directive with `variants` and no committed pick shows its
//! best-scored candidate ([`rank`]); with `mode = "gate"`, a figure below `min-score` gets new
//! attempts with the failed checks given back as corrections ([`gate`]), and shows the best.
//!
//! A judge that fails never loses an image: the figure stays and the build warns (with
//! `on-error = "fail"`, the build fails naming the directive).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::Book;
use super::describe::{fetched, usable_model, web_file_to_read};
use super::image::Image;
use super::jobs::{At, EDITED, Plan};
use super::parse::Page;
use super::rounds::{self, Mode, Rounds};
use super::workers::on_workers;
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::config::{JudgeMode, OnError};
use crate::error::{Located, Result};
use crate::judgement::{self, About, Record};
use crate::note::Note as _;
use crate::provider::{self, describer};
use crate::storage::Remote;

/// What the judge stage settled.
#[derive(Default)]
pub(crate) struct Judged {
    /// The judgement of each job that has one, by job index.
    pub(crate) by_job: BTreeMap<usize, Record>,
    /// Directives whose judgement failed, with `on-error = "fail"`.
    pub(crate) failures: Vec<Located>,
    /// Jobs looked at already (judged, or failed), so that a later pass asks only new ones.
    tried: BTreeSet<usize>,
    /// The remote this stage set up (when the build had none), kept for `gate`'s later passes.
    opened: Option<Remote>,
    /// Whether the judge's model may be asked, settled (and a deprecation warned about) once.
    usable: Option<std::result::Result<(), String>>,
}

impl Judged {
    /// The judgement of an image, for every job that has it.
    fn keep(&mut self, want: &Wanted<'_>, record: Record) {
        let (last, others) = want.jobs.split_last().expect("an image has a job");
        for job in others {
            self.by_job.insert(*job, record.clone());
        }
        self.by_job.insert(*last, record);
    }
}

/// The book's judge, with its id.
pub(crate) struct Judging<'a> {
    who: describer::Describer<'a>,
    pub(crate) id: String,
}

impl<'a> Judging<'a> {
    /// The book's judge, unless `[judge]` is off.
    pub(crate) fn of(config: &'a crate::config::Config) -> Option<Judging<'a>> {
        let settings = config.judge.as_ref()?;
        let with = &settings.with;
        let profile = &config.profiles[&with.profile];
        Some(Judging {
            who: describer::Describer {
                profile_name: &with.profile,
                profile,
                model: &with.model,
                extra: &with.extra,
                price: with.price,
            },
            id: judgement::judge_id(profile.kind, &with.model),
        })
    }
}

/// One image to judge: its master and the jobs that have it (two requests may make the same
/// bytes), what it was asked to show, and every directive (file, line) that keeps it.
struct Wanted<'p> {
    jobs: Vec<usize>,
    master: &'p str,
    /// The first directive that keeps it.
    directive: &'p crate::directive::Directive,
    /// Whether it is an edit's result (or a new attempt at one).
    edited: bool,
    users: Vec<(&'p str, usize)>,
}

/// Finds or makes the judgement of every image a model made that a directive keeps and that
/// was not looked at yet.
pub(crate) fn run(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    pages: &[Page<'_>],
    plan: &Plan,
    images: &[Image],
    judged: &mut Judged,
) {
    let Some(with) = Judging::of(book.config) else {
        return;
    };
    let mut to_ask = Vec::new();
    for want in wanted(pages, plan, images, &judged.tried) {
        judged.tried.extend(&want.jobs);
        match cache.note::<Record>(want.master, &with.id) {
            Some(record) => judged.keep(&want, record),
            None => to_ask.push(want),
        }
    }
    if to_ask.is_empty() {
        return;
    }
    if remote.is_none() && judged.opened.is_none() {
        judged.opened = book.remote_if(|| true);
    }
    let opened = judged.opened.take();
    if let Some(remote) = remote.or(opened.as_ref()) {
        to_ask = from_remote(cache, remote, &with.id, to_ask, judged);
    }
    judged.opened = opened;
    if to_ask.is_empty() {
        return;
    }
    if book.config.offline {
        tracing::warn!(
            "imagegen: offline: {} image{} not judged",
            to_ask.len(),
            if to_ask.len() == 1 { " is" } else { "s are" }
        );
        return;
    }
    let usable = (judged.usable)
        .get_or_insert_with(|| usable_model(book, &with.who, "judge", "judge"))
        .clone();
    if let Err(message) = usable {
        for want in &to_ask {
            failed(book, judged, want, &message);
        }
        return;
    }
    let opened = judged.opened.take();
    ask_and_keep(
        book,
        cache,
        remote.or(opened.as_ref()),
        &with,
        images,
        &to_ask,
        judged,
    );
    judged.opened = opened;
}

/// Asks the judge about each image of `to_ask`; keeps each judgement (and uploads it), or says
/// why there is none.
fn ask_and_keep(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    with: &Judging<'_>,
    images: &[Image],
    to_ask: &[Wanted<'_>],
    judged: &mut Judged,
) {
    let started = Instant::now();
    let results = book.with_provider_env(|env| ask_all(book, with, images, to_ask, env));
    let (mut count, mut cost) = (0, 0.0);
    for (want, result) in to_ask.iter().zip(results) {
        let record = match result {
            Ok(answer) => record_of(with, want, answer),
            Err(message) => {
                failed(book, judged, want, &message);
                continue;
            }
        };
        (count, cost) = (count + 1, cost + record.cost_usd);
        // What every reader will accept, or it would be asked for at every build.
        if let Err(why) = Record::parse(&record.to_json(), &record.file_name()) {
            let message = format!("the judgement cannot be kept: {why}");
            failed(book, judged, want, &message);
            continue;
        }
        if let Err(e) = cache.store_note(&record) {
            tracing::warn!("imagegen: cannot keep a judgement: {e}");
        } else if let Some(remote) = remote.filter(|r| r.can_write()) {
            remote.degrade(cache.upload_note(remote, &record));
        }
        judged.keep(want, record);
    }
    if count > 0 {
        tracing::info!(
            "imagegen: judged {count} image{} with `{}` ({}) in {:.1}s; estimated cost ${cost:.4}",
            if count == 1 { "" } else { "s" },
            with.who.profile_name,
            with.who.model,
            started.elapsed().as_secs_f64()
        );
    }
}

/// A judgement that failed: a warning, and with `on-error = "fail"` a failure of every
/// directive that keeps the image. The image stays either way.
fn failed(book: &Book<'_>, judged: &mut Judged, want: &Wanted<'_>, message: &str) {
    let (file, line) = want.users[0];
    tracing::warn!(
        "imagegen: {}:{line}: the image is not judged: {message}",
        crate::outside::for_terminal(file)
    );
    if book.config.on_error == OnError::Fail {
        judged
            .failures
            .extend(want.users.iter().map(|(file, line)| Located {
                file: (*file).to_owned(),
                line: *line,
                message: format!("the judge failed: {message}"),
            }));
    }
}

/// Every ready image a model made that a directive keeps and that was not looked at yet,
/// once, with what it was asked to show.
fn wanted<'p>(
    pages: &'p [Page<'p>],
    plan: &Plan,
    images: &'p [Image],
    tried: &BTreeSet<usize>,
) -> Vec<Wanted<'p>> {
    let mut wanted: BTreeMap<&str, Wanted<'p>> = BTreeMap::new();
    for (p, page) in pages.iter().enumerate() {
        for (d, directive) in page.directives.iter().enumerate() {
            for job in plan.jobs_of((p, d)) {
                let Image::Ready(ready) = &images[job] else {
                    continue;
                };
                if tried.contains(&job) || !ready.kind.is_model() || ready.manifest.is_none() {
                    continue;
                }
                let edited = plan.jobs[job].chain[0]
                    .1
                    .references
                    .iter()
                    .any(|r| r.label == EDITED);
                let want = wanted.entry(&ready.entry.master).or_insert_with(|| Wanted {
                    jobs: Vec::new(),
                    master: &ready.entry.master,
                    directive,
                    edited,
                    users: Vec::new(),
                });
                if !want.jobs.contains(&job) {
                    want.jobs.push(job);
                }
                want.users.push((page.file.as_str(), directive.line));
            }
        }
    }
    let mut wanted: Vec<Wanted<'p>> = wanted.into_values().collect();
    // In book order, as the images were made.
    wanted.sort_by_key(|w| w.jobs[0]);
    wanted
}

impl Wanted<'_> {
    /// What the image was asked to show: the prompt, and for an edit's result the instruction
    /// too.
    fn prompt(&self) -> String {
        let prompt = &self.directive.prompt;
        match &self.directive.attrs.edit {
            Some(edit) if self.edited => format!("{prompt}. Then edited: {edit}"),
            _ => prompt.clone(),
        }
    }
}

/// The prompt of the style a directive uses, if any.
fn style_prompt<'c>(book: &Book<'c>, directive: &crate::directive::Directive) -> Option<&'c str> {
    let style = crate::request::style_of(directive.attrs.style.as_deref(), book.config).ok()??;
    Some(style.prompt.as_str()).filter(|p| !p.trim().is_empty())
}

/// Copies in what the remote holds of `to_ask`; returns what is still to ask.
fn from_remote<'p>(
    cache: &mut Cache,
    remote: &Remote,
    id: &str,
    to_ask: Vec<Wanted<'p>>,
    judged: &mut Judged,
) -> Vec<Wanted<'p>> {
    if !fetched::<Record>(cache, remote, id, to_ask.iter().map(|want| want.master)) {
        return to_ask;
    }
    to_ask
        .into_iter()
        .filter(|want| match cache.note::<Record>(want.master, id) {
            Some(record) => {
                judged.keep(want, record);
                false
            }
            None => true,
        })
        .collect()
}

/// Asks the judge about every image, `max-concurrency` at a time.
fn ask_all(
    book: &Book<'_>,
    with: &Judging<'_>,
    images: &[Image],
    to_ask: &[Wanted<'_>],
    env: &provider::Env<'_>,
) -> Vec<std::result::Result<describer::Answered<judgement::Verdict>, String>> {
    let items: Vec<(usize, &Wanted<'_>)> = to_ask.iter().enumerate().collect();
    let mut results = on_workers(items, book.config.max_concurrency, |(index, want)| {
        let asked = web_file_to_read(book, images, want.jobs[0]).and_then(|(bytes, media_type)| {
            let picture = describer::Picture {
                bytes: &bytes,
                media_type,
                master: want.master,
            };
            let about = About {
                prompt: &want.prompt(),
                style: style_prompt(book, want.directive),
                caption: want.directive.attrs.caption.as_deref(),
            };
            describer::judge(&with.who, &picture, &about, env).map_err(|f| f.message)
        });
        (index, asked)
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// The record of a new judgement: the judge's answer, the text check's defects after its
/// own, and our score.
fn record_of(
    with: &Judging<'_>,
    want: &Wanted<'_>,
    answer: describer::Answered<judgement::Verdict>,
) -> Record {
    let verdict = answer.text;
    let mut defects = verdict.defects.clone();
    defects.extend(judgement::text_defects(&want.prompt(), &verdict));
    Record {
        format: judgement::RECORD_FORMAT,
        master: want.master.to_owned(),
        judge: with.id.clone(),
        provider: with.who.profile.kind.as_str().to_owned(),
        model: with.who.model.to_owned(),
        instructions: judgement::INSTRUCTIONS_VERSION,
        score: judgement::score(&verdict.checks, &defects),
        checks: verdict.checks,
        defects,
        text_seen: verdict.text_seen,
        model_version: answer.model_version,
        request_id: answer.request_id,
        attempts: answer.attempts,
        cost_usd: answer.cost_usd,
        created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    }
}

/// Each directive with `variants`, no committed pick and no `edit` shows its best-scored
/// candidate (ties: the lowest number); one whose candidates have no score keeps the first.
pub(crate) fn rank(
    plan: &mut Plan,
    pages: &[Page<'_>],
    score: &dyn Fn(usize) -> Option<f64>,
    picked: &dyn Fn(CacheKey) -> bool,
) {
    let mut shown: Vec<(At, usize)> = Vec::new();
    for (at, (jobs, _)) in &plan.candidates {
        let directive = &pages[at.0].directives[at.1];
        if directive.attrs.edit.is_some() || picked(plan.jobs[jobs[0]].key) {
            continue;
        }
        if let Some(best) = best_of(jobs, score) {
            shown.push((*at, best));
        }
    }
    for (at, job) in shown {
        plan.show(at, job);
    }
}

/// The best-scored of some jobs (ties: the first); `None` when none has a score.
fn best_of(jobs: &[usize], score: &dyn Fn(usize) -> Option<f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &job in jobs {
        if let Some(s) = score(job)
            && best.is_none_or(|(_, b)| s > b)
        {
            best = Some((job, s));
        }
    }
    best.map(|(job, _)| job)
}

/// Says which new attempts a round could not make (the budget, a refusal): the figure keeps
/// its best image so far.
fn unmade(pages: &[Page<'_>], tries: &BTreeMap<At, Vec<usize>>, from: usize, rounds: &Rounds) {
    for ((p, d), jobs) in tries {
        for job in jobs.iter().filter(|j| **j >= from) {
            if let Some(super::resolve::Decision::Fail(_, message)) = rounds.decisions.get(*job) {
                tracing::warn!(
                    "imagegen: {}:{}: no new attempt below `min-score`: {}; the figure keeps its best image so far",
                    crate::outside::for_terminal(&pages[*p].file),
                    pages[*p].directives[*d].line,
                    message
                );
            }
        }
    }
}

/// What `gate` calls after each round of new attempts: the judgements of every job so far
/// (the build derives and judges the new images; `plan` reads what is kept).
pub(crate) type Scores<'s, M> =
    dyn FnMut(&mut Cache, &Plan, &mut M, &Rounds) -> BTreeMap<usize, Record> + 's;

/// `mode = "gate"`: each figure whose best image so far scores below `min-score` gets a new
/// attempt (its own request with the last attempt's failed checks and major defects as
/// corrections, a seed of its own, and the attempt's number in its cache key), up to
/// `retries` times, each attempt looked up, generated, derived and judged like any image
/// (within the build's budgets); the figure then shows the best-scored of its attempts (ties:
/// the earliest), and keeps the others. `judge_new` judges the jobs a round added (the build
/// asks the judge; `plan` reads only what is kept).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gate<M: Mode>(
    book: &Book<'_>,
    cache: &mut Cache,
    pages: &[Page<'_>],
    plan: &mut Plan,
    mode: &mut M,
    rounds: &mut Rounds,
    picked: &dyn Fn(CacheKey) -> bool,
    scores: &mut Scores<'_, M>,
) -> Result<()> {
    let Some(judge) = book
        .config
        .judge
        .as_ref()
        .filter(|j| j.mode == JudgeMode::Gate)
    else {
        return Ok(());
    };
    let mut judged = scores(cache, plan, mode, rounds);
    let mut tries: BTreeMap<At, Vec<usize>> = BTreeMap::new();
    for attempt in 1..=judge.retries {
        let from = plan.jobs.len();
        let mut asked = false;
        for (p, page) in pages.iter().enumerate() {
            for d in 0..page.directives.len() {
                let Ok(own) = plan.uses[p][d] else { continue };
                // A committed pick is the author's choice: it is shown as it is.
                let chose = (plan.candidates.get(&(p, d)))
                    .is_some_and(|(jobs, _)| picked(plan.jobs[jobs[0]].key));
                if chose {
                    continue;
                }
                let attempts: Vec<usize> = std::iter::once(own)
                    .chain(tries.get(&(p, d)).into_iter().flatten().copied())
                    .collect();
                let last = attempts.last().and_then(|j| judged.get(j));
                let best = attempts
                    .iter()
                    .filter_map(|j| judged.get(j).map(|r| r.score))
                    .fold(None, |b: Option<f64>, s| Some(b.map_or(s, |b| b.max(s))));
                let (Some(last), Some(best)) = (last, best) else {
                    continue;
                };
                if best >= judge.min_score || attempts.len() as u32 > attempt {
                    continue;
                }
                let corrections = judgement::corrections(last);
                let chain =
                    crate::request::retry_chain(&plan.jobs[own].chain, attempt, &corrections);
                if chain.is_empty() {
                    continue;
                }
                let job = plan.add_kept((p, d), chain);
                tries.entry((p, d)).or_default().push(job);
                asked = true;
            }
        }
        if !asked {
            break;
        }
        if plan.jobs.len() > from {
            rounds::round(book, cache, &plan.jobs[from..], mode, rounds)?;
            unmade(pages, &tries, from, rounds);
        }
        judged = scores(cache, plan, mode, rounds);
    }
    for (at, retries) in tries {
        let Ok(own) = plan.uses[at.0][at.1] else {
            continue;
        };
        let attempts: Vec<usize> = std::iter::once(own).chain(retries).collect();
        let score = |job: usize| judged.get(&job).map(|r| r.score);
        if let Some(best) = best_of(&attempts, &score) {
            plan.show(at, best);
        }
    }
    Ok(())
}
