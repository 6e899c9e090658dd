//! Claims while generating: with a read-write remote, a build claims a key in the store before
//! it asks a provider for it, renews its claims while it generates, and lets each go once the
//! image is uploaded (or failed). A key that another machine holds is set aside: the queue goes
//! on with other images and comes back to it, until its image is in the store (fetched like
//! any remote image: no provider request), its holder turns out dead (the claim is taken over,
//! and this build generates it), or `claim-wait` runs out (this build generates it too, with a
//! warning).
//!
//! The claim itself, and when one is dead, is `crate::claim`; the conditional requests are
//! `storage::conditional`. Claims cover machines; the cache's single flight still covers the
//! builds of one machine, and is taken first.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::cache::Downloaded;
use crate::cache::key::CacheKey;
use crate::claim::{self, Claim, Holder, Liveness};
use crate::config::Mode;
use crate::request::Chain;
use crate::storage::{Conditional, Remote, Replace, Version};

/// The claims of one build.
pub(crate) struct Claims<'r> {
    remote: &'r Remote,
    holder: Holder,
    ttl: Duration,
    /// The longest this build waits for another machine's image.
    wait: Duration,
    /// Whether the store may be written (`mode = "read-write"`).
    writable: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What the probe found: `Some(true)` when claims can be taken over as well as created.
    /// `None` before the first claim; claims are off once it is `Some(false)` with `off`.
    swap: Option<bool>,
    off: bool,
    warned: bool,
    held: BTreeMap<CacheKey, Held>,
    /// The holders this build has said it waits for.
    told: std::collections::BTreeSet<String>,
}

/// A claim this build holds.
struct Held {
    claim: Claim,
    version: Version,
    renewed: Instant,
}

/// A claim held until dropped: then it is deleted from the store (if it is still this
/// build's), so that the machines waiting for it look for the image.
pub(crate) struct ClaimGuard<'c> {
    claims: &'c Claims<'c>,
    key: CacheKey,
}

impl ClaimGuard<'_> {
    /// Whether the claim is still this build's (not lost to a take-over while it generated).
    pub(crate) fn held(&self) -> bool {
        self.claims.state().held.contains_key(&self.key)
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        self.claims.release(self.key);
    }
}

/// A key another machine holds, as this build watches it.
pub(crate) struct Waiting {
    started: Instant,
    /// The claim's version when last looked at, and since when it has not changed.
    version: Option<Version>,
    changed: Instant,
    /// The claim as read at that version (`None`: not read yet, or not a claim).
    claim: Option<Claim>,
    /// When to look again.
    pub(crate) next: Instant,
}

/// What claiming a key found.
pub(crate) enum Entered<'c> {
    /// This build holds the claim: generate.
    Held(ClaimGuard<'c>),
    /// Another machine holds it: wait.
    Busy(Waiting),
    /// The store has an image of this link of the chain: here it is, read and checked.
    Stored(usize, Box<Downloaded>),
    /// No claims in this build: generate, as without a remote.
    Off,
}

