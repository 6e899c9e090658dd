//! The team commands on the shared remote cache: `push`, `verify --remote` and the remote line
//! of `stats`; and what `gc --remote` (in `gc.rs`) lists and reads.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Team;
use crate::cache::Cache;
use crate::cache::Record;
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::storage::{self, Fetched, Listed, Object, Remote, paths};

/// What `push` did.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct Pushed {
    /// The store, as `s3://bucket/root`.
    pub store: String,
    /// Objects uploaded.
    pub uploaded: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Objects the store already had.
    pub present: usize,
}

/// What the remote cache holds, as `stats` shows it.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct RemoteStats {
    /// The store, as `s3://bucket/root`.
    pub store: String,
    /// Records (one per generated image).
    pub records: usize,
    /// Masters, and their bytes.
    pub masters: usize,
    /// Bytes of the masters.
    pub master_bytes: u64,
    /// Web files served from `public-url`.
    pub assets: usize,
    /// Bytes of the web files.
    pub asset_bytes: u64,
    /// The live claims: images other machines are generating now.
    pub claims: Vec<super::RemoteClaim>,
}

/// An object of the remote cache that `gc --remote` removes, or `verify --remote` finds wrong.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct RemoteObject {
    /// Its path under the store's root.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What is wrong with it (`verify`), or why it goes (`gc`).
    pub what: String,
}

/// A remote record as read: its listing, its content (or why it is unreadable), and the
/// object path of the master it names (read loosely, so even another version's record keeps
/// its master).
type RemoteRecord = (Listed, std::result::Result<Record, String>, Option<String>);

/// The object directories of the remote cache, in the order `push` uploads them.
const DIRS: [&str; 6] = [
    "masters/",
    "records/",
    "tuned/",
    "descriptions/",
    "judgements/",
    "assets/",
];

impl Team {
    /// The book's remote cache; an error when it has none.
    pub(super) fn remote(&self) -> Result<Remote> {
        let Some(storage) = &self.config.storage else {
            return Err(Error::Config {
                key: "preprocessor.imagegen.storage".into(),
                message: "this book has no remote cache; add the table to use one (see docs/remote-cache.md)".into(),
            });
        };
        let var = |name: &str| std::env::var(name).ok();
        Remote::open(storage, &self.root, &var)
    }

    /// Whether the book has a remote cache.
    pub fn has_remote(&self) -> bool {
        self.config.storage.is_some()
    }

    /// Every object of the remote cache, by path (the fs store's staging directory aside).
    pub(super) fn remote_objects(&self, remote: &Remote) -> Result<BTreeMap<String, Listed>> {
        let dirs: Vec<String> = DIRS.iter().map(|d| (*d).to_owned()).collect();
        Ok(storage::by_path(remote.list(&dirs, true)?))
    }

    /// Uploads everything the local cache has and the remote lacks: masters first, then
    /// records and tuned qualities, then (with `public-url`) the web files made so far. Moves a
    /// git-committed cache into a bucket, and finishes uploads an outage interrupted.
    pub fn push(&self) -> Result<Pushed> {
        let remote = self.remote()?;
        if self.config.storage.as_ref().map(|s| s.mode) == Some(Mode::ReadOnly) {
            return Err(Error::Config {
                key: "preprocessor.imagegen.storage.mode".into(),
                message: "the remote cache is read-only; set `mode = \"read-write\"` (or `MDBOOK_PREPROCESSOR__IMAGEGEN__STORAGE__MODE=read-write`) to push".into(),
            });
        }
        let present = self.remote_objects(&remote)?;
        let cache = Cache::of_book(&self.root, &self.config);
        let mut local = cache.committed_objects()?;
        if self
            .config
            .storage
            .as_ref()
            .is_some_and(|s| s.public_url.is_some())
        {
            let staging = self.cache_root.join("local").join("public");
            for path in crate::cache::direct_files(&staging)? {
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if !name.starts_with('.') {
                    local.push((paths::asset(&name), path));
                }
            }
        }
        let mut pushed = Pushed {
            store: remote.label().to_owned(),
            ..Pushed::default()
        };
        let local_paths: BTreeSet<&str> = local.iter().map(|(o, _)| o.as_str()).collect();
        // Masters before the records that name them.
        for kind in DIRS {
            let mut batch = Vec::new();
            for (object, path) in local.iter().filter(|(o, _)| o.starts_with(kind)) {
                if present.contains_key(object) {
                    pushed.present += 1;
                    continue;
                }
                if kind == "records/"
                    && let Some(master) = master_named(path)
                    && !present.contains_key(&master)
                    && !local_paths.contains(master.as_str())
                {
                    // Its master is nowhere: a record alone would only mislead other machines.
                    continue;
                }
                let bytes = crate::files::read_regular(path, PUSH_CAP).map_err(|e| Error::Io {
                    action: "read",
                    path: path.clone(),
                    source: e,
                })?;
                pushed.bytes += bytes.len() as u64;
                batch.push(Object {
                    path: object.clone(),
                    content_type: if object.starts_with("masters/") {
                        crate::vocab::master_object_type(object)
                    } else {
                        crate::vocab::media_type_of(object)
                    },
                    bytes,
                });
            }
            for chunk in batch.chunks(64) {
                let done = remote.upload(chunk)?;
                pushed.uploaded += done.written;
                pushed.present += done.existed;
            }
        }
        cache.clear_pending()?;
        Ok(pushed)
    }

