//! Single flight across processes: two builds of the same book at once (CI jobs on one runner,
//! `mdbook serve` beside `mdbook build`) never pay twice for one image.
//!
//! Before a build generates a key it takes an exclusive OS lock on `local/locks/<key>.lock`,
//! then looks at the records on disk again: if the other build stored the image meanwhile, it
//! is used and nothing is generated. The lock is held until the new image is stored, and the OS
//! releases it when a process dies, so a killed build never blocks the next one. Lock files
//! stay (removing one another process waits on would let a third take it); they are empty, and
//! in the cache's local part.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::key::CacheKey;
use super::{Entry, master_file, read_shard};
use crate::request::Chain;

/// How often a waiting build looks at the lock again.
const POLL: Duration = Duration::from_millis(200);

/// The locks of one cache.
pub(crate) struct SingleFlight {
    root: PathBuf,
    /// The longest a build waits for another one; then it generates anyway, with a warning.
    max_wait: Duration,
}

/// An exclusive lock on one key, released when dropped (or when the process dies).
pub(crate) struct KeyLock {
    _file: File,
}

/// What entering a key's flight found.
pub(crate) enum Entered {
    /// This build holds the lock and must generate the image.
    Generate(Option<KeyLock>),
    /// Another build stored an image of the chain while this one waited: link index and entry.
    Found(usize, Entry),
}

impl SingleFlight {
    pub(crate) fn new(root: &Path, max_wait: Duration) -> SingleFlight {
        SingleFlight {
            root: root.to_owned(),
            max_wait,
        }
    }

    /// Takes the lock of a chain's key, waiting for another build that holds it, then looks
    /// for an image of any committed link on disk (unless `forced`: `regenerate` wants a new
    /// one). Placeholders cost nothing and take no lock. A lock that cannot be taken (a
    /// read-only disk, a file system without locks) gives a build without single flight.
    pub(crate) fn enter(&self, chain: &Chain, forced: bool) -> Entered {
        let (key, request) = &chain[0];
        if !request.kind.is_model() {
            return Entered::Generate(None);
        }
        let lock = match self.lock(*key) {
            Ok(lock) => lock,
            Err(e) => {
                tracing::debug!("no single flight for {key:?}: {e}");
                return Entered::Generate(None);
            }
        };
        if !forced {
            for (link, (link_key, link_request)) in chain.iter().enumerate() {
                if !link_request.kind.is_model() {
                    continue;
                }
                if let Some(entry) = self.on_disk(*link_key) {
                    return Entered::Found(link, entry);
                }
            }
        }
        Entered::Generate(lock)
    }

    /// The lock of one key, waiting up to `max_wait` for another process to let go.
    fn lock(&self, key: CacheKey) -> std::io::Result<Option<KeyLock>> {
        let dir = self.root.join("local").join("locks");
        crate::files::create_dir_confined(&self.root, &dir)?;
        let path = dir.join(format!("{}.lock", key.to_hex()));
        crate::files::check_confined(&self.root, &path)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(KeyLock { _file: file })),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if started.elapsed() >= self.max_wait {
                tracing::warn!(
                    "imagegen: another build has been generating an image for {}; generating it here too",
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
                );
                return Ok(None);
            }
            if !told {
                tracing::info!(
                    "imagegen: another build of this book is generating an image; waiting for it"
                );
                told = true;
            }
            std::thread::sleep(POLL);
        }
    }

    /// The image of a committed key as the records on disk have it now.
    fn on_disk(&self, key: CacheKey) -> Option<Entry> {
        let hex = key.to_hex();
        let dir = self.root.join("records").join(&hex[..2]);
        let winners = read_shard(
            &dir,
            |entry| {
                crate::files::is_regular(&master_file(&self.root, &entry.master, &entry.extension))
            },
            true,
        )
        .ok()?;
        winners.get(&hex).cloned()
    }
}