impl<'r> Claims<'r> {
    /// The claims of a build on `remote`; `wait` is `claim-wait`, or by default as long as a
    /// build may take for one image.
    pub(crate) fn new(
        remote: &'r Remote,
        storage: &crate::config::Storage,
        wait: Duration,
    ) -> Self {
        Claims {
            remote,
            holder: this_process(),
            ttl: storage.claim_ttl,
            wait: storage.claim_wait.unwrap_or(wait),
            writable: storage.mode == Mode::ReadWrite,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns claims off for the rest of the build, with one warning.
    fn off(&self, why: &str) {
        let mut state = self.state();
        state.off = true;
        if !state.warned {
            state.warned = true;
            tracing::warn!(
                "imagegen: no claims in `{}` for this build: {why}; another machine may generate the same images at the same time, and each is paid",
                self.remote.label()
            );
        }
    }

    /// A request failed: the remote says so once for the whole build (an outage switches it
    /// off), and claims end with it.
    fn failed(&self, e: crate::error::Error) {
        self.remote.degrade::<()>(Err(e));
        self.state().off = true;
    }

    /// Whether claims are on, probing the store the first time.
    fn ready(&self) -> bool {
        if self.writable && !self.remote.can_write() {
            // The remote said why already (an outage, or credentials that cannot write).
            self.state().off = true;
            return false;
        }
        {
            let state = self.state();
            if state.off {
                return false;
            }
            if state.swap.is_some() {
                return true;
            }
        }
        if !self.writable {
            self.off(
                "the remote cache is read-only (`mode = \"read-only\"`), and a claim is a write",
            );
            return false;
        }
        let mut state = self.state();
        if state.swap.is_some() || state.off {
            return !state.off;
        }
        match self.remote.probe_conditions(&self.holder.id) {
            Ok(conditions) => match conditions.create_only {
                Ok(()) => {
                    state.swap = Some(conditions.swap);
                    true
                }
                Err(why) => {
                    drop(state);
                    self.off(&format!(
                        "the store does not honour create-only writes ({why})"
                    ));
                    false
                }
            },
            Err(e) => {
                drop(state);
                self.failed(e);
                false
            }
        }
    }

    /// Claims the first key of a chain (a model's image for the committed cache, not forced:
    /// the caller checks), or finds another machine's claim or image.
    pub(crate) fn enter<'c>(&'c self, chain: &Chain) -> Entered<'c> {
        if !self.ready() {
            return Entered::Off;
        }
        let key = chain[0].0;
        // Twice at most: a claim let go between the create and the read is created again.
        for _ in 0..2 {
            let claim = Claim::new(&key.to_hex(), &self.holder, SystemTime::now(), self.ttl);
            match self
                .remote
                .create_only(&claim::path(&key.to_hex()), &claim.to_bytes())
            {
                Ok(Conditional::Done(version)) => return self.hold(chain, claim, version),
                Ok(Conditional::Conflict) => {}
                Ok(Conditional::Unsupported(why)) => {
                    self.off(&format!(
                        "the store does not honour create-only writes ({why})"
                    ));
                    return Entered::Off;
                }
                Err(e) => {
                    self.failed(e);
                    return Entered::Off;
                }
            }
            let now = Instant::now();
            match self.read(key) {
                Ok(Some((found, version))) => {
                    if let Some(found) = &found
                        && self.state().told.insert(found.id.clone())
                    {
                        tracing::info!(
                            "imagegen: {} is generating images of this book; waiting for them",
                            found.holder()
                        );
                    }
                    return Entered::Busy(Waiting {
                        started: now,
                        version: Some(version),
                        changed: now,
                        claim: found,
                        next: now + claim::next_poll(Duration::ZERO, self.ttl / 3),
                    });
                }
                Ok(None) => continue,
                Err(e) => {
                    self.failed(e);
                    return Entered::Off;
                }
            }
        }
        Entered::Off
    }

