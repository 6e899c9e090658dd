//! Stage 4, generate: the jobs resolve sent to a provider, several at a time; each new master
//! is stored the moment it arrives (and uploaded to the remote cache when there is one).

mod batched;
pub(crate) mod claims;
mod queue;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::image::{self, Image};
use super::jobs::Job;
use super::resolve::Resolution;
use super::{Book, prompt_start};
use crate::cache::key::CacheKey;
use crate::cache::{Cache, Entry, Tier};
use crate::config::Mode;
use crate::progress::{Progress, plural};
use crate::provider;
use crate::request::{Chain, Request};
use crate::storage::Remote;
use queue::{Flight, Got, Made};

/// Generates every job resolved to a generation, and puts its image (or failure) in `images`.
pub(crate) fn run(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    jobs: &[Job],
    resolution: &Resolution,
    force: &BTreeSet<CacheKey>,
    images: &mut [Image],
) -> Summary {
    let mut summary = Summary::of(images);
    let (queued, chains): (Vec<usize>, Vec<Chain>) = resolution
        .decisions
        .iter()
        .enumerate()
        .filter_map(|(i, decision)| Some((i, decision.to_generate(&jobs[i])?)))
        // An image sent (a dark twin's light image) is read now, only when it is sent.
        .filter_map(
            |(i, mut chain)| match crate::pipeline::references::read_unread(&mut chain) {
                Ok(()) => Some((i, chain)),
                Err(message) => {
                    images[i] =
                        Image::Failed(format!("the image it edits cannot be sent: {message}"));
                    None
                }
            },
        )
        .unzip();
    let queued = batched::Queued::new(jobs, queued, force);
    let (queued, chains) =
        batched::divert(book, cache, remote, queued, chains, images, &mut summary);
    if chains.is_empty() {
        return summary;
    }
    let mut progress = Progress::start(chains.len(), book.config.max_concurrency);
    let single = crate::cache::SingleFlight::new(&book.cache_root(), book.flight_wait());
    let forced = |key: &CacheKey| force.contains(key);
    let claims = remote
        .zip(book.config.storage.as_ref())
        .map(|(remote, storage)| claims::Claims::new(remote, storage, book.flight_wait()));
    let flight = Flight {
        single: &single,
        forced: &forced,
        claims: claims.as_ref(),
    };
    let uploader = Uploader::new(remote);
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // However the stage ends (a panic included), the threads below are told to end.
        let _stop = Stop(&uploader, &finished);
        if let Some(claims) = claims.as_ref() {
            scope.spawn(|| claims.renew_until(&finished));
        }
        let uploading = uploader.start(scope);
        book.with_provider_env(|env| {
            queue::run(
                &chains,
                &groups(&chains),
                book.config.max_concurrency,
                env,
                Some(&flight),
                &mut progress,
                |i, result, claim| {
                    let job = queued[i];
                    let again = force.contains(&jobs[job].key);
                    let upload = claim.map(|claim| (claim, &uploader));
                    images[job] =
                        image_of(book, cache, remote, &mut summary, result, again, upload);
                },
            )
        });
        // Claims are renewed until the last image made under one is uploaded.
        uploader.finish();
        for thread in uploading {
            let _ = thread.join();
        }
    });
    summary
}

/// Ends the uploader and renewer threads when dropped.
struct Stop<'u, 'r, 'c>(&'u Uploader<'r, 'c>, &'u std::sync::atomic::AtomicBool);

impl Drop for Stop<'_, '_, '_> {
    fn drop(&mut self) {
        self.0.finish();
        self.1.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Uploads the images made under a claim on threads of their own, and lets each claim go once
/// its image is in the store: the machines waiting for it need it soon, and the build goes on
/// storing the next images meanwhile. The build waits for them at the end of the stage.
struct Uploader<'r, 'c> {
    remote: Option<&'r Remote>,
    sender: std::sync::Mutex<Option<std::sync::mpsc::Sender<Upload<'c>>>>,
    receiver: std::sync::Mutex<std::sync::mpsc::Receiver<Upload<'c>>>,
}

/// An image to upload, and its claim to let go after.
type Upload<'c> = (crate::cache::UploadJob, claims::ClaimGuard<'c>);

/// How many images are uploaded at once.
const UPLOADERS: usize = 4;

impl<'r, 'c> Uploader<'r, 'c> {
    fn new(remote: Option<&'r Remote>) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel();
        Uploader {
            remote,
            sender: std::sync::Mutex::new(Some(sender)),
            receiver: std::sync::Mutex::new(receiver),
        }
    }

