//! The generation stage with batches (see `batch::hook`): a build leaves the images of a pending
//! batch alone; `batch submit` notes what it would generate; `batch collect` stores what
//! batches made.

use std::collections::BTreeSet;

use super::queue::{Got, Made};
use super::{Summary, image_of};
use crate::batch::hook::{Collect, Submission, Submit};
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::pipeline::Book;
use crate::pipeline::image::Image;
use crate::pipeline::jobs::Job;
use crate::request::Chain;
use crate::storage::Remote;

/// Which job each queued chain is, and the keys made again.
pub(super) struct Queued<'a> {
    pub(super) jobs: &'a [Job],
    pub(super) queued: Vec<usize>,
    pub(super) force: &'a BTreeSet<CacheKey>,
}

impl<'a> Queued<'a> {
    pub(super) fn new(jobs: &'a [Job], queued: Vec<usize>, force: &'a BTreeSet<CacheKey>) -> Self {
        Queued {
            jobs,
            queued,
            force,
        }
    }
}

/// What is left to generate now, and for which jobs: in a build, all but the images of a
/// pending batch; for the `batch` commands nothing (they submit or store instead).
pub(super) fn divert(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    queued: Queued<'_>,
    chains: Vec<Chain>,
    images: &mut [Image],
    summary: &mut Summary,
) -> (Vec<usize>, Vec<Chain>) {
    use crate::batch::hook::Batching;
    match &book.batching {
        Batching::Build => return leave_pending(book, queued.queued, chains, images),
        Batching::Submit(gather) => submit(
            book,
            remote,
            &queued.queued,
            &chains,
            queued.force,
            images,
            gather,
        ),
        Batching::Collect(made) => {
            collect(book, cache, remote, &queued, &chains, images, summary, made);
        }
    }
    (Vec::new(), Vec::new())
}

/// Leaves out the chains whose image is in a pending batch: their directives fail with a note
/// that names the batch, and follow `on-error`. The batch files are read only when something
/// is to be generated.
fn leave_pending(
    book: &Book<'_>,
    queued: Vec<usize>,
    chains: Vec<Chain>,
    images: &mut [Image],
) -> (Vec<usize>, Vec<Chain>) {
    if chains.is_empty() {
        return (queued, chains);
    }
    let pending = book.pending_batches();
    if pending.is_empty() {
        return (queued, chains);
    }
    queued
        .into_iter()
        .zip(chains)
        .filter(|(job, chain)| {
            let Some(batch) = chain.iter().find_map(|(key, _)| pending.get(key)) else {
                return true;
            };
            images[*job] = Image::Failed(format!(
                "its image is in {batch}, not collected yet; run `mdbook-imagegen batch collect` (`--wait` to wait for it)"
            ));
            false
        })
        .unzip()
}

/// Notes each image the build would generate as a submission (its first link: fallbacks are
/// for failed requests, which a batch retries by a later `submit`), or why it is left out. Its
/// directive gets no image from this build.
fn submit(
    book: &Book<'_>,
    remote: Option<&Remote>,
    queued: &[usize],
    chains: &[Chain],
    force: &BTreeSet<CacheKey>,
    images: &mut [Image],
    submit: &Submit,
) {
    let pending = book.pending_batches();
    let firsts: Vec<CacheKey> = chains.iter().map(|c| c[0].0).collect();
    let claimed = remote
        .map(|remote| super::claims::live(remote, &firsts))
        .unwrap_or_default();
    let mut items = submit.items.lock().unwrap_or_else(|e| e.into_inner());
    let mut skipped = submit.skipped.lock().unwrap_or_else(|e| e.into_inner());
    for (&job, chain) in queued.iter().zip(chains) {
        let (key, request) = &chain[0];
        let profile = &book.config.profiles[&request.profile];
        if !request.kind.is_model() {
            // A placeholder costs nothing: a build draws it.
            images[job] = Image::Failed("drawn by a build".to_owned());
            continue;
        }
        let why_not = if let Some(batch) = pending.get(key) {
            Some(format!("it is in {batch} already"))
        } else if claimed.contains_key(key) {
            Some("another machine is generating it (its claim is live)".to_owned())
        } else {
            crate::models::batch::batchable(request.kind, &request.model, profile.batch)
                .err()
                .map(|why| format!("not sent in a batch: {why}"))
        };
        images[job] = Image::Failed(match why_not {
            Some(why) => {
                skipped.push((*key, why.clone()));
                why
            }
            None => {
                items.push(Submission {
                    key: *key,
                    request: request.clone(),
                    again: force.contains(key),
                });
                "sent in a batch".to_owned()
            }
        });
    }
}

/// Stores the image a batch made of each chain's first link; the others get none (a collect
/// generates nothing).
#[allow(clippy::too_many_arguments)]
fn collect(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    queued: &Queued<'_>,
    chains: &[Chain],
    images: &mut [Image],
    summary: &mut Summary,
    collect: &Collect,
) {
    for (&job, chain) in queued.queued.iter().zip(chains) {
        let (key, request) = &chain[0];
        let Some(master) = collect.take(*key) else {
            images[job] = Image::Failed("no batch made it".to_owned());
            continue;
        };
        let result = master.map(|mut master| {
            let profile = &book.config.profiles[&request.profile];
            master.provenance.sent_size = Some(crate::provider::batch::sent_size(request, profile));
            Got::Made(Made {
                key: *key,
                request,
                master,
            })
        });
        let again = queued.force.contains(&queued.jobs[job].key) || queued.force.contains(key);
        images[job] = match result {
            Ok(got) => image_of(book, cache, remote, summary, Ok(got), again, None),
            Err(message) => Image::Failed(message),
        };
        match &images[job] {
            Image::Ready(_) => {
                let mut stored = collect.stored.lock().unwrap_or_else(|e| e.into_inner());
                stored.insert(*key);
            }
            Image::Failed(message) => {
                let mut unstored = collect.unstored.lock().unwrap_or_else(|e| e.into_inner());
                unstored.insert(*key, message.clone());
            }
            _ => {}
        }
    }
}