    /// Holds a claim just written, unless the store has the image already (another machine
    /// made it between this build's lookup and its claim): then the claim goes at once.
    fn hold<'c>(&'c self, chain: &Chain, claim: Claim, version: Version) -> Entered<'c> {
        let key = chain[0].0;
        self.state().held.insert(
            key,
            Held {
                claim,
                version,
                renewed: Instant::now(),
            },
        );
        let guard = ClaimGuard { claims: self, key };
        match self.stored(chain) {
            Some((link, image)) => {
                drop(guard);
                Entered::Stored(link, image)
            }
            None => Entered::Held(guard),
        }
    }

    /// The first link of a chain whose image the store has now, read and checked (a record
    /// whose master cannot be read is no image: this build makes it).
    fn stored(&self, chain: &Chain) -> Option<(usize, Box<Downloaded>)> {
        let keys: Vec<CacheKey> = chain
            .iter()
            .filter(|(_, request)| request.kind.is_model())
            .map(|(key, _)| *key)
            .collect();
        let mut found = crate::cache::download(self.remote, &keys);
        chain
            .iter()
            .enumerate()
            .find_map(|(link, (key, _))| Some((link, Box::new(found.remove(key)?))))
    }

    /// The claim of `key` as the store has it: `None` when there is none; `Some(None, _)` when
    /// it cannot be read as a claim.
    #[allow(clippy::type_complexity)]
    fn read(&self, key: CacheKey) -> crate::error::Result<Option<(Option<Claim>, Version)>> {
        let found = self
            .remote
            .read_versioned(&claim::path(&key.to_hex()), claim::MAX_CLAIM_BYTES)?;
        Ok(found.map(|(bytes, version)| {
            let claim = bytes
                .and_then(|bytes| Claim::parse(&bytes))
                .inspect_err(|e| {
                    tracing::debug!("the claim of {key:?} is unreadable: {e}");
                })
                .ok();
            (claim, version)
        }))
    }

    /// Looks again at a key another machine holds (see [`Waiting::next`]). Most looks are one
    /// small request, for the claim's version: its holder lets go of it once the image is in
    /// the store, and rewrites it (a new version) while alive; the claim is read again only
    /// when it changed.
    pub(crate) fn poll<'c>(&'c self, chain: &Chain, waiting: &mut Waiting) -> Polled<'c> {
        let key = chain[0].0;
        let now = Instant::now();
        if now.duration_since(waiting.started) >= self.wait {
            if let Some((link, image)) = self.stored(chain) {
                return Polled::Stored(link, image);
            }
            tracing::warn!(
                "imagegen: waited {} for another machine's image; generating it here too (raise `claim-wait` in `[preprocessor.imagegen.storage]` to wait longer)",
                humantime::format_duration(Duration::from_secs(self.wait.as_secs()))
            );
            return Polled::Alone;
        }
        waiting.next = now + claim::next_poll(now.duration_since(waiting.started), self.ttl / 3);
        let path = claim::path(&key.to_hex());
        let version = match self.remote.version(&path) {
            Ok(version) => version,
            Err(e) => {
                self.failed(e);
                return Polled::Alone;
            }
        };
        let Some(version) = version else {
            // Let go: with the image in the store, or without (its holder failed): claim it.
            if let Some((link, image)) = self.stored(chain) {
                return Polled::Stored(link, image);
            }
            return match self.enter(chain) {
                Entered::Held(guard) => Polled::Held(guard),
                Entered::Stored(link, image) => Polled::Stored(link, image),
                Entered::Off => Polled::Alone,
                Entered::Busy(again) => {
                    *waiting = Waiting {
                        started: waiting.started,
                        ..again
                    };
                    Polled::Wait
                }
            };
        };
        if waiting.version.as_ref() != Some(&version) {
            match self.read(key) {
                Ok(Some((claim, read))) => {
                    waiting.claim = claim;
                    waiting.version = Some(read);
                }
                Ok(None) => waiting.version = None,
                Err(e) => {
                    self.failed(e);
                    return Polled::Alone;
                }
            }
            waiting.changed = now;
            return Polled::Wait;
        }
        let unchanged = now.duration_since(waiting.changed);
        let liveness = match &waiting.claim {
            Some(claim) => claim.judge(SystemTime::now(), unchanged),
            None => claim::judge_unreadable(unchanged, self.ttl),
        };
        if liveness == Liveness::Live {
            return Polled::Wait;
        }
        // Dead: unless its image made it to the store, take it over.
        if let Some((link, image)) = self.stored(chain) {
            return Polled::Stored(link, image);
        }
        self.take_over(chain, waiting.claim.as_ref(), &version)
    }

    /// Takes a dead claim over, where the store can replace it only if it is unchanged.
    fn take_over<'c>(
        &'c self,
        chain: &Chain,
        dead: Option<&Claim>,
        version: &Version,
    ) -> Polled<'c> {
        let key = chain[0].0;
        let holder = dead.map_or_else(|| "an unreadable claim".to_owned(), Claim::holder);
        if self.state().swap != Some(true) {
            tracing::warn!(
                "imagegen: the claim of {holder} has expired, and `{}` cannot replace it safely; generating the image here",
                self.remote.label()
            );
            return Polled::Alone;
        }
        let claim = Claim::new(&key.to_hex(), &self.holder, SystemTime::now(), self.ttl);
        match self.remote.replace_if(
            &claim::path(&key.to_hex()),
            &claim.to_bytes(),
            version,
            Replace::TakeOver,
        ) {
            Ok(Conditional::Done(version)) => {
                tracing::info!("imagegen: the claim of {holder} has expired; taking it over");
                match self.hold(chain, claim, version) {
                    Entered::Held(guard) => Polled::Held(guard),
                    Entered::Stored(link, image) => Polled::Stored(link, image),
                    Entered::Busy(_) | Entered::Off => Polled::Alone,
                }
            }
            // Another waiter took it first, or the holder renewed it.
            Ok(Conditional::Conflict) => Polled::Wait,
            Ok(Conditional::Unsupported(why)) => {
                tracing::warn!(
                    "imagegen: the claim of {holder} has expired, and `{}` cannot replace it ({why}); generating the image here",
                    self.remote.label()
                );
                Polled::Alone
            }
            Err(e) => {
                self.failed(e);
                Polled::Alone
            }
        }
    }

    /// Renews every claim due (a third of the TTL since the last renewal), without holding the
    /// list during the requests. A claim that changed in the store is no longer this build's:
    /// it is dropped from the list, and the image is still made and uploaded (then checked
    /// against a rival, as without claims). In a store that cannot replace conditionally, where
    /// no claim is ever taken over, the holder simply rewrites its claim.
    pub(crate) fn renew_due(&self) {
        let due: Vec<(CacheKey, Claim, Version)> = self
            .state()
            .held
            .iter()
            .filter(|(_, held)| held.renewed.elapsed() >= self.ttl / 3)
            .map(|(key, held)| (*key, held.claim.clone(), held.version.clone()))
            .collect();
        let swap = self.state().swap == Some(true);
        for (key, claim, version) in due {
            if !self.remote.is_up() {
                return;
            }
            let path = claim::path(&key.to_hex());
            let renewed = claim.renewed(SystemTime::now());
            let written = if swap {
                self.remote
                    .replace_if(&path, &renewed.to_bytes(), &version, Replace::Renew)
            } else {
                self.remote.overwrite(&path, &renewed.to_bytes())
            };
            let mut state = self.state();
            let Some(held) = state.held.get_mut(&key) else {
                // Let go while it was rewritten: the delete had the old version.
                drop(state);
                if let Ok(Conditional::Done(new)) = written {
                    let _ = self.remote.delete_if(&path, &new);
                }
                continue;
            };
            match written {
                Ok(Conditional::Done(new)) => {
                    *held = Held {
                        claim: renewed,
                        version: new,
                        renewed: Instant::now(),
                    };
                }
                Ok(Conditional::Conflict) => {
                    tracing::debug!("lost the claim of {key:?} to another machine");
                    state.held.remove(&key);
                }
                Ok(Conditional::Unsupported(why)) => {
                    tracing::debug!("cannot renew the claim of {key:?}: {why}");
                }
                Err(e) => tracing::debug!("cannot renew the claim of {key:?}: {e}"),
            }
        }
    }

    /// Renews the claims this build holds until `finished`.
    pub(crate) fn renew_until(&self, finished: &std::sync::atomic::AtomicBool) {
        let every = self.renew_every();
        let mut last = Instant::now();
        while !finished.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100).min(every));
            if last.elapsed() >= every {
                self.renew_due();
                last = Instant::now();
            }
        }
    }

    /// Deletes a claim this build holds, if it is still this build's.
    fn release(&self, key: CacheKey) {
        // Out of the list first (a renewal holds the list while it rewrites a claim, so this
        // has the version the store has), then deleted without holding the list.
        let Some(held) = self.state().held.remove(&key) else {
            return;
        };
        if !self.remote.is_up() {
            return;
        }
        if let Err(e) = self
            .remote
            .delete_if(&claim::path(&key.to_hex()), &held.version)
        {
            tracing::debug!("cannot let go of the claim of {key:?}: {e}");
        }
    }

    /// How often the renewer looks at the claims.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.ttl / 6).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// What looking again at a key another machine holds found.
