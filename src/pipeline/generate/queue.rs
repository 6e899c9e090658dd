//! Running the jobs that missed the cache, several at a time.
//!
//! One queue for the whole build and `max-concurrency` workers pulling from it: there are no
//! batches, so a slow image never holds the others back, and each result is handed back the
//! moment it is ready so that it can be stored before the next one arrives. A job is a chain of
//! requests: its own profile first, then the fallback profiles, tried in order when a request
//! fails for a reason that is not the prompt (rate limits or outages that outlast the retries).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::claims::{self, ClaimGuard, Claims, Polled, Waiting};
use crate::cache::key::CacheKey;
use crate::cache::{Downloaded, Entered, Entry, KeyLock, SingleFlight};
use crate::progress::Progress;
use crate::provider::{self, Env, Failure, Master};
use crate::request::{Chain, Request};

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
    /// Another machine stored it in the remote cache while this one waited for its claim: the
    /// link, and the image as read from the store.
    Stored(&'a Request, Box<Downloaded>),
}

/// How jobs coordinate with other builds of the book: the cache's single flight, the claims
/// in the remote cache, and the keys that must be generated again even when another build
/// stored one (`regenerate`: those take no claim).
pub(crate) struct Flight<'f> {
    pub(crate) single: &'f SingleFlight,
    pub(crate) forced: &'f (dyn Fn(&CacheKey) -> bool + Sync),
    pub(crate) claims: Option<&'f Claims<'f>>,
}

/// What a job holds until its image is stored (and uploaded): this machine's lock on the key,
/// and the claim in the remote cache.
#[derive(Default)]
struct Hold<'f> {
    lock: Option<KeyLock>,
    claim: Option<ClaimGuard<'f>>,
}

