//! The local cache in front of the shared remote one: finding a key's image in the remote and
//! copying it in, uploading what this machine generated, and remembering what is still to
//! upload.
//!
//! The remote holds the committed tier with the same layout (see [`crate::storage`]). A remote
//! image is checked against its hash before it is copied in, master before record, each file
//! atomically, so a local cache never holds half of a download. An upload writes the master
//! before its record, each "if not exists", so a remote record always has its master and no
//! object is ever replaced. A journal of uploads still to do (`local/pending/`, one empty file
//! per record) survives crashes and outages: the next build with write access finishes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::key::CacheKey;
use super::record::Record;
use super::{Cache, Entry, Tier, io_error, record_name_key};
use crate::error::Result;
use crate::note::{self, Note};
use crate::storage::{Fetched, Object, Remote, Uploaded, paths};

/// A record found in the remote, parsed.
struct Candidate {
    name: String,
    bytes: Vec<u8>,
    record: Record,
}

/// An image of the local cache to upload: its files, and the objects they become.
pub(crate) struct UploadJob {
    master: PathBuf,
    master_object: String,
    master_type: &'static str,
    record: PathBuf,
    record_object: String,
    /// Its mark in the journal of uploads still to do, cleared once uploaded.
    mark: PathBuf,
}

/// Uploads an image's master and record (in that order) and clears its journal mark. Needs no
/// cache, so it may run on any thread.
pub(crate) fn upload(remote: &Remote, job: &UploadJob) -> Result<Uploaded> {
    let master = crate::files::read_regular(&job.master, crate::provider::MAX_MASTER_BYTES as u64)
        .map_err(|e| io_error("read", &job.master, e))?;
    let mut uploaded = remote.upload(&[Object {
        path: job.master_object.clone(),
        content_type: job.master_type,
        bytes: master,
    }])?;
    let record = crate::files::read_regular(&job.record, super::record::MAX_RECORD_BYTES)
        .map_err(|e| io_error("read", &job.record, e))?;
    let more = remote.upload(&[Object {
        path: job.record_object.clone(),
        content_type: "application/json",
        bytes: record,
    }])?;
    uploaded.written += more.written;
    uploaded.existed += more.existed;
    match std::fs::remove_file(&job.mark) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error("remove", &job.mark, e));
        }
        _ => {}
    }
    Ok(uploaded)
}

/// A remote image, read and checked against its hash: ready to be copied in.
pub(crate) struct Downloaded {
    candidate: Candidate,
    master: Vec<u8>,
}

/// Reads each key's winning image from the remote, without touching the local cache (so it
/// may run on any thread). A remote failure is reported once through [`Remote::degrade`] and
/// ends the lookup with what was found so far; a damaged remote object (wrong hash, not a
/// record) is skipped with a warning, and the next record of its key is tried.
pub(crate) fn download(remote: &Remote, keys: &[CacheKey]) -> BTreeMap<CacheKey, Downloaded> {
    let mut found = BTreeMap::new();
    if keys.is_empty() {
        return found;
    }
    let Some(mut candidates) = remote.degrade(remote_records(remote, keys)) else {
        return found;
    };
    // Best first, the same winner as in a local shard; popped from the end.
    for list in candidates.values_mut() {
        super::wins::best_first(list, |c| super::wins::Rank::of(&c.record, &c.name));
        list.reverse();
    }
    // Each round reads the best remaining record's master of every key still open.
    loop {
        let round: Vec<(CacheKey, Candidate)> = candidates
            .iter_mut()
            .filter(|(key, _)| !found.contains_key(*key))
            .filter_map(|(key, list)| list.pop().map(|c| (*key, c)))
            .collect();
        if round.is_empty() {
            break;
        }
        let master_paths: Vec<String> = round
            .iter()
            .map(|(_, c)| paths::master(&c.record.master, extension(&c.record)))
            .collect();
        let Some(masters) =
            remote.degrade(remote.read(&master_paths, crate::provider::MAX_MASTER_BYTES as u64))
        else {
            break;
        };
        for ((key, candidate), (bytes, path)) in round
            .into_iter()
            .zip(masters.into_iter().zip(&master_paths))
        {
            let bytes = match bytes {
                Fetched::Bytes(bytes) => bytes,
                Fetched::Missing => {
                    tracing::warn!(
                        "the remote record `{}` has no master `{path}` in `{}`; skipping it",
                        candidate.name,
                        remote.label()
                    );
                    continue;
                }
                Fetched::Refused(why) => {
                    tracing::warn!(
                        "the remote master `{path}` in `{}` is not read ({}); skipping it (run `mdbook-imagegen verify --remote`)",
                        remote.label(),
                        crate::outside::for_terminal(&why)
                    );
                    continue;
                }
            };
            if blake3::hash(&bytes).to_hex().as_str() != candidate.record.master {
                tracing::warn!(
                    "the remote master `{path}` in `{}` does not match its hash; skipping it (run `mdbook-imagegen verify --remote`)",
                    remote.label()
                );
                continue;
            }
            found.insert(
                key,
                Downloaded {
                    candidate,
                    master: bytes,
                },
            );
        }
    }
    found
}

