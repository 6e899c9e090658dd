//! Running the jobs that missed the cache, several at a time.
//!
//! One queue for the whole build and `max-concurrency` workers pulling from it: there are no
//! batches, so a slow image never holds the others back, and each result is handed back the
//! moment it is ready so that it can be stored before the next one arrives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use crate::plan::{CacheKey, Request};
use crate::provider::{self, Failure, Master};

/// Generates every job with at most `concurrency` in flight, calling `done` on this thread as
/// each one finishes.
pub(crate) fn run(
    jobs: &[(CacheKey, Request)],
    concurrency: usize,
    mut done: impl FnMut(CacheKey, &Request, Result<Master, Failure>),
) {
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, jobs.len().max(1)) {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, request)) = jobs.get(i) else {
                        break;
                    };
                    if sender.send((i, provider::generate(request))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (i, result) in receiver {
            let (key, request) = &jobs[i];
            done(*key, request, result);
        }
    });
}
