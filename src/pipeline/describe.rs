//! Stage 6b, describe (`alt-text = "describe"`): the alt text and long description of each
//! image whose directive has no `alt`, written by a vision model from a web file of the image,
//! kept beside the masters (committed) and reused by every later build and teammate.
//!
//! Only images a model made are described (a placeholder stands in for an image to come).
//! A describer that fails is handled like a generation that fails: the build fails naming the
//! directive, or, with `on-error = "placeholder"`, the figure keeps its derived alt and a
//! warning says why.

use std::collections::BTreeMap;
use std::time::Instant;

use super::Book;
use super::image::Image;
use super::jobs::Plan;
use super::parse::Page;
use super::web_files::read_asset;
use super::workers::on_workers;
use crate::cache::Cache;
use crate::description::{self, About};
use crate::error::Located;
use crate::models::{self, Lifecycle};
use crate::provider::{self, describer};
use crate::storage::Remote;

/// What the describe stage settled.
#[derive(Default)]
pub(crate) struct Described {
    /// The description of each job that has one, by job index.
    pub(crate) by_job: BTreeMap<usize, description::Record>,
    /// Directives whose description failed.
    pub(crate) failures: Vec<Located>,
}

/// One image whose description is looked for: its job, its master, and the directive that
/// first shows it.
struct Wanted<'p> {
    job: usize,
    master: &'p str,
    page: &'p Page<'p>,
    directive: usize,
    /// Whether a directive without alt shows it: only then is a describer asked. (One whose
    /// author wrote its alt, perhaps with `alt --write`, keeps a description already written.)
    ask: bool,
}

/// The book's describer, with its id.
struct Describing<'a> {
    who: describer::Describer<'a>,
    id: String,
}

impl<'a> Describing<'a> {
    /// The book's describer, when `alt-text = "describe"`.
    fn of(config: &'a crate::config::Config) -> Option<Describing<'a>> {
        let settings = config.describe.as_ref()?;
        let profile = &config.profiles[&settings.profile];
        Some(Describing {
            who: describer::Describer {
                profile_name: &settings.profile,
                profile,
                model: &settings.model,
                extra: &settings.extra,
                price: settings.price,
            },
            id: description::describer_id(profile.kind, &settings.model),
        })
    }
}

/// Finds or makes the description of every image a directive without `alt` shows.
pub(crate) fn run(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    pages: &[Page<'_>],
    plan: &Plan,
    images: &[Image],
) -> Described {
    let mut described = Described::default();
    let Some(with) = Describing::of(book.config).filter(|_| !book.batching.is_command()) else {
        return described;
    };
    let (wanted, users) = wanted(pages, plan, images);
    let mut to_ask = Vec::new();
    for want in wanted {
        match cache.note::<description::Record>(want.master, &with.id) {
            Some(record) => {
                described.by_job.insert(want.job, record);
            }
            None if want.ask => to_ask.push(want),
            None => {}
        }
    }
    if to_ask.is_empty() {
        return described;
    }
    // A teammate may have described them already: the remote cache is asked (set up now if
    // this build did not need it for images), and what it holds is copied in.
    let opened = remote.is_none().then(|| book.remote_if(|| true)).flatten();
    let remote = remote.or(opened.as_ref());
    if let Some(remote) = remote {
        to_ask = from_remote(cache, remote, &with.id, to_ask, &mut described);
    }
    if to_ask.is_empty() {
        return described;
    }
    let fail = |described: &mut Described, job: usize, message: &str| {
        let at = users.get(&job).into_iter().flatten();
        described.failures.extend(at.map(|(file, line)| Located {
            file: (*file).to_owned(),
            line: *line,
            message: message.to_owned(),
        }));
    };
    if let Err(message) = may_ask(book, &with, to_ask.len()) {
        if let Some(message) = message {
            for want in &to_ask {
                fail(&mut described, want.job, &message);
            }
        }
        return described;
    }
    let started = Instant::now();
    let results = ask_all(book, &with.who, images, &to_ask);
    let (mut count, mut cost) = (0, 0.0);
    for (want, result) in to_ask.iter().zip(results) {
        match result {
            Ok(answer) => {
                let record = record_of(&with, want.master, answer);
                (count, cost) = (count + 1, cost + record.cost_usd);
                keep(cache, remote, &record);
                described.by_job.insert(want.job, record);
            }
            Err(message) => fail(&mut described, want.job, &message),
        }
    }
    if count > 0 {
        tracing::info!(
            "imagegen: described {count} image{} with `{}` ({}) in {:.1}s; estimated cost ${cost:.4}",
            if count == 1 { "" } else { "s" },
            with.who.profile_name,
            with.who.model,
            started.elapsed().as_secs_f64()
        );
    }
    described
}

/// Every ready image a model made that a directive without alt shows, once, with the first
/// such directive; and every directive (file, line) that shows each job without alt.
#[allow(clippy::type_complexity)]
fn wanted<'p>(
    pages: &'p [Page<'p>],
    plan: &Plan,
    images: &'p [Image],
) -> (Vec<Wanted<'p>>, BTreeMap<usize, Vec<(&'p str, usize)>>) {
    let mut wanted: BTreeMap<usize, Wanted<'p>> = BTreeMap::new();
    let mut users: BTreeMap<usize, Vec<(&str, usize)>> = BTreeMap::new();
    for (page, uses) in pages.iter().zip(&plan.uses) {
        for (index, (directive, use_)) in page.directives.iter().zip(uses).enumerate() {
            let Ok(job) = use_ else { continue };
            let Image::Ready(ready) = &images[*job] else {
                continue;
            };
            // A placeholder stands in for an image to come: describing it would pay for words
            // about a grey box. A decorative image has no description.
            let decorative = directive.attrs.alt.as_deref() == Some("");
            if decorative || !ready.kind.is_model() || ready.manifest.is_none() {
                continue;
            }
            let want = wanted.entry(*job).or_insert(Wanted {
                job: *job,
                master: &ready.entry.master,
                page,
                directive: index,
                ask: false,
            });
            if directive.attrs.alt.is_none() {
                if !want.ask {
                    (want.ask, want.page, want.directive) = (true, page, index);
                }
                let at = (page.file.as_str(), directive.line);
                users.entry(*job).or_default().push(at);
            }
        }
    }
    (wanted.into_values().collect(), users)
}

