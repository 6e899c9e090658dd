//! The batch files of a book, in `<cache-dir>/batches/`: listed, read under the rules of
//! [`State::parse`], written once (atomically) and removed once collected, always inside the
//! cache directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::state::{MAX_STATE_BYTES, State};
use crate::cache::key::CacheKey;

/// The directory of batch files under a cache root.
pub(crate) fn dir(cache_root: &Path) -> PathBuf {
    cache_root.join("batches")
}

/// A batch file as found: its path, and the state or why it cannot be read.
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) state: Result<State, String>,
}

/// Every `*.json` file of the batch directory, in name order (none when there is no directory).
/// Anything that is not a regular file is reported, never followed.
pub(crate) fn list(cache_root: &Path) -> Vec<Found> {
    let dir = dir(cache_root);
    if !dir.exists() {
        return Vec::new();
    }
    if let Err(e) = crate::files::check_confined(cache_root, &dir) {
        tracing::warn!("imagegen: ignoring `{}`: {e}", dir.display());
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let state = crate::files::read_regular(&path, MAX_STATE_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|bytes| State::parse(&bytes, &name));
            Found { path, state }
        })
        .collect()
}

/// The keys of every readable batch, with the batch each is in (`openai batch_…`): what a
/// build must not generate while they are pending.
pub(crate) fn pending(cache_root: &Path) -> BTreeMap<CacheKey, String> {
    let mut pending = BTreeMap::new();
    for found in list(cache_root) {
        match found.state {
            Ok(state) => {
                let label = format!("{} batch {}", state.profile, state.id);
                for key in state.keys() {
                    pending.entry(key).or_insert_with(|| label.clone());
                }
            }
            Err(e) => tracing::warn!(
                "imagegen: ignoring `{}`: {e}",
                crate::outside::clean(&found.path.display().to_string(), 300)
            ),
        }
    }
    pending
}

/// Writes a batch's file, atomically, inside the cache.
pub(crate) fn write(cache_root: &Path, state: &State) -> std::io::Result<PathBuf> {
    let path = dir(cache_root).join(state.file_name());
    crate::files::create_dir_confined(cache_root, &dir(cache_root))?;
    crate::files::write_atomic(
        cache_root,
        &cache_root.join("tmp"),
        &path,
        &state.to_bytes(),
    )?;
    Ok(path)
}

/// Removes a collected batch's file (never through a link).
pub(crate) fn remove(cache_root: &Path, path: &Path) -> std::io::Result<()> {
    crate::files::remove_confined(cache_root, path)
}
