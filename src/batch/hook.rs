//! How a build's generation stage treats batches. A plain build leaves the images of a pending
//! batch alone (its directives follow `on-error`, with a note that names the batch); `batch
//! submit` runs the build with every image it would generate diverted into [`Submit`]; `batch
//! collect` runs it with the images batches made in [`Collect`], stored as if just generated,
//! and nothing else generated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::cache::key::CacheKey;
use crate::provider::Master;
use crate::request::Request;

/// What the build does with the images it would generate.
#[derive(Default)]
pub(crate) enum Batching {
    /// Generate them, except those of a pending batch.
    #[default]
    Build,
    /// Send none: note each in a batch, or why it cannot go in one.
    Submit(Submit),
    /// Store those a batch made; generate nothing.
    Collect(Collect),
}

impl Batching {
    /// Whether the build only serves a `batch` command (its pages are not used).
    pub(crate) fn is_command(&self) -> bool {
        !matches!(self, Batching::Build)
    }
}

/// What `submit` gathered.
#[derive(Default)]
pub(crate) struct Submit {
    pub(crate) items: Mutex<Vec<Submission>>,
    /// Images left out, and why (a model its batch API does not take, a pending batch, a
    /// claim another machine holds).
    pub(crate) skipped: Mutex<Vec<(CacheKey, String)>>,
}

/// An image to send in a batch.
pub(crate) struct Submission {
    pub(crate) key: CacheKey,
    pub(crate) request: Request,
    /// It replaces a cached image (`regenerate --batch`).
    pub(crate) again: bool,
}

/// The images batches made, checked and spooled to files, by key.
#[derive(Default)]
pub(crate) struct Collect {
    pub(crate) masters: BTreeMap<CacheKey, Spooled>,
    /// Those the build stored.
    pub(crate) stored: Mutex<BTreeSet<CacheKey>>,
    /// Those a directive asks for that could not be stored, and why.
    pub(crate) unstored: Mutex<BTreeMap<CacheKey, String>>,
}

/// A checked master until it is stored: in memory while the collected images are few and
/// small, else its bytes in a spool file (named by their hash).
pub(crate) enum Spooled {
    Memory(Master),
    File {
        path: PathBuf,
        hash: String,
        /// Everything but the bytes.
        master: Master,
    },
}

impl Spooled {
    /// The master, bytes aside.
    pub(crate) fn master(&self) -> &Master {
        match self {
            Spooled::Memory(master) | Spooled::File { master, .. } => master,
        }
    }
}

impl Collect {
    /// The master of `key`; one in a spool file is read back and checked against its hash.
    pub(crate) fn take(&self, key: CacheKey) -> Option<Result<Master, String>> {
        let (path, hash, master) = match self.masters.get(&key)? {
            Spooled::Memory(master) => return Some(Ok(master.clone())),
            Spooled::File { path, hash, master } => (path, hash, master),
        };
        let cap = crate::provider::MAX_MASTER_BYTES as u64;
        let read = crate::files::read_regular(path, cap)
            .map_err(|e| format!("cannot read the collected image back: {e}"))
            .and_then(|bytes| {
                if blake3::hash(&bytes).to_hex().as_str() == hash {
                    Ok(Master {
                        bytes,
                        ..master.clone()
                    })
                } else {
                    Err("the collected image changed on disk before it was stored".to_owned())
                }
            });
        Some(read)
    }
}