/// Copies in what the remote holds of `to_ask`; returns what is still to ask.
fn from_remote<'p>(
    cache: &mut Cache,
    remote: &Remote,
    id: &str,
    to_ask: Vec<Wanted<'p>>,
    described: &mut Described,
) -> Vec<Wanted<'p>> {
    let masters = to_ask.iter().map(|want| want.master);
    if !fetched::<description::Record>(cache, remote, id, masters) {
        return to_ask;
    }
    to_ask
        .into_iter()
        .filter(
            |want| match cache.note::<description::Record>(want.master, id) {
                Some(record) => {
                    described.by_job.insert(want.job, record);
                    false
                }
                None => true,
            },
        )
        .collect()
}

/// Copies in the remote's notes of a kind by writer `id` about these masters (an outage is one
/// warning); whether any was copied in.
pub(super) fn fetched<'m, N: crate::note::Note>(
    cache: &mut Cache,
    remote: &Remote,
    id: &str,
    masters: impl Iterator<Item = &'m str>,
) -> bool {
    let wanted: Vec<(String, String)> = masters.map(|m| (m.to_owned(), id.to_owned())).collect();
    remote
        .degrade(cache.fetch_notes::<N>(remote, &wanted))
        .is_some_and(|n| n > 0)
}

/// Whether the describer may be asked: not offline (`Err(None)`: the figures keep their
/// derived alt, with a warning), not a retired model (`Err(Some(why))`: the directives fail).
/// A deprecated model is warned about once.
fn may_ask(book: &Book<'_>, with: &Describing<'_>, count: usize) -> Result<(), Option<String>> {
    if book.config.offline {
        tracing::warn!(
            "imagegen: offline: {count} image{} not described yet keep the alt text derived from the prompt",
            if count == 1 { " is" } else { "s are" }
        );
        return Err(None);
    }
    usable_model(book, &with.who, "describer", "describe").map_err(Some)
}