    fn start<'s, 'e>(
        &'s self,
        scope: &'s std::thread::Scope<'s, 'e>,
    ) -> Vec<std::thread::ScopedJoinHandle<'s, ()>> {
        let Some(remote) = self.remote else {
            return Vec::new();
        };
        (0..UPLOADERS)
            .map(|_| {
                scope.spawn(move || {
                    loop {
                        let next = self
                            .receiver
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .recv();
                        let Ok((job, claim)) = next else {
                            break;
                        };
                        remote.degrade(crate::cache::upload(remote, &job));
                        drop(claim);
                    }
                })
            })
            .collect()
    }

    /// Uploads `job`, then lets `claim` go; `false` (and `claim` let go at once) when there is
    /// no remote to upload to.
    fn send(&self, job: crate::cache::UploadJob, claim: claims::ClaimGuard<'c>) -> bool {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        match (self.remote, sender.as_ref()) {
            (Some(_), Some(sender)) => sender.send((job, claim)).is_ok(),
            _ => false,
        }
    }

    /// No more uploads: the threads end once the last is done.
    fn finish(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The queue's groups: the candidates of one directive's `variants` together (their first
/// requests differ only in the candidate, and their provider takes `n`), every other job alone.
fn groups(chains: &[Chain]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_request: std::collections::HashMap<CacheKey, usize> = Default::default();
    for (i, chain) in chains.iter().enumerate() {
        let request = &chain[0].1;
        if !request.kind.takes_n(&request.model) {
            groups.push(vec![i]);
            continue;
        }
        let mut first = request.clone();
        first.candidate = 0;
        first.seed = request
            .seed
            .map(|seed| seed.wrapping_sub(u64::from(request.candidate)));
        let same = crate::request::cache_key(&first);
        match by_request.get(&same) {
            Some(&g) if groups[g].len() < crate::directive::MAX_VARIANTS as usize => {
                groups[g].push(i);
            }
            _ => {
                by_request.insert(same, groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// Stores a new master, and uploads it when the book has a remote cache. With `again`
/// (`regenerate`), the new image replaces the key's other records, here and in the remote.
/// Otherwise, when another machine made this image first (two CI jobs at once, without claims),
/// its image wins here too, as on every machine; an image made under a claim had no rival.
fn store<'c>(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    made: &Made<'_>,
    again: bool,
    claimed: Option<(claims::ClaimGuard<'c>, &Uploader<'_, 'c>)>,
) -> Result<(Tier, Entry), String> {
    tracing::debug!(
        "generated {:?} with `{}` in {:.1?}",
        made.key,
        made.request.profile,
        made.master.elapsed
    );
    let tier = image::tier_of(made.request);
    let entry = cache
        .store(tier, made.key, made.request, &made.master)
        .and_then(|entry| {
            if again {
                cache.retire_others(tier, made.key, &entry)?;
            }
            Ok(entry)
        })
        .map_err(|e| e.to_string())?;
    let Some(remote) = remote.filter(|_| tier == Tier::Committed) else {
        return Ok((tier, entry));
    };
    if let Some((claim, uploader)) = claimed.filter(|(claim, _)| claim.held()) {
        // Made under a claim still held: no rival to look for, and the upload goes on
        // meanwhile.
        if may_upload(book, cache, remote, &entry) {
            uploader.send(cache.upload_job(&entry), claim);
        }
        return Ok((tier, entry));
    }
    if !upload(book, cache, remote, &entry) {
        return Ok((tier, entry));
    }
    if again {
        if let Err(e) = cache.retire_remote(remote, made.key, &entry) {
            tracing::warn!(
                "imagegen: {e}; other machines keep the old image of {:?} until its record is deleted from the remote",
                prompt_start(&made.request.prompt)
            );
        }
    } else if let Ok(found) = cache.fetch_remote(remote, &[made.key])
        && let Some(winner) = found.get(&made.key)
        && winner.record != entry.record
    {
        return Ok((tier, winner.clone()));
    }
    Ok((tier, entry))
}

/// What a finished job gives its directive: the image found, copied in or made (and stored), or
/// the failure; counted in the summary.
fn image_of<'c>(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: Option<&Remote>,
    summary: &mut Summary,
    result: Result<Got<'_>, provider::Failure>,
    again: bool,
    upload: Option<(claims::ClaimGuard<'c>, &Uploader<'_, 'c>)>,
) -> Image {
    match result {
        Ok(Got::Found(request, link_key, entry)) => {
            // Another build of the book stored it while this one waited.
            let tier = image::tier_of(request);
            cache.note_changed(tier, link_key);
            Image::Ready(image::ready(book, cache, tier, entry, request))
        }
        Ok(Got::Stored(request, image)) => {
            // Another machine made it while this build waited for its claim.
            summary.reused += 1;
            copy_in(book, cache, request, &image)
        }
        Ok(Got::Made(made)) => match store(book, cache, remote, &made, again, upload) {
            Ok((tier, entry)) => {
                summary.add(made.request, &made.master);
                Image::Ready(image::ready(book, cache, tier, entry, made.request))
            }
            Err(message) => Image::Failed(message),
        },
        Err(failure) => {
            summary.failed += 1;
            Image::Failed(failure.message)
        }
    }
}

/// Copies in the image another machine stored in the remote cache while this build waited.
fn copy_in(
    book: &Book<'_>,
    cache: &mut Cache,
    request: &Request,
    image: &crate::cache::Downloaded,
) -> Image {
    match cache.copy_in(image) {
        Ok(entry) => Image::Ready(image::ready(book, cache, Tier::Committed, entry, request)),
        Err(e) => Image::Failed(e.to_string()),
    }
}

/// Uploads a new image to the remote; until that succeeds, the journal keeps it for the next
/// build. Returns whether it is in the remote now.
fn upload(book: &Book<'_>, cache: &Cache, remote: &Remote, entry: &Entry) -> bool {
    may_upload(book, cache, remote, entry)
        && remote.degrade(cache.upload_entry(remote, entry)).is_some()
}

/// Whether a new image is to be uploaded now; if the book uploads at all, the journal keeps it
/// from now on until it is.
fn may_upload(book: &Book<'_>, cache: &Cache, remote: &Remote, entry: &Entry) -> bool {
    if book
        .config
        .storage
        .as_ref()
        .is_none_or(|s| s.mode != Mode::ReadWrite)
    {
        return false;
    }
    if let Err(e) = cache.mark_pending(entry) {
        tracing::warn!("{e}");
    }
    remote.can_write()
}

/// What one build did, for the closing summary.
#[derive(Default)]
pub(crate) struct Summary {
    /// Images served from a cache.
    reused: usize,
    generated: usize,
    /// Masters whose web files were made, and how long that took.
    derived: (usize, Duration),
    failed: usize,
    cost: f64,
    /// Images and cost by profile and model.
    by_profile: BTreeMap<(String, String), (usize, f64)>,
}

impl Summary {
    /// A summary that counts the images resolve already settled.
    fn of(images: &[Image]) -> Summary {
        Summary {
            reused: images
                .iter()
                .filter(|i| matches!(i, Image::Ready(_)))
                .count(),
            failed: images
                .iter()
                .filter(|i| matches!(i, Image::Failed(_)))
                .count(),
            ..Summary::default()
        }
    }

    fn add(&mut self, request: &Request, master: &provider::Master) {
        self.generated += 1;
        self.cost += master.cost_usd;
        let entry = self
            .by_profile
            .entry((request.profile.clone(), request.model.clone()))
            .or_default();
        entry.0 += 1;
        entry.1 += master.cost_usd;
    }

    /// Adds a later round's counts to this one's.
    pub(crate) fn merge(&mut self, other: Summary) {
        self.reused += other.reused;
        self.generated += other.generated;
        self.failed += other.failed;
        self.cost += other.cost;
        for (who, (count, cost)) in other.by_profile {
            let entry = self.by_profile.entry(who).or_default();
            entry.0 += count;
            entry.1 += cost;
        }
    }

    /// Notes how many masters got web files, and how long it took.
    pub(crate) fn derived(&mut self, derived: (usize, Duration)) {
        self.derived = derived;
    }

    /// Prints the closing summary, unless nothing was generated or failed: a build that
    /// changed nothing says nothing.
    pub(crate) fn report(&self, elapsed: Duration) {
        if self.generated == 0 && self.failed == 0 {
            if self.derived.0 > 0 {
                tracing::info!(
                    "imagegen: made web images for {} image{} in {:.1}s",
                    self.derived.0,
                    plural(self.derived.0),
                    self.derived.1.as_secs_f64()
                );
            }
            return;
        }
        let mut line = format!(
            "imagegen: generated {} image{}, reused {}",
            self.generated,
            plural(self.generated),
            self.reused
        );
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        line.push_str(&format!(
            " in {:.1}s; estimated cost ${:.2}",
            elapsed.as_secs_f64(),
            self.cost
        ));
        tracing::info!("{line}");
        if self.by_profile.len() > 1 {
            for ((profile, model), (count, cost)) in &self.by_profile {
                tracing::info!(
                    "  `{profile}` ({model}): {count} image{}, ${cost:.2}",
                    plural(*count)
                );
            }
        }
    }
}
