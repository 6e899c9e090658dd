//! The build's rounds: each round's images copied from the remote and generated, and the
//! masters of referenced images read back for the directives planned after them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::generate::{self, Summary};
use super::image::{self, Image, Ready};
use super::jobs::Job;
use super::resolve::Resolution;
use super::rounds::{Asked, Decided, Mode};
use super::{lookup, publish, references};
use crate::cache::key::CacheKey;
use crate::cache::{Cache, Entry};
use crate::error::Result;
use crate::request::RefImage;

/// The build's [`Mode`]: what its rounds made, and what they carry from one to the next.
pub(crate) struct Make<'f> {
    force: &'f BTreeSet<CacheKey>,
    /// The head start's lookups, taken by the first round.
    known: HashMap<CacheKey, Option<(usize, Ready)>>,
    /// Whether a round tried to set the remote up (when it failed, one warning is enough).
    remote_tried: bool,
    /// The web files the remote holds.
    pub(crate) published: BTreeSet<String>,
    /// Every job's image, in the order of `plan.jobs`.
    pub(crate) images: Vec<Image>,
    /// A referenced master, read, checked and held once however many directives use it.
    masters: HashMap<usize, std::result::Result<RefImage, String>>,
    pub(crate) summary: Summary,
    /// When the first round was resolved (for the timing line).
    pub(crate) resolved: Option<Instant>,
}

impl<'f> Make<'f> {
    pub(crate) fn new(
        force: &'f BTreeSet<CacheKey>,
        known: HashMap<CacheKey, Option<(usize, Ready)>>,
    ) -> Make<'f> {
        Make {
            force,
            known,
            remote_tried: false,
            published: BTreeSet::new(),
            images: Vec::new(),
            masters: HashMap::new(),
            summary: Summary::default(),
            resolved: None,
        }
    }
}

impl Mode for Make<'_> {
    /// The images copied in from the remote.
    type Held = BTreeMap<CacheKey, Entry>;

    fn holds(held: &Self::Held, key: &CacheKey) -> bool {
        held.contains_key(key)
    }

    fn force(&self) -> &BTreeSet<CacheKey> {
        self.force
    }

    fn known(&mut self) -> HashMap<CacheKey, Option<(usize, Ready)>> {
        std::mem::take(&mut self.known)
    }

    fn unused(&mut self, known: HashMap<CacheKey, Option<(usize, Ready)>>) {
        self.known = known;
    }

    fn open_round(&mut self, cache: &mut Cache, jobs: &[Job]) {
        // The index was let go before the last round generated (no-op in the first round);
        // a round whose every image the head start found needs no index.
        let found = |job: &Job| !self.force.contains(&job.key) && self.known.contains_key(&job.key);
        if !jobs.iter().all(found) {
            cache.reopen_index();
        }
    }

    /// Sets the remote up the first time a round has something to fetch, publish or upload
    /// (uploading what earlier builds left pending), then copies in the images of the jobs
    /// missing here.
    fn remote(&mut self, asked: Asked<'_, '_>) -> Result<Self::Held> {
        let Asked {
            book,
            cache,
            jobs,
            local,
            remote,
        } = asked;
        if book.public_url().is_some() {
            // What is published is in the index (a round the head start served skipped it).
            cache.reopen_index();
        }
        self.published.extend(publish::known(book, cache, local));
        if remote.is_none()
            && !self.remote_tried
            && book.config.storage.is_some()
            && (lookup::needs_remote(jobs, local, self.force)
                || publish::has_unpublished(book, local, &self.published)
                || cache.has_pending())
        {
            *remote = book.remote_if(|| true);
            self.remote_tried = true;
            publish::upload_pending(cache, remote.as_ref());
        }
        lookup::fetch(cache, remote.as_ref(), jobs, local, self.force)
    }

    fn lookups_done(&mut self, cache: &mut Cache) {
        cache.close_index();
    }

    fn warn(&mut self, resolution: &Resolution) {
        resolution.warn();
    }

    fn act(&mut self, decided: Decided<'_, '_, Self::Held>) -> Result<()> {
        self.resolved.get_or_insert_with(Instant::now);
        let Decided {
            book,
            cache,
            jobs,
            resolution,
            local,
            remote,
            held: fetched,
        } = decided;
        let mut made = image::resolved(book, cache, jobs, resolution, local, &fetched);
        let summary = generate::run(book, cache, remote, jobs, resolution, self.force, &mut made);
        self.summary.merge(summary);
        self.images.extend(made);
        Ok(())
    }

    fn read_references(&mut self, cache: &Cache, wanted: &HashSet<usize>) {
        for (job, image) in self.images.iter().enumerate() {
            if let Image::Ready(ready) = image
                && wanted.contains(&job)
            {
                self.masters
                    .entry(job)
                    .or_insert_with(|| references::master(cache, ready.tier, &ready.entry));
            }
        }
    }

    fn reference(&self, job: usize) -> Option<std::result::Result<RefImage, String>> {
        match self.images.get(job)? {
            Image::Ready(_) => self.masters.get(&job).cloned(),
            Image::Failed(message) => Some(Err(message.clone())),
            Image::ToMake => None,
        }
    }

    fn failed(&self, job: usize) -> bool {
        matches!(self.images.get(job), Some(Image::Failed(_)))
    }

    fn master_of(&self, cache: &Cache, job: usize) -> Option<RefImage> {
        match self.images.get(job)? {
            Image::Ready(ready) => Some(references::unread(cache, ready.tier, &ready.entry)),
            _ => None,
        }
    }
}