/// Whether a vision model may be asked: not a retired one (the message says what to set in
/// `[table]`). A deprecated model is warned about once.
pub(super) fn usable_model(
    book: &Book<'_>,
    who: &describer::Describer<'_>,
    role: &str,
    table: &str,
) -> Result<(), String> {
    let setting = format!("set `model` in `[preprocessor.imagegen.{table}]`");
    let model = who.model;
    match models::lifecycle(who.profile.kind, model, book.today) {
        Lifecycle::Retired {
            on,
            replacement,
            provider,
        } => Err(format!(
            "the {role} `{model}` was retired by {provider} on {on} and answers no requests; use `{replacement}` instead ({setting}); what it wrote earlier keeps serving"
        )),
        lifecycle => {
            if let Some(warning) = lifecycle.warning(model, &setting) {
                tracing::warn!("imagegen: {warning}");
            }
            Ok(())
        }
    }
}

/// Keeps a new description, and shares it through the remote when there is one (`push`
/// uploads what an outage kept from it).
fn keep(cache: &mut Cache, remote: Option<&Remote>, record: &description::Record) {
    if let Err(e) = cache.store_note(record) {
        tracing::warn!("imagegen: cannot keep a description: {e}");
    } else if let Some(remote) = remote.filter(|r| r.can_write()) {
        remote.degrade(cache.upload_note(remote, record));
    }
}

/// The record of a new description.
fn record_of(
    with: &Describing<'_>,
    master: &str,
    answer: describer::Described,
) -> description::Record {
    description::Record {
        format: description::RECORD_FORMAT,
        master: master.to_owned(),
        describer: with.id.clone(),
        provider: with.who.profile.kind.as_str().to_owned(),
        model: with.who.model.to_owned(),
        instructions: description::INSTRUCTIONS_VERSION,
        alt: answer.text.alt,
        description: answer.text.description,
        model_version: answer.model_version,
        request_id: answer.request_id,
        attempts: answer.attempts,
        cost_usd: answer.cost_usd,
        created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    }
}

/// Asks the describer about every image, `max-concurrency` at a time; each result is the
/// description or the message of its failure.
fn ask_all(
    book: &Book<'_>,
    who: &describer::Describer<'_>,
    images: &[Image],
    to_ask: &[Wanted<'_>],
) -> Vec<Result<describer::Described, String>> {
    book.with_provider_env(|env| ask_with(book, who, images, to_ask, env))
}

/// [`ask_all`] in a provider environment.
fn ask_with(
    book: &Book<'_>,
    who: &describer::Describer<'_>,
    images: &[Image],
    to_ask: &[Wanted<'_>],
    env: &provider::Env<'_>,
) -> Vec<Result<describer::Described, String>> {
    let items: Vec<(usize, &Wanted<'_>)> = to_ask.iter().enumerate().collect();
    let mut results = on_workers(items, book.config.max_concurrency, |(index, want)| {
        (index, ask_one(book, who, images, want, env))
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Describes one image from the web file closest to 1024 pixels wide (a vision model sees no
/// more), with the directive's prompt and caption and the chapter's title.
fn ask_one(
    book: &Book<'_>,
    who: &describer::Describer<'_>,
    images: &[Image],
    want: &Wanted<'_>,
    env: &provider::Env<'_>,
) -> Result<describer::Described, String> {
    let (bytes, media_type) = web_file_to_read(book, images, want.job)?;
    let directive = &want.page.directives[want.directive];
    let about = About {
        prompt: &directive.prompt,
        caption: directive.attrs.caption.as_deref(),
        chapter: want.page.chapter.name,
    };
    let picture = describer::Picture {
        bytes: &bytes,
        media_type,
        master: want.master,
    };
    describer::describe(who, &picture, &about, env).map_err(|failure| failure.message)
}

/// The web file of a job's image a vision model reads: the JPEG, PNG or WebP closest to 1024
/// pixels wide (a vision model sees no more), with its media type.
pub(super) fn web_file_to_read(
    book: &Book<'_>,
    images: &[Image],
    job: usize,
) -> Result<(Vec<u8>, &'static str), String> {
    let Image::Ready(ready) = &images[job] else {
        return Err("the image is not ready".into());
    };
    let file = ready
        .manifest
        .as_ref()
        .into_iter()
        .flat_map(|m| m.fallbacks())
        .filter(|f| {
            matches!(
                f.format.media_type(),
                "image/jpeg" | "image/png" | "image/webp"
            )
        })
        .min_by_key(|f| f.width.abs_diff(1024))
        .ok_or("the image has no web file a vision model can read")?;
    let bytes = read_asset(&book.assets_dir, &file.name)
        .map_err(|e| format!("cannot read the web file `{}`: {e}", file.name))?;
    Ok((bytes, file.format.media_type()))
}