    /// Counts what the remote cache holds.
    pub fn remote_stats(&self) -> Result<Option<RemoteStats>> {
        if !self.has_remote() {
            return Ok(None);
        }
        let remote = self.remote()?;
        let mut stats = RemoteStats {
            store: remote.label().to_owned(),
            ..RemoteStats::default()
        };
        for (path, Listed { bytes, .. }) in self.remote_objects(&remote)? {
            if path.starts_with("records/") {
                stats.records += 1;
            } else if path.starts_with("masters/") {
                stats.masters += 1;
                stats.master_bytes += bytes;
            } else if path.starts_with("assets/") {
                stats.assets += 1;
                stats.asset_bytes += bytes;
            }
        }
        let claims = self.claim_objects(&remote)?;
        stats.claims = super::claims::claims_of(&claims, std::time::SystemTime::now())
            .into_iter()
            .filter(|c| c.live)
            .collect();
        Ok(Some(stats))
    }

    /// Reads every remote record: its object path, size and content (or why it is unreadable).
    pub(super) fn remote_records(
        &self,
        remote: &Remote,
        objects: &BTreeMap<String, Listed>,
    ) -> Result<Vec<RemoteRecord>> {
        let listed: Vec<Listed> = objects
            .iter()
            .filter(|(path, _)| path.starts_with("records/"))
            .map(|(_, listed)| listed.clone())
            .collect();
        let paths: Vec<String> = listed.iter().map(|l| l.path.clone()).collect();
        let texts = remote.read(&paths, crate::request::MAX_RECORD_BYTES as u64)?;
        Ok(listed
            .into_iter()
            .zip(texts)
            .map(|(listed, fetched)| {
                let text = match fetched {
                    Fetched::Bytes(bytes) => Ok(bytes),
                    Fetched::Missing => Err("vanished while read".to_owned()),
                    Fetched::Refused(why) => Err(why),
                };
                // The master a record names, even when the record is of another version.
                let master = text.as_deref().ok().and_then(|t| {
                    let value: serde_json::Value = serde_json::from_slice(t).ok()?;
                    let hash = value.get("master")?.as_str()?;
                    let extension = crate::vocab::extension_of(value.get("media-type")?.as_str()?);
                    crate::cache::is_hash(hash).then(|| paths::master(hash, extension))
                });
                // The rules every build reads a record by.
                let record = text.and_then(|t| {
                    let name = listed.path.rsplit('/').next().unwrap_or_default();
                    Record::parse(&t, name)
                });
                (listed, record, master)
            })
            .collect())
    }

    /// Checks the remote cache: every record reads, names its key, and has its master; every
    /// master matches its hash (each is downloaded once).
    pub fn verify_remote(&self) -> Result<Vec<RemoteObject>> {
        let remote = self.remote()?;
        let objects = self.remote_objects(&remote)?;
        let records = self.remote_records(&remote, &objects)?;
        let mut problems = Vec::new();
        for (listed, record, master) in &records {
            let problem = match (record, master) {
                (Err(what), _) => what.clone(),
                (Ok(_), Some(master)) if objects.contains_key(master) => continue,
                (Ok(_), _) => format!(
                    "its master `{}` is missing; delete the record so the image is generated again",
                    master.as_deref().unwrap_or("?")
                ),
            };
            problems.push(RemoteObject {
                path: listed.path.clone(),
                bytes: listed.bytes,
                what: problem,
            });
        }
        let cap = crate::provider::MAX_MASTER_BYTES as u64;
        let mut masters: Vec<String> = Vec::new();
        for (path, listed) in objects.range("masters/".to_owned()..) {
            if !path.starts_with("masters/") {
                break;
            }
            // Larger than any master, by the store's own listing: reported unread.
            if listed.bytes > cap {
                problems.push(RemoteObject {
                    path: path.clone(),
                    bytes: listed.bytes,
                    what: format!(
                        "larger than a master may be ({} MB); delete it and the records that name it",
                        cap >> 20
                    ),
                });
            } else {
                masters.push(path.clone());
            }
        }
        // A few at a time: each may be read up to the cap.
        for chunk in masters.chunks(8) {
            let contents = remote.read(chunk, cap)?;
            for (path, fetched) in chunk.iter().zip(contents) {
                let bytes = match fetched {
                    Fetched::Bytes(bytes) => bytes,
                    Fetched::Missing => continue,
                    Fetched::Refused(why) => {
                        problems.push(RemoteObject {
                            path: path.clone(),
                            bytes: objects.get(path).map_or(0, |l| l.bytes),
                            what: format!(
                                "it is not read ({}); delete it and the records that name it",
                                crate::outside::for_terminal(&why)
                            ),
                        });
                        continue;
                    }
                };
                let name = path.rsplit('/').next().unwrap_or_default();
                let claimed = name.split('.').next().unwrap_or_default();
                if blake3::hash(&bytes).to_hex().as_str() != claimed {
                    problems.push(RemoteObject {
                        path: path.clone(),
                        bytes: bytes.len() as u64,
                        what: "its bytes do not match its name; delete it and the records that name it".into(),
                    });
                }
            }
        }
        Ok(problems)
    }
}

/// The largest file `push` uploads: a master at its limit.
const PUSH_CAP: u64 = crate::provider::MAX_MASTER_BYTES as u64;

/// The object path of the master a local record file names.
fn master_named(record: &std::path::Path) -> Option<String> {
    let record = crate::cache::read_record(record).ok()?;
    Some(paths::master(
        &record.master,
        crate::vocab::extension_of(&record.media_type),
    ))
}