impl Cache {
    /// Looks keys up in the remote and copies each one's winning image into the local cache
    /// (see [`download`]). Returns the entries found. Only a local failure (writing the cache)
    /// is an error.
    pub(crate) fn fetch_remote(
        &mut self,
        remote: &Remote,
        keys: &[CacheKey],
    ) -> Result<BTreeMap<CacheKey, Entry>> {
        download(remote, keys)
            .into_iter()
            .map(|(key, downloaded)| Ok((key, self.copy_in(&downloaded)?)))
            .collect()
    }

    /// Copies a downloaded image into the committed tier.
    pub(crate) fn copy_in(&mut self, downloaded: &Downloaded) -> Result<Entry> {
        self.adopt(&downloaded.candidate, &downloaded.master)
    }

    /// Which of these keys the remote has an image for (by its records; nothing is downloaded).
    pub(crate) fn remote_has(
        &self,
        remote: &Remote,
        keys: &[CacheKey],
    ) -> Result<BTreeSet<CacheKey>> {
        Ok(remote_record_names(remote, keys)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// Copies a remote image into the committed tier: master, then record, each atomically.
    fn adopt(&mut self, candidate: &Candidate, master: &[u8]) -> Result<Entry> {
        self.ensure_layout()?;
        let record = &candidate.record;
        let entry = Entry {
            master: record.master.clone(),
            extension: extension(record).to_owned(),
            width: record.width,
            height: record.height,
            bytes: master.len() as u64,
            record: candidate.name.clone(),
            created_at: record.created_at.clone(),
        };
        let master_path = self.master_path(Tier::Committed, &entry);
        if !crate::files::is_regular(&master_path) {
            self.write_atomic(&master_path, master, "write the master")?;
        }
        let record_path = self.record_path(Tier::Committed, &entry);
        if !crate::files::is_regular(&record_path) {
            self.write_atomic(&record_path, &candidate.bytes, "write the record")?;
        }
        let shard = record.key[..2].to_owned();
        self.stamps.remove(&(Tier::Committed, shard.clone()));
        self.scanned.remove(&(Tier::Committed, shard.clone()));
        self.written.insert((Tier::Committed, shard));
        Ok(entry)
    }

    /// Removes from the remote every record of `key` but `kept`'s, so that a regenerated image
    /// wins on every machine (its masters stay until `gc --remote`).
    pub(crate) fn retire_remote(
        &self,
        remote: &Remote,
        key: CacheKey,
        kept: &Entry,
    ) -> Result<usize> {
        let hex = key.to_hex();
        let prefix = format!("{hex}-");
        let doomed: Vec<String> = remote
            .list(&[paths::record_shard(&hex)], false)?
            .into_iter()
            .map(|listed| listed.path)
            .filter(|path| {
                let name = path.rsplit('/').next().unwrap_or_default();
                name.starts_with(&prefix) && name != kept.record
            })
            .collect();
        remote.delete(&doomed)?;
        Ok(doomed.len())
    }

    /// Notes that an entry is still to be uploaded.
    pub(crate) fn mark_pending(&self, entry: &Entry) -> Result<()> {
        self.ensure_layout()?;
        let path = self.pending_dir().join(&entry.record);
        self.write_atomic(&path, b"", "write")
    }

    /// Uploads an entry's master and record (in that order) and clears its journal mark.
    pub(crate) fn upload_entry(&self, remote: &Remote, entry: &Entry) -> Result<Uploaded> {
        upload(remote, &self.upload_job(entry))
    }

    /// What uploading an entry takes, for [`upload`] on any thread.
    pub(crate) fn upload_job(&self, entry: &Entry) -> UploadJob {
        UploadJob {
            master: self.master_path(Tier::Committed, entry),
            master_object: paths::master(&entry.master, &entry.extension),
            master_type: crate::vocab::master_object_type(&entry.extension),
            record: self.record_path(Tier::Committed, entry),
            record_object: paths::record(&entry.record),
            mark: self.pending_dir().join(&entry.record),
        }
    }

    /// Uploads what earlier builds could not (an outage, a crash), then copies in the remote's
    /// image of each such key when another machine made it first, so that the next build uses
    /// the same image as every machine. Returns how many images were uploaded.
    pub(crate) fn upload_pending(&mut self, remote: &Remote) -> Result<usize> {
        let dir = self.pending_dir();
        let marks = super::direct_files(&dir)?;
        let mut keys = Vec::new();
        for mark in marks {
            let Some(name) = mark.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if record_name_key(&name).is_none() {
                continue;
            }
            let record_path = self.tier_root(Tier::Committed).join(paths::record(&name));
            let record = super::read_record(&record_path).ok();
            let Some(record) = record else {
                // The image was removed since (gc, regenerate): nothing to upload.
                let _ = std::fs::remove_file(&mark);
                continue;
            };
            let entry = Entry {
                master: record.master.clone(),
                extension: extension(&record).to_owned(),
                width: record.width,
                height: record.height,
                bytes: record.bytes,
                record: name,
                created_at: record.created_at.clone(),
            };
            if !crate::files::is_regular(&self.master_path(Tier::Committed, &entry)) {
                // Deleted here since (the masters live in the remote now): nothing to upload.
                let _ = std::fs::remove_file(&mark);
                continue;
            }
            self.upload_entry(remote, &entry)?;
            if let Some(key) = CacheKey::from_hex(&record.key) {
                keys.push(key);
            }
        }
        self.fetch_remote(remote, &keys)?;
        Ok(keys.len())
    }

    /// Whether earlier builds left uploads to do.
    pub(crate) fn has_pending(&self) -> bool {
        std::fs::read_dir(self.pending_dir()).is_ok_and(|mut listing| listing.next().is_some())
    }

    /// Empties the journal of uploads still to do (after `push` uploaded everything).
    pub(crate) fn clear_pending(&self) -> Result<()> {
        for mark in super::direct_files(&self.pending_dir())? {
            super::remove(&self.root, &mark)?;
        }
        Ok(())
    }

    /// The journal of uploads still to do.
    fn pending_dir(&self) -> PathBuf {
        self.root.join("local").join("pending")
    }

    /// Copies in the remote's note of each `(master, writer)` that has one: one listing per
    /// shard, each candidate read under `N::parse` (a crafted or damaged object is skipped with
    /// a warning), the earliest written winning as it does locally. Returns how many were
    /// copied in.
    pub(crate) fn fetch_notes<N: Note>(
        &mut self,
        remote: &Remote,
        wanted: &[(String, String)],
    ) -> Result<usize> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let kind = N::KIND;
        let shards: BTreeSet<String> = wanted
            .iter()
            .map(|(master, _)| paths::note_shard(kind, master))
            .collect();
        let listed = remote.list(&shards.into_iter().collect::<Vec<_>>(), false)?;
        // The candidates of every wanted image, read in one batch; an object larger than a
        // note of its kind is not one.
        let prefixes: Vec<String> = wanted
            .iter()
            .map(|(master, by)| note::name_prefix(master, by))
            .collect();
        let names: Vec<String> = listed
            .iter()
            .filter(|l| l.bytes <= kind.max_bytes())
            .filter_map(|l| l.path.rsplit('/').next())
            .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .map(str::to_owned)
            .collect();
        let objects: Vec<String> = names.iter().map(|n| paths::note(kind, n)).collect();
        let mut best: BTreeMap<String, (N, Vec<u8>, String)> = BTreeMap::new();
        let wanted: BTreeSet<(&str, &str)> = wanted
            .iter()
            .map(|(m, d)| (m.as_str(), d.as_str()))
            .collect();
        for (name, fetched) in names.iter().zip(remote.read(&objects, kind.max_bytes())?) {
            // The listing's size is the store's word; the read is capped too.
            let Some(bytes) = fetched.bytes() else {
                continue;
            };
            let record = match N::parse(&bytes, name) {
                Ok(record) => record,
                Err(why) => {
                    tracing::warn!(
                        "imagegen: ignoring the remote {} `{}`: {}",
                        kind.word(),
                        crate::outside::for_terminal(name),
                        crate::outside::for_terminal(&why)
                    );
                    continue;
                }
            };
            let earlier = |kept: &(N, Vec<u8>, String)| {
                (record.created(), name) < (kept.0.created(), &kept.2)
            };
            // Only the images asked about: a note of another master that shares the first
            // 16 digits of its hash is not theirs.
            if !wanted.contains(&(record.master(), record.by())) {
                continue;
            }
            let slot = format!("{}/{}", record.master(), record.by());
            if best.get(&slot).is_none_or(earlier) {
                best.insert(slot, (record, bytes, name.clone()));
            }
        }
        let copied = best.len();
        for (record, bytes, name) in best.into_values() {
            self.ensure_layout()?;
            let path = self.note_path(kind, record.master(), &name);
            self.write_atomic(&path, &bytes, "write")?;
            self.wrote_notes(kind, kind.shard_of(record.master()));
        }
        Ok(copied)
    }

    /// Uploads a note (if not there already).
    pub(crate) fn upload_note<N: Note>(&self, remote: &Remote, record: &N) -> Result<Uploaded> {
        remote.upload(&[Object {
            path: paths::note(N::KIND, &record.file_name()),
            content_type: "application/json",
            bytes: record.to_json(),
        }])
    }

    /// Every committed file (masters, records, tuned qualities, notes) as object paths under
    /// the remote root, with their local paths.
    pub(crate) fn committed_objects(&self) -> Result<Vec<(String, PathBuf)>> {
        let root = self.tier_root(Tier::Committed);
        let mut out = Vec::new();
        for kind in ["masters", "records", "tuned", "descriptions", "judgements"] {
            for path in super::files_two_deep(&root.join(kind))? {
                if let Ok(relative) = path.strip_prefix(&root) {
                    let object = relative.to_string_lossy().replace('\\', "/");
                    out.push((object, path));
                }
            }
        }
        Ok(out)
    }
}

/// The names of the remote records of these keys, listing each shard directory once.
/// Reads the remote records of each key.
fn remote_records(
    remote: &Remote,
    keys: &[CacheKey],
) -> Result<BTreeMap<CacheKey, Vec<Candidate>>> {
    let names = remote_record_names(remote, keys)?;
    let texts = remote.read(
        &names
            .iter()
            .map(|(_, n)| paths::record(n))
            .collect::<Vec<_>>(),
        super::record::MAX_RECORD_BYTES,
    )?;
    let mut out: BTreeMap<CacheKey, Vec<Candidate>> = BTreeMap::new();
    for ((key, name), fetched) in names.into_iter().zip(texts) {
        let bytes = match fetched {
            Fetched::Bytes(bytes) => bytes,
            Fetched::Missing => continue,
            Fetched::Refused(why) => {
                tracing::warn!(
                    "skipping the remote record `{name}` in `{}`: {}",
                    remote.label(),
                    crate::outside::for_terminal(&why)
                );
                continue;
            }
        };
        match Record::parse(&bytes, &name) {
            Ok(record) if record.key == key.to_hex() => {
                out.entry(key).or_default().push(Candidate {
                    name,
                    bytes,
                    record,
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "skipping the unreadable remote record `{name}` in `{}`: {e}",
                remote.label()
            ),
        }
    }
    Ok(out)
}

fn remote_record_names(remote: &Remote, keys: &[CacheKey]) -> Result<Vec<(CacheKey, String)>> {
    let wanted: BTreeMap<String, CacheKey> = keys.iter().map(|k| (k.to_hex(), *k)).collect();
    let shards: BTreeSet<String> = wanted.keys().map(|k| paths::record_shard(k)).collect();
    let listed = remote.list(&shards.into_iter().collect::<Vec<_>>(), false)?;
    Ok(listed
        .iter()
        .filter_map(|l| {
            let name = l.path.rsplit('/').next()?;
            let key = wanted.get(record_name_key(name)?)?;
            Some((*key, name.to_owned()))
        })
        .collect())
}

/// A record's master extension.
fn extension(record: &Record) -> &str {
    crate::vocab::extension_of(&record.media_type)
}