pub(crate) enum Polled<'c> {
    /// The store has an image of this link of the chain: here it is, read and checked.
    Stored(usize, Box<Downloaded>),
    /// The claim was let go or died, and this build holds it now: generate.
    Held(ClaimGuard<'c>),
    /// Still held: look again at [`Waiting::next`].
    Wait,
    /// Waited long enough, or cannot claim: generate without a claim.
    Alone,
}

/// The live claims of these keys in the remote cache, for `plan`: which keys other machines
/// are generating now. A store that cannot be read gives none.
pub(crate) fn live(remote: &Remote, keys: &[CacheKey]) -> BTreeMap<CacheKey, Claim> {
    let paths: Vec<String> = keys.iter().map(|k| claim::path(&k.to_hex())).collect();
    let Ok(found) = remote.read(&paths, claim::MAX_CLAIM_BYTES) else {
        return BTreeMap::new();
    };
    let now = SystemTime::now();
    keys.iter()
        .zip(found)
        .filter_map(|(key, fetched)| {
            let claim = Claim::parse(&fetched.bytes()?).ok()?;
            (claim.key == key.to_hex() && !claim.expired(now)).then_some((*key, claim))
        })
        .collect()
}

/// This process, as its claims name it.
fn this_process() -> Holder {
    Holder {
        host: host_name(),
        pid: std::process::id(),
        id: format!("{:016x}", fastrand::u64(..)),
    }
}

/// The machine's name, for people reading a claim: the kernel's (Linux), else the usual
/// variables (Windows sets `COMPUTERNAME`; shells set `HOSTNAME`).
fn host_name() -> String {
    let from_file = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|file| crate::files::read_regular(std::path::Path::new(file), 256).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned());
    from_file
        .into_iter()
        .chain(
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .filter_map(|var| std::env::var(var).ok()),
        )
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
