//! The facts `resolve` decides on, gathered at the edge: which image of each job's chain the
//! local cache holds, and which the remote holds (a build downloads them; `plan` only asks).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Book;
use super::image::{self, Ready};
use super::jobs::Job;
use super::resolve::Facts;
use crate::cache::key::CacheKey;
use crate::cache::{Cache, Entry};
use crate::error::Result;
use crate::progress::plural;
use crate::request::Chain;
use crate::storage::Remote;

/// Each job's image in the local cache: the link of the chain it belongs to, and the master
/// with its web files. An image made by a fallback profile serves the directive as well as its
/// own, except a placeholder: it only stands in until the directive's provider answers. A
/// master removed by hand (the index still names it) counts as missing unless its web files
/// are all there. Forced jobs (`regenerate`) are not looked up.
/// What the head start already found (see `prefetch`) is taken from `known`.
pub(crate) fn local(
    book: &Book<'_>,
    cache: &mut Cache,
    jobs: &[Job],
    force: &BTreeSet<CacheKey>,
    known: &mut HashMap<CacheKey, Option<(usize, Ready)>>,
) -> Result<Vec<Option<(usize, Ready)>>> {
    let mut found = Vec::with_capacity(jobs.len());
    for job in jobs {
        found.push(if force.contains(&job.key) {
            None
        } else if let Some(known) = known.remove(&job.key) {
            known
        } else {
            local_one(book, cache, &job.chain)?
        });
    }
    Ok(found)
}

/// One job's image in the local cache.
pub(crate) fn local_one(
    book: &Book<'_>,
    cache: &mut Cache,
    chain: &Chain,
) -> Result<Option<(usize, Ready)>> {
    for (link, (key, request)) in chain.iter().enumerate() {
        if link > 0 && !request.kind.is_model() {
            continue;
        }
        let tier = image::tier_of(request);
        if let Some(entry) = cache.lookup(tier, *key)? {
            let ready = image::ready(book, cache, tier, entry, request);
            if ready.manifest.is_some() || cache.master_path(tier, &ready.entry).exists() {
                return Ok(Some((link, ready)));
            }
        }
    }
    Ok(None)
}

/// Whether the remote may serve or take something: a job to regenerate (its new image is
/// uploaded), or a job missing here that a model would make. A missing placeholder is drawn
/// again, never fetched.
pub(crate) fn needs_remote(
    jobs: &[Job],
    local: &[Option<(usize, Ready)>],
    force: &BTreeSet<CacheKey>,
) -> bool {
    jobs.iter().zip(local).any(|(job, local)| {
        local.is_none()
            && (force.contains(&job.key) || job.chain.iter().any(|(_, r)| r.kind.is_model()))
    })
}

/// The keys worth asking the remote for: every model link of the jobs missing here.
fn wanted(
    jobs: &[Job],
    local: &[Option<(usize, Ready)>],
    force: &BTreeSet<CacheKey>,
) -> Vec<CacheKey> {
    jobs.iter()
        .zip(local)
        .filter(|(job, local)| local.is_none() && !force.contains(&job.key))
        .flat_map(|(job, _)| job.chain.iter())
        .filter(|(_, request)| request.kind.is_model())
        .map(|(key, _)| *key)
        .collect()
}

/// Copies from the remote the images of the jobs missing here (for the build).
pub(crate) fn fetch(
    cache: &mut Cache,
    remote: Option<&Remote>,
    jobs: &[Job],
    local: &[Option<(usize, Ready)>],
    force: &BTreeSet<CacheKey>,
) -> Result<BTreeMap<CacheKey, Entry>> {
    let Some(remote) = remote.filter(|r| r.is_up()) else {
        return Ok(BTreeMap::new());
    };
    let fetched = cache.fetch_remote(remote, &wanted(jobs, local, force))?;
    if !fetched.is_empty() {
        tracing::info!(
            "imagegen: copied {} image{} from `{}`",
            fetched.len(),
            plural(fetched.len()),
            remote.label()
        );
    }
    Ok(fetched)
}

/// Which images of the jobs missing here the remote holds, without downloading them (for
/// `plan`).
pub(crate) fn check(
    cache: &Cache,
    remote: Option<&Remote>,
    jobs: &[Job],
    local: &[Option<(usize, Ready)>],
) -> BTreeSet<CacheKey> {
    let Some(remote) = remote else {
        return BTreeSet::new();
    };
    let keys = wanted(jobs, local, &BTreeSet::new());
    remote
        .degrade(cache.remote_has(remote, &keys))
        .unwrap_or_default()
}

/// The facts of every job, from the local images and what the remote holds.
pub(crate) fn facts(
    jobs: &[Job],
    local: &[Option<(usize, Ready)>],
    force: &BTreeSet<CacheKey>,
    in_remote: impl Fn(&CacheKey) -> bool,
) -> Vec<Facts> {
    jobs.iter()
        .zip(local)
        .map(|(job, local)| Facts {
            local: local.as_ref().map(|(link, _)| *link),
            remote: if local.is_some() || force.contains(&job.key) {
                None
            } else {
                job.chain
                    .iter()
                    .position(|(key, request)| request.kind.is_model() && in_remote(key))
            },
        })
        .collect()
}
