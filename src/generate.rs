//! Running the jobs that missed the cache, several at a time.
//!
//! One queue for the whole build and `max-concurrency` workers pulling from it: there are no
//! batches, so a slow image never holds the others back, and each result is handed back the
//! moment it is ready so that it can be stored before the next one arrives. A job is a chain of
//! requests: its own profile first, then the fallback profiles, tried in order when a request
//! fails for a reason that is not the prompt (rate limits or outages that outlast the retries).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::cache::{Entered, Entry, KeyLock, SingleFlight};
use crate::plan::{CacheKey, Chain, Request};
use crate::progress::Progress;
use crate::provider::{self, Env, Failure, Master};

/// A finished job: the link of its chain that produced the image, with the image.
pub(crate) struct Made<'a> {
    pub(crate) key: CacheKey,
    pub(crate) request: &'a Request,
    pub(crate) master: Master,
}

/// What a job got.
pub(crate) enum Got<'a> {
    /// This build generated the image.
    Made(Made<'a>),
    /// Another build of the book stored it while this one waited: the link and its entry.
    Found(&'a Request, CacheKey, Entry),
}

/// How jobs coordinate with other builds of the book: the cache's single flight, and the keys
/// that must be generated again even when another build stored one (`regenerate`).
pub(crate) struct Flight<'f> {
    pub(crate) single: &'f SingleFlight,
    pub(crate) forced: &'f (dyn Fn(&CacheKey) -> bool + Sync),
}

/// Generates every job with at most `concurrency` in flight, calling `done` on this thread with
/// the job's index as each one finishes. Each key's lock (see `cache::SingleFlight`) is held
/// until `done` has returned, so that the image is stored before another build looks.
pub(crate) fn run<'a>(
    jobs: &'a [Chain],
    concurrency: usize,
    env: &Env<'_>,
    flight: Option<&Flight<'_>>,
    progress: &mut Progress,
    mut done: impl FnMut(usize, Result<Got<'a>, Failure>),
) {
    let next = AtomicUsize::new(0);
    let in_flight = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, jobs.len().max(1)) {
            let sender = sender.clone();
            let (next, in_flight) = (&next, &in_flight);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chain) = jobs.get(i) else {
                        break;
                    };
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (result, lock) = match flight {
                        None => (generate_chain(chain, env).map(Got::Made), None),
                        Some(flight) => {
                            match flight.single.enter(chain, (flight.forced)(&chain[0].0)) {
                                Entered::Found(link, entry) => {
                                    let (key, request) = &chain[link];
                                    (Ok(Got::Found(request, *key, entry)), None)
                                }
                                Entered::Generate(lock) => {
                                    (generate_chain(chain, env).map(Got::Made), lock)
                                }
                            }
                        }
                    };
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    if sender.send((i, result, lock)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        loop {
            match receiver.recv_timeout(Duration::from_millis(500)) {
                Ok((i, result, lock)) => {
                    progress.finished(result.is_ok(), in_flight.load(Ordering::Relaxed));
                    done(i, result);
                    drop::<Option<KeyLock>>(lock);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress.tick(in_flight.load(Ordering::Relaxed));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
}

/// Tries each request of a chain in turn until one gives an image or fails for good.
fn generate_chain<'a>(chain: &'a Chain, env: &Env<'_>) -> Result<Made<'a>, Failure> {
    let mut earlier: Vec<String> = Vec::new();
    for (link, (key, request)) in chain.iter().enumerate() {
        match provider::generate(request, env) {
            Ok(master) => {
                if link > 0 {
                    tracing::warn!(
                        "`{}` made the image that `{}` could not",
                        request.profile,
                        chain[0].1.profile
                    );
                }
                return Ok(Made {
                    key: *key,
                    request,
                    master,
                });
            }
            Err(failure) if failure.may_fall_back && link + 1 < chain.len() => {
                tracing::warn!(
                    "{}; falling back to `{}`",
                    failure.message,
                    chain[link + 1].1.profile
                );
                earlier.push(failure.message);
            }
            Err(mut failure) => {
                if !earlier.is_empty() {
                    earlier.push(failure.message);
                    failure.message = earlier.join("; then ");
                }
                return Err(failure);
            }
        }
    }
    unreachable!("a chain is never empty")
}

#[cfg(test)]
mod tests;
