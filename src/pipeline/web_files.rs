//! Web files in the assets directory: derive writes them, render copies them beside chapters,
//! publish uploads them, describe shows one to a vision model.

use std::path::Path;

/// Writes a web file atomically, creating its directory (with a `.gitignore` that keeps the
/// derived files out of git) when missing; never through a link below `base`.
pub(super) fn write_asset(
    base: &Path,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    if !dir.is_dir() {
        crate::files::write_atomic(
            base,
            dir,
            &dir.join(".gitignore"),
            b"# Written by mdbook-imagegen: these files are made from the masters in the cache.\n*\n",
        )?;
    }
    crate::files::write_atomic(base, dir, path, bytes)
}

/// Reads back a web file (to copy, upload or describe it).
pub(super) fn read_asset(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    crate::files::read_regular(&dir.join(name), ASSET_CAP)
}

/// The largest web file read back.
const ASSET_CAP: u64 = crate::provider::MAX_MASTER_BYTES as u64;
