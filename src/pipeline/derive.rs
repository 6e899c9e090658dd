//! Stage 5, derive: the web files of every ready master that lacks them, spread over all
//! cores, written atomically into the assets directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Book;
use super::image::{Image, Ready};
use super::web_files::write_asset;
use super::workers::on_workers;
use crate::assets::{self, Manifest};
use crate::cache::Cache;
use crate::provider;

/// The largest tuned-qualities file read.
const TUNED_CAP: u64 = 64 << 10;

/// One master to derive from.
struct Job<'a> {
    ready: &'a Ready,
    master_path: PathBuf,
    /// Where the qualities of a perceptual target are kept: name and path.
    tuned: Option<(String, PathBuf)>,
}

/// A derivation's result: its id, the tuned-qualities file name, the web files (or why not),
/// and the qualities known before.
type Made = (
    String,
    Option<String>,
    Result<assets::Derived, String>,
    BTreeMap<String, u8>,
);

/// Makes the web files of every ready master that lacks them; a master that cannot be read or
/// derived fails its images. Returns how many masters were derived, and how long it took.
pub(crate) fn run(book: &Book<'_>, cache: &mut Cache, images: &mut [Image]) -> (usize, Duration) {
    let started = Instant::now();
    let mut jobs: BTreeMap<&str, Job<'_>> = BTreeMap::new();
    for image in images.iter() {
        if let Image::Ready(ready) = image
            && ready.manifest.is_none()
        {
            jobs.entry(&ready.derivation).or_insert_with(|| Job {
                ready,
                master_path: cache.master_path(ready.tier, &ready.entry),
                tuned: assets::tuned_name(&ready.entry.master, &book.config.output)
                    .map(|name| (name.clone(), cache.tuned_path(&name))),
            });
        }
    }
    if jobs.is_empty() {
        return (0, started.elapsed());
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let results = on_workers(jobs.into_values().collect(), cores, |job| {
        derive_job(book, job)
    });
    let mut made: HashMap<String, Result<Manifest, String>> = HashMap::new();
    for (derivation, tuned_name, result, known) in results {
        let result = result.map(|derived| {
            if !derived.tuned.is_empty()
                && derived.tuned != known
                && let Some(name) = tuned_name
                && let Err(e) = cache.store_tuned(&name, &derived.tuned)
            {
                tracing::warn!("{e}");
            }
            cache.record_manifest(derivation.clone(), derived.manifest.clone());
            derived.manifest
        });
        made.insert(derivation, result);
    }
    let count = made.values().filter(|r| r.is_ok()).count();
    for image in images.iter_mut() {
        if let Image::Ready(ready) = image
            && ready.manifest.is_none()
        {
            match &made[ready.derivation.as_str()] {
                Ok(manifest) => ready.manifest = Some(manifest.clone()),
                Err(message) => *image = Image::Failed(message.clone()),
            }
        }
    }
    (count, started.elapsed())
}

/// Derives one master and writes its web files.
fn derive_job(book: &Book<'_>, job: Job<'_>) -> Made {
    let ready = job.ready;
    // Waits while other decoded images take the memory budget (see `memory`).
    let (width, height) = assets::decoded_size(
        ready.entry.width,
        ready.entry.height,
        ready.entry.extension == "svg",
        &book.config.output,
    );
    let _memory = crate::memory::reserve(crate::memory::decode_cost(width, height));
    let known: BTreeMap<String, u8> = job
        .tuned
        .as_ref()
        .and_then(|(_, path)| crate::files::read_regular(path, TUNED_CAP).ok())
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default();
    let dir = &book.assets_dir;
    let base = book.assets_base();
    let hash = &ready.entry.master;
    let result = derive_one(&job.master_path, &book.config.cache_dir, hash, |bytes| {
        let source = assets::Source {
            bytes,
            hash,
            origin: ready.origin(),
            frame: ready.frame,
        };
        let derived = assets::derive(&source, &book.config.output, &known)?;
        for (name, bytes) in &derived.files {
            let path = dir.join(name);
            if crate::files::regular_len(&path) == Some(bytes.len() as u64) {
                continue;
            }
            write_asset(&base, dir, &path, bytes)
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        }
        Ok(derived)
    });
    (
        ready.derivation.clone(),
        job.tuned.map(|(name, _)| name),
        result,
        known,
    )
}

/// Reads a master, checks it against its hash, and derives from it; every failure names the
/// master and says what to do.
fn derive_one(
    master_path: &Path,
    cache_dir: &Path,
    hash: &str,
    derive: impl FnOnce(&[u8]) -> Result<assets::Derived, String>,
) -> Result<assets::Derived, String> {
    let bytes = crate::files::read_regular(master_path, provider::MAX_MASTER_BYTES as u64)
        .map_err(|e| {
            format!(
                "cannot read the cached master `{}`: {e}",
                master_path.display()
            )
        })?;
    if blake3::hash(&bytes).to_hex().as_str() != hash {
        return Err(format!(
            "the cached master `{}` is damaged; delete it and its record in `{}` to generate the image again",
            master_path.display(),
            cache_dir.display()
        ));
    }
    derive(&bytes).map_err(|e| {
        format!(
            "cannot make web images from the cached master `{}`: {e}; delete it and its record in `{}` to generate the image again",
            master_path.display(),
            cache_dir.display()
        )
    })
}