/// Generates every job with at most `concurrency` in flight, calling `done` on this thread with
/// the job's index as each one finishes. Each key's lock (see `cache::SingleFlight`) is held
/// until `done` has returned, so that the image is stored before another build of this machine
/// looks; its claim (see `claims`) is handed to `done`, which lets it go once the image is
/// uploaded (dropping it lets it go at once).
///
/// `groups` lists the jobs as the queue takes them: most alone, and the candidates of one
/// directive's `variants` together, asked for in one request where the provider takes `n`.
/// A job another machine has claimed is set aside, and looked at again once every group is
/// taken, so that waiting for it never holds the others back.
pub(crate) fn run<'a, 'f>(
    jobs: &'a [Chain],
    groups: &[Vec<usize>],
    concurrency: usize,
    env: &Env<'_>,
    flight: Option<&'f Flight<'f>>,
    progress: &mut Progress,
    mut done: impl FnMut(usize, Result<Got<'a>, Failure>, Option<ClaimGuard<'f>>),
) {
    // Machines that share a store start at different places in the queue, so that builds
    // started together each generate their own part of it rather than wait for one another.
    let first = match flight.and_then(|f| f.claims) {
        Some(_) if !groups.is_empty() => fastrand::usize(..groups.len()),
        _ => 0,
    };
    let queue = Queue {
        jobs,
        groups,
        first,
        env,
        flight,
        next: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        waiting: Mutex::new(Vec::new()),
    };
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, groups.len().max(1)) {
            let sender = sender.clone();
            let queue = &queue;
            scope.spawn(move || queue.work(&sender));
        }
        drop(sender);
        loop {
            match receiver.recv_timeout(Duration::from_millis(500)) {
                Ok((i, result, hold)) => {
                    let result: Result<Got<'a>, Failure> = result;
                    let Hold { lock, claim } = hold;
                    progress.finished(result.is_ok(), queue.in_flight.load(Ordering::Relaxed));
                    done(i, result, claim);
                    drop::<Option<KeyLock>>(lock);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress.tick(queue.in_flight.load(Ordering::Relaxed));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
}

/// One job's result, and what it holds until `done` has stored it.
type Finished<'a, 'f> = (usize, Result<Got<'a>, Failure>, Hold<'f>);

/// The queue the workers share.
struct Queue<'q, 'a, 'f> {
    jobs: &'a [Chain],
    groups: &'q [Vec<usize>],
    /// The group taken first.
    first: usize,
    env: &'q Env<'q>,
    flight: Option<&'f Flight<'f>>,
    /// The next group to take.
    next: AtomicUsize,
    in_flight: AtomicUsize,
    /// The jobs another machine holds, set aside.
    waiting: Mutex<Vec<(usize, Waiting)>>,
}

/// What a worker does next once every group is taken.
enum Turn {
    /// Look at this waiting job again.
    Due(usize, Waiting),
    /// Nothing due yet: sleep this long.
    Sleep(Duration),
    /// Nothing left.
    Done,
}

impl<'a, 'f> Queue<'_, 'a, 'f> {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<(usize, Waiting)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker: the groups first, then the jobs set aside.
    fn work(&self, sender: &mpsc::Sender<Finished<'a, 'f>>) {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let group =
                (n < self.groups.len()).then(|| &self.groups[(self.first + n) % self.groups.len()]);
            let results = if let Some(group) = group {
                self.group(group)
            } else {
                match self.turn() {
                    Turn::Due(i, waiting) => match self.look_again(i, waiting) {
                        Some(result) => vec![result],
                        None => continue,
                    },
                    Turn::Sleep(pause) => {
                        thread::sleep(pause);
                        continue;
                    }
                    Turn::Done => return,
                }
            };
            for result in results {
                if sender.send(result).is_err() {
                    return;
                }
            }
        }
    }

    /// Enters a group's jobs and generates those that are this build's to make.
    fn group(&self, group: &[usize]) -> Vec<Finished<'a, 'f>> {
        self.in_flight.fetch_add(group.len(), Ordering::Relaxed);
        let Entering {
            found,
            rest,
            mut holds,
            waiting,
        } = enter(self.jobs, group, self.flight);
        self.waiting().extend(waiting);
        let mut results: Vec<(usize, Result<Got<'a>, Failure>)> =
            found.into_iter().map(|(i, got)| (i, Ok(got))).collect();
        if !rest.is_empty() {
            results.extend(generate_group(self.jobs, &rest, self.env));
        }
        self.in_flight.fetch_sub(group.len(), Ordering::Relaxed);
        results
            .into_iter()
            .map(|(i, result)| {
                let hold = holds
                    .iter_mut()
                    .find(|(j, _)| *j == i)
                    .map(|(_, hold)| std::mem::take(hold))
                    .unwrap_or_default();
                (i, result, hold)
            })
            .collect()
    }

    /// The waiting job due first, if it is due.
    fn turn(&self) -> Turn {
        let mut waiting = self.waiting();
        let Some(first) = (0..waiting.len()).min_by_key(|&w| waiting[w].1.next) else {
            // Another worker may still set a job aside (entering a group, or looking again).
            return if self.in_flight.load(Ordering::Relaxed) == 0 {
                Turn::Done
            } else {
                Turn::Sleep(Duration::from_millis(100))
            };
        };
        let now = Instant::now();
        if waiting[first].1.next > now {
            return Turn::Sleep((waiting[first].1.next - now).min(Duration::from_millis(100)));
        }
        let (i, job) = waiting.swap_remove(first);
        // In flight from now on, so that no worker ends while this one may set it aside again.
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Turn::Due(i, job)
    }

    /// Looks again at a job another machine holds: its image, when the remote has it now;
    /// generated here, when the claim was let go or died or the wait ran out; `None` (and set
    /// aside again) while it is still held.
    fn look_again(&self, i: usize, mut waiting: Waiting) -> Option<Finished<'a, 'f>> {
        let Some((flight, claims)) = self.flight.and_then(|f| Some((f, f.claims?))) else {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        let chain = &self.jobs[i];
        let finished = match claims.poll(chain, &mut waiting) {
            Polled::Wait => {
                self.waiting().push((i, waiting));
                None
            }
            Polled::Stored(link, image) => {
                let request = &chain[link].1;
                Some((i, Ok(Got::Stored(request, image)), Hold::default()))
            }
            Polled::Held(guard) => Some(self.alone(i, flight, Some(guard))),
            Polled::Alone => Some(self.alone(i, flight, None)),
        };
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        finished
    }

    /// Generates one job whose claim this build holds (or that it makes without one), behind
    /// this machine's single flight.
    fn alone(
        &self,
        i: usize,
        flight: &Flight<'_>,
        claim: Option<ClaimGuard<'f>>,
    ) -> Finished<'a, 'f> {
        let chain = &self.jobs[i];
        match flight.single.enter(chain, false) {
            Entered::Found(link, entry) => {
                let (key, request) = &chain[link];
                let hold = Hold { lock: None, claim };
                (i, Ok(Got::Found(request, *key, entry)), hold)
            }
            Entered::Generate(lock) => {
                let result = generate_chain(chain, self.env).map(Got::Made);
                let hold = Hold { lock, claim };
                (i, result, hold)
            }
        }
    }
}

/// What a group finds on entering: the jobs another build stored meanwhile, the jobs still to
/// make (in the group's order), what each holds until it is stored, and the jobs another
/// machine holds.
struct Entering<'a, 'f> {
    found: Vec<(usize, Got<'a>)>,
    rest: Vec<usize>,
    holds: Vec<(usize, Hold<'f>)>,
    waiting: Vec<(usize, Waiting)>,
}

/// Takes the single-flight lock of every job of a group, in key order, so that two builds
/// locking the same candidates never wait on each other; then its claim in the remote cache.
fn enter<'a, 'f>(
    jobs: &'a [Chain],
    group: &[usize],
    flight: Option<&'f Flight<'f>>,
) -> Entering<'a, 'f> {
    let mut entering = Entering {
        found: Vec::new(),
        rest: Vec::new(),
        holds: Vec::new(),
        waiting: Vec::new(),
    };
    let Some(flight) = flight else {
        entering.rest = group.to_vec();
        return entering;
    };
    let mut order = group.to_vec();
    order.sort_by_key(|&i| jobs[i][0].0);
    for i in order {
        let chain = &jobs[i];
        let forced = (flight.forced)(&chain[0].0);
        let lock = match flight.single.enter(chain, forced) {
            Entered::Found(link, entry) => {
                let (key, request) = &chain[link];
                entering.found.push((i, Got::Found(request, *key, entry)));
                continue;
            }
            Entered::Generate(lock) => lock,
        };
        let claims = flight
            .claims
            .filter(|_| !forced && chain[0].1.kind.is_model());
        let claim = match claims.map(|claims| claims.enter(chain)) {
            Some(claims::Entered::Held(guard)) => Some(guard),
            Some(claims::Entered::Busy(waiting)) => {
                entering.waiting.push((i, waiting));
                continue;
            }
            Some(claims::Entered::Stored(link, image)) => {
                entering.found.push((i, Got::Stored(&chain[link].1, image)));
                continue;
            }
            Some(claims::Entered::Off) | None => None,
        };
        entering.rest.push(i);
        entering.holds.push((i, Hold { lock, claim }));
    }
    entering
        .rest
        .sort_by_key(|i| group.iter().position(|g| g == i));
    entering
}

/// Every job alone: the groups of a queue with no candidates to ask for together.
#[cfg(test)]
pub(crate) fn alone(jobs: usize) -> Vec<Vec<usize>> {
    (0..jobs).map(|i| vec![i]).collect()
}

/// Generates a group of jobs: one alone through its chain; a directive's candidates in one
/// request for all of them (their first link's provider takes `n`), then alone for any the
/// answer lacked or, when that request failed for a reason the fallbacks cover, through their
/// fallback profiles.
fn generate_group<'a>(
    jobs: &'a [Chain],
    group: &[usize],
    env: &Env<'_>,
) -> Vec<(usize, Result<Got<'a>, Failure>)> {
    if let [only] = group {
        return vec![(*only, generate_chain(&jobs[*only], env).map(Got::Made))];
    }
    let (_, request) = &jobs[group[0]][0];
    match provider::generate_n(request, group.len() as u32, env) {
        Ok(masters) => {
            let mut masters = masters.into_iter();
            group
                .iter()
                .map(|&i| {
                    let result = match masters.next() {
                        Some(master) => {
                            let (key, request) = &jobs[i][0];
                            Ok(Got::Made(Made {
                                key: *key,
                                request,
                                master,
                            }))
                        }
                        None => generate_chain(&jobs[i], env).map(Got::Made),
                    };
                    (i, result)
                })
                .collect()
        }
        Err(failure) if failure.may_fall_back => {
            tracing::warn!("{}; trying each candidate's fallbacks", failure.message);
            group
                .iter()
                .map(|&i| {
                    let result = if jobs[i].len() > 1 {
                        generate_chain(&jobs[i][1..], env).map(Got::Made)
                    } else {
                        Err(failure.clone())
                    };
                    (i, result)
                })
                .collect()
        }
        Err(failure) => group.iter().map(|&i| (i, Err(failure.clone()))).collect(),
    }
}

/// Tries each request of a chain in turn until one gives an image or fails for good.
fn generate_chain<'a>(
    chain: &'a [(CacheKey, Request)],
    env: &Env<'_>,
) -> Result<Made<'a>, Failure> {
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
mod tests {
    //! The work queue against a loopback provider: the concurrency limit holds, a slow image holds
    //! nothing back, and fallback profiles take over only for transient failures.

    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

    use super::*;
    use crate::config::Config;
    use crate::outside::Secrets;
    use crate::request::cache_key;
    use crate::test_support::books::bare_request;
    use crate::test_support::env::within;
    use crate::test_support::images::{b64, png};

    /// Answers after a delay named in the prompt (`slow` or `fast`), recording when each request
    /// arrived and how long it was held.
    #[derive(Clone, Default)]
    struct Timed {
        held: Arc<Mutex<Vec<(Instant, Duration)>>>,
    }

    impl Respond for Timed {
        fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let slow = body["prompt"].as_str().unwrap().starts_with("slow");
            let delay = Duration::from_millis(if slow { 1500 } else { 150 });
            self.held.lock().unwrap().push((Instant::now(), delay));
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": [{ "b64_json": b64(&png(8, 8)) }] }))
                .set_delay(delay)
        }
    }

    fn book(table: serde_json::Value) -> Config {
        Config::from_table(Some(&table)).unwrap()
    }

    fn request(config: &Config, profile: &str, prompt: &str) -> Request {
        let p = &config.profiles[profile];
        Request {
            size: crate::config::Size::default(),
            params: p.params.clone(),
            ..bare_request(p.kind, profile, &p.model, prompt, (0, 0))
        }
    }

    fn run_all(config: &Config, jobs: &[Chain]) -> Vec<(usize, Result<String, String>)> {
        let mut finished = Vec::new();
        let var = |_: &str| Some("k".into());
        let mut progress = Progress::start(0, config.max_concurrency);
        within(config, Path::new("."), &var, &Secrets::default(), |env| {
            run(
                jobs,
                &alone(jobs.len()),
                config.max_concurrency,
                env,
                None,
                &mut progress,
                |i, result, _| {
                    finished.push((
                        i,
                        result
                            .map(|got| match got {
                                Got::Made(made) => made.request.profile.clone(),
                                Got::Found(request, ..) | Got::Stored(request, ..) => {
                                    request.profile.clone()
                                }
                            })
                            .map_err(|f| f.message),
                    ));
                },
            );
        });
        finished
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_limit_in_flight_and_a_slow_image_holds_nothing_back() {
        let server = MockServer::start().await;
        let timed = Timed::default();
        Mock::given(method("POST"))
            .and(path("/v1/images/generations"))
            .respond_with(timed.clone())
            .mount(&server)
            .await;
        let config = book(json!({
            "max-concurrency": 3,
            "providers": { "p": { "kind": "openai-compatible", "model": "m", "base-url": format!("{}/v1", server.uri()) } }
        }));
        let jobs: Vec<Chain> = (0..10)
            .map(|i| {
                let prompt = if i == 0 {
                    "slow 0".to_owned()
                } else {
                    format!("fast {i}")
                };
                let r = request(&config, "p", &prompt);
                vec![(cache_key(&r), r)]
            })
            .collect();
        let finished = tokio::task::spawn_blocking(move || run_all(&config, &jobs))
            .await
            .unwrap();

        assert_eq!(finished.len(), 10);
        assert!(finished.iter().all(|(_, r)| r.is_ok()));
        // The slow image started first and finished last: the nine fast ones went past it.
        assert_eq!(finished.last().unwrap().0, 0);

        let held = timed.held.lock().unwrap().clone();
        let most = held
            .iter()
            .map(|(start, _)| {
                held.iter()
                    .filter(|(s, d)| s <= start && *start < *s + *d)
                    .count()
            })
            .max()
            .unwrap();
        assert_eq!(most, 3, "the most requests held at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallbacks_take_over_transient_failures_only() {
        let down = MockServer::start().await;
        Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(|r: &wiremock::Request| String::from_utf8_lossy(&r.body).contains("outage"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": { "message": "The server is overloaded", "type": "service_unavailable_error", "code": "server_is_overloaded" }
        })))
        .mount(&down)
        .await;
        Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "Your request was rejected by the safety system.", "type": "image_generation_user_error", "code": "moderation_blocked" }
        })))
        .mount(&down)
        .await;
        let up = MockServer::start().await;
        Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{ "content": { "parts": [{ "inlineData": { "mimeType": "image/png", "data": b64(&png(8, 8)) } }] }, "finishReason": "STOP" }]
        })))
        .mount(&up)
        .await;
        let config = book(json!({
            "retries": 1,
            "provider": "a",
            "fallback": ["b"],
            "providers": {
                "a": { "kind": "openai", "base-url": format!("{}/v1", down.uri()) },
                "b": { "kind": "gemini", "base-url": format!("{}/v1beta", up.uri()) },
            }
        }));
        let jobs: Vec<Chain> = ["outage", "refused"]
            .iter()
            .map(|prompt| {
                ["a", "b"]
                    .iter()
                    .map(|p| {
                        let r = request(&config, p, prompt);
                        (cache_key(&r), r)
                    })
                    .collect()
            })
            .collect();
        let mut finished = tokio::task::spawn_blocking(move || run_all(&config, &jobs))
            .await
            .unwrap();
        finished.sort_by_key(|(i, _)| *i);
        assert_eq!(finished[0].1, Ok("b".to_owned()));
        let refused = finished[1].1.as_ref().unwrap_err();
        assert!(refused.contains("refused the prompt"), "{refused}");
        // Two attempts at the outage, one at the refusal; one image from the fallback.
        assert_eq!(down.received_requests().await.unwrap().len(), 3);
        assert_eq!(up.received_requests().await.unwrap().len(), 1);
    }
}
