//! The content-addressed cache, at `cache-dir` (`.imagegen/` by default) beside `book.toml`.
//!
//! ```text
//! .imagegen/
//!   .gitignore                    written by us: keeps the local parts out of git
//!   masters/ab/<blake3>.png       images exactly as generated, named by their hash   (committed)
//!   records/cd/<key>-<m>-<n>.json one text record per image, at a unique path          (committed)
//!   tuned/ab/<master>-<spec>.json qualities a perceptual target chose for a master      (committed)
//!   descriptions/ab/<master>-<describer>-<n>.json  alt text a vision model wrote         (committed)
//!   judgements/<master>-<judge>-<n>.json  how well an image follows its prompt (one directory)  (committed)
//!   picks/ab/<key>-<stamp>.txt    which candidate of a directive's variants is shown    (committed)
//!   local/masters/, local/records/  the same for placeholders, which cost nothing to redo
//!   index.redb                    derived lookup index                                 (local)
//!   tmp/                          where files are written before they are renamed     (local)
//! ```
//!
//! Records and masters are the truth: the index is rebuilt from them whenever it is missing,
//! stale or unreadable. Every file is written to `tmp/` and renamed into place, master before
//! record, so a crash leaves at worst an unreferenced master, never a record without its master.
//! A build that only hits the cache changes no file here.

mod flight;
pub(crate) mod gc;
mod index;
pub(crate) mod key;
mod manage;
mod notes;
mod picks;
mod record;
mod shared;
mod wins;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use flight::{Entered, KeyLock, SingleFlight};
pub(crate) use index::Entry;
use index::{Index, Update};
pub(crate) use manage::{
    StoredMaster, StoredRecord, direct_files, files_two_deep, read_record, remove,
};
pub(crate) use record::Record;
pub(crate) use shared::{Downloaded, UploadJob, download, upload};

use crate::assets::Manifest;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::note::NoteKind;
use crate::provider::Master;
use crate::request::Request;
use key::{CACHE_VERSION, CacheKey};

/// The text of `.imagegen/.gitignore`.
const GITIGNORE: &str = "\
# Written by mdbook-imagegen. Commit the rest (masters, records, tuned qualities, descriptions, judgements, picks).
/index.redb
/index.redb.*
/local/
/tmp/
";

/// Which part of the cache an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tier {
    /// Committed to git and shared with the team.
    Committed,
    /// Kept on this machine only (placeholders).
    Local,
}

impl Tier {
    fn id(self) -> &'static str {
        match self {
            Tier::Committed => "c",
            Tier::Local => "l",
        }
    }
}

/// The cache of one book.
pub(crate) struct Cache {
    root: PathBuf,
    index: Index,
    /// Shards read from the records during this build, with the stamp taken before reading.
    scanned: HashMap<(Tier, String), (String, BTreeMap<String, Entry>)>,
    /// Stamps of shard directories seen during this build.
    stamps: HashMap<(Tier, String), String>,
    /// Shards this build wrote to; read again before the index is updated.
    written: BTreeSet<(Tier, String)>,
    /// Derivations this build made, for the index.
    manifests: BTreeMap<String, Manifest>,
    /// Whether masters may live only in a remote cache (a record without its master is then
    /// expected, not a problem).
    remote_masters: bool,
    /// Note shards (descriptions, judgements) read from their files during this build:
    /// (kind, shard) → (stamp, file name → bytes), for lookups and the index.
    noted: HashMap<(NoteKind, String), notes::Shard>,
    /// Note shards this build wrote to; read again before the index is updated.
    noted_written: BTreeSet<(NoteKind, String)>,
    /// Why the cache must not be used at all: a part of its layout is a symbolic link or not
    /// what it should be (see [`layout_problem`]).
    unusable: Option<String>,
}

impl Cache {
    /// Opens the cache at `root` for lookups. Writes nothing.
    pub(crate) fn open(root: &Path) -> Cache {
        Cache::open_with_wait(root, index::LOCK_WAIT)
    }

    /// Opens the cache, waiting at most `lock_wait` for another process to let go of the index.
    pub(crate) fn open_with_wait(root: &Path, lock_wait: Duration) -> Cache {
        let unusable = layout_problem(root);
        let index = if unusable.is_some() {
            Index::unusable(&root.join("index.redb"))
        } else {
            Index::open(&root.join("index.redb"), lock_wait)
        };
        Cache {
            unusable,
            index,
            root: root.to_owned(),
            scanned: HashMap::new(),
            stamps: HashMap::new(),
            noted: HashMap::new(),
            noted_written: BTreeSet::new(),
            written: BTreeSet::new(),
            manifests: BTreeMap::new(),
            remote_masters: false,
        }
    }

    /// Opens the cache of the book at `book_root`; with a remote cache, a record whose master
    /// is only there is sound.
    pub(crate) fn of_book(book_root: &Path, config: &Config) -> Cache {
        let mut cache = Cache::open(&book_root.join(&config.cache_dir));
        cache.remote_masters = config.storage.is_some();
        cache
    }

    /// Finds the image of a cache key. When a key has several records (two teammates generated
    /// it at once), the earliest `created-at` wins, then the smallest master hash.
    pub(crate) fn lookup(&mut self, tier: Tier, key: CacheKey) -> Result<Option<Entry>> {
        self.usable()?;
        let hex = key.to_hex();
        let shard = hex[..2].to_owned();
        let stamp = self.stamp(tier, &shard);
        let shard_id = format!("{}/{shard}", tier.id());
        // The index is trusted for hits only: a miss is about to cost a provider call, so the
        // records are read before believing it.
        if self.index.is_open()
            && self.index.shard_stamp(&shard_id) == Some(stamp.as_str())
            && let Some(entry) = self.index.entry(&format!("{}/{hex}", tier.id()))
        {
            return Ok(Some(entry));
        }
        Ok(self.scan(tier, &shard)?.get(&hex).cloned())
    }

    /// The files derived under a derivation id, as the index remembers them.
    pub(crate) fn manifest(&self, id: &str) -> Option<Manifest> {
        self.index.manifest(id)
    }

    /// Whether a derivation's web files are known to be in a remote store.
    pub(crate) fn is_published(&self, store: &str, derivation: &str) -> bool {
        let id = published_id(store, derivation);
        self.manifests.contains_key(&id) || self.index.manifest(&id).is_some()
    }

    /// Remembers that a derivation's web files are in a remote store.
    pub(crate) fn record_published(&mut self, store: &str, derivation: &str, manifest: Manifest) {
        self.manifests
            .insert(published_id(store, derivation), manifest);
    }

    /// Remembers a derivation in the index at the end of the build.
    pub(crate) fn record_manifest(&mut self, id: String, manifest: Manifest) {
        self.manifests.insert(id, manifest);
    }

    /// Where the qualities a perceptual target chose for a master are kept (committed, so
    /// that the search runs once per team, not once per machine).
    pub(crate) fn tuned_path(&self, name: &str) -> PathBuf {
        self.root.join("tuned").join(&name[..2]).join(name)
    }

    /// Keeps the qualities a perceptual target chose.
    pub(crate) fn store_tuned(&self, name: &str, tuned: &BTreeMap<String, u8>) -> Result<()> {
        self.ensure_layout()?;
        let mut text = serde_json::to_string_pretty(tuned).expect("a map always serialises");
        text.push('\n');
        self.write_atomic(&self.tuned_path(name), text.as_bytes(), "write")
    }

    /// Releases the index so another build can update it while this one generates.
    pub(crate) fn close_index(&mut self) {
        self.index.close();
    }

    /// Reads the index again after `close_index`, for a later round of lookups.
    pub(crate) fn reopen_index(&mut self) {
        self.index.reopen();
    }

    /// The path of an entry's master.
    pub(crate) fn master_path(&self, tier: Tier, entry: &Entry) -> PathBuf {
        master_file(&self.tier_root(tier), &entry.master, &entry.extension)
    }

    /// The path of an entry's record (its name starts with the key, whose first two digits
    /// name the shard).
    pub(crate) fn record_path(&self, tier: Tier, entry: &Entry) -> PathBuf {
        self.tier_root(tier)
            .join("records")
            .join(&entry.record[..2])
            .join(&entry.record)
    }

    /// Stores a new master and its record, master first, each atomically.
    pub(crate) fn store(
        &mut self,
        tier: Tier,
        key: CacheKey,
        request: &Request,
        master: &Master,
    ) -> Result<Entry> {
        self.ensure_layout()?;
        let hash = blake3::hash(&master.bytes).to_hex().to_string();
        let extension = master.format.extension();
        let record = Record {
            format: CACHE_VERSION,
            key: key.to_hex(),
            provider: request.kind.as_str().to_owned(),
            model: request.model.clone(),
            prompt: request.prompt.clone(),
            negative: request.negative.clone(),
            size: request.size_label(),
            quality: request.quality.clone(),
            seed: request.seed,
            params: request.params.clone(),
            provider_seed: master.provenance.seed,
            revised_prompt: master.provenance.revised_prompt.clone(),
            model_version: master.provenance.model_version.clone(),
            request_id: master.provenance.request_id.clone(),
            sent_size: master
                .provenance
                .sent_size
                .clone()
                .filter(|sent| *sent != request.size_label()),
            attempts: master.attempts,
            master: hash.clone(),
            media_type: master.format.media_type().to_owned(),
            width: master.width,
            height: master.height,
            bytes: master.bytes.len() as u64,
            generation_ms: u64::try_from(master.elapsed.as_millis()).unwrap_or(u64::MAX),
            cost_usd: master.cost_usd,
            created_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            references: request.references.iter().map(named).collect(),
            mask: request.mask.as_ref().map(named),
            candidate: (request.candidate > 0).then_some(request.candidate + 1),
            retry: (request.retry > 0).then_some(request.retry),
            dark_of: request.dark_of.clone(),
            batch: master.batch.clone(),
        };
        let entry = Entry {
            master: hash.clone(),
            extension: extension.to_owned(),
            width: master.width,
            height: master.height,
            bytes: master.bytes.len() as u64,
            record: record_name(&record.key, &hash),
            created_at: record.created_at.clone(),
        };
        // Never a record the cache will not read back: the image would be paid for again on
        // every build (`plan::fits_a_record` refuses such requests before they are sent).
        let json = record.to_json();
        if let Err(why) = Record::parse(&json, &entry.record) {
            return Err(Error::Request(format!(
                "the image's record would not read back ({why}); shorten the prompt or the profile's settings"
            )));
        }
        let master_path = self.master_path(tier, &entry);
        if !crate::files::is_regular(&master_path) {
            self.write_atomic(&master_path, &master.bytes, "write the master")?;
        }
        let shard = record.key[..2].to_owned();
        let record_path = self.record_path(tier, &entry);
        self.write_atomic(&record_path, &json, "write the record")?;
        self.written.insert((tier, shard));
        Ok(entry)
    }

    /// Notes that another process wrote to a key's shard during this build, so that the index
    /// is refreshed from it at the end.
    pub(crate) fn note_changed(&mut self, tier: Tier, key: CacheKey) {
        let shard = key.to_hex()[..2].to_owned();
        self.stamps.remove(&(tier, shard.clone()));
        self.scanned.remove(&(tier, shard.clone()));
        self.written.insert((tier, shard));
    }

    /// Removes every record of `key` but `kept`'s, so that the new image wins; their masters
    /// stay until `gc`.
    pub(crate) fn retire_others(&mut self, tier: Tier, key: CacheKey, kept: &Entry) -> Result<()> {
        let hex = key.to_hex();
        let dir = self.tier_root(tier).join("records").join(&hex[..2]);
        let prefix = format!("{hex}-");
        for path in direct_files(&dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(&prefix) && record::is_record_name(&name) && name != kept.record {
                crate::files::remove_confined(&self.root, &path)
                    .map_err(|e| io_error("remove", &path, e))?;
            }
        }
        self.written.insert((tier, hex[..2].to_owned()));
        Ok(())
    }

    /// Finishes the build: records what changed in the index. Chapter references are written
    /// only where they differ from what the index holds, so a build that changed nothing writes
    /// nothing.
    pub(crate) fn finish(mut self, refs: BTreeMap<String, Vec<String>>) -> Result<()> {
        let mut update = Update {
            assets: std::mem::take(&mut self.manifests),
            ..Update::default()
        };
        for (tier, shard) in std::mem::take(&mut self.written) {
            self.stamps.remove(&(tier, shard.clone()));
            self.scanned.remove(&(tier, shard.clone()));
            self.scan(tier, &shard)?;
        }
        for ((tier, shard), (stamp, entries)) in std::mem::take(&mut self.scanned) {
            let id = format!("{}/{shard}", tier.id());
            if self.index.shard_stamp(&id) != Some(stamp.as_str()) {
                update.shards.insert(id, (stamp, entries));
            }
        }
        update.notes = self.note_update();
        for (chapter, keys) in refs {
            if self.index.refs(&chapter) != Some(keys.as_slice()) {
                update.refs.insert(chapter, keys);
            }
        }
        if !update.is_empty() {
            self.ensure_layout()?;
        }
        self.index.apply(&update);
        Ok(())
    }

    /// The directory of a tier's masters and records.
    pub(crate) fn tier_root(&self, tier: Tier) -> PathBuf {
        match tier {
            Tier::Committed => self.root.clone(),
            Tier::Local => self.root.join("local"),
        }
    }

    /// The stamp of a shard directory: its modification time, or `none` when it is missing.
    fn stamp(&mut self, tier: Tier, shard: &str) -> String {
        let dir = self.tier_root(tier).join("records").join(shard);
        self.stamps
            .entry((tier, shard.to_owned()))
            .or_insert_with(|| dir_stamp(&dir))
            .clone()
    }

    /// Reads every record of a shard and picks each key's winner.
    fn scan(&mut self, tier: Tier, shard: &str) -> Result<&BTreeMap<String, Entry>> {
        let id = (tier, shard.to_owned());
        if !self.scanned.contains_key(&id) {
            let stamp = self.stamp(tier, shard);
            let dir = self.tier_root(tier).join("records").join(shard);
            let entries = read_shard(
                &dir,
                |entry| crate::files::is_regular(&self.master_path(tier, entry)),
                self.remote_masters,
            )?;
            self.scanned.insert(id.clone(), (stamp, entries));
        }
        Ok(&self.scanned[&id].1)
    }

    /// Creates the cache directory and its `.gitignore` when missing.
    pub(crate) fn ensure_layout(&self) -> Result<()> {
        self.usable()?;
        let tmp = self.root.join("tmp");
        if !tmp.is_dir() {
            crate::files::create_dir_confined(&self.root, &tmp)
                .map_err(|e| io_error("create", &tmp, e))?;
        }
        let gitignore = self.root.join(".gitignore");
        if !gitignore.exists() {
            self.write_atomic(&gitignore, GITIGNORE.as_bytes(), "write")?;
        }
        Ok(())
    }

    /// Writes a file under `tmp/`, flushes it to disk, then renames it into place; never
    /// through a link.
    fn write_atomic(&self, path: &Path, bytes: &[u8], action: &'static str) -> Result<()> {
        self.usable()?;
        crate::files::write_atomic(&self.root, &self.root.join("tmp"), path, bytes)
            .map_err(|e| io_error(action, path, e))
    }

    /// Fails when the cache's layout is unsafe to use (see [`layout_problem`]).
    pub(crate) fn usable(&self) -> Result<()> {
        match &self.unusable {
            None => Ok(()),
            Some(problem) => Err(Error::Io {
                action: "use the cache at",
                path: self.root.clone(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, problem.clone()),
            }),
        }
    }
}

/// Reads the records of one shard directory and picks each key's winner (see [`wins`]);
/// `has_master` says whether an entry's master is present (a record whose master is missing
/// is skipped with a warning).
fn read_shard(
    dir: &Path,
    has_master: impl Fn(&Entry) -> bool,
    quiet: bool,
) -> Result<BTreeMap<String, Entry>> {
    let mut contenders: Vec<(String, Entry)> = Vec::new();
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            tracing::warn!(
                "skipping `{}`: a shard of the cache must be a directory, not a link",
                dir.display()
            );
            return Ok(BTreeMap::new());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_error("read the records in", dir, e)),
    }
    for path in direct_files(dir)? {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let record = manage::read_record(&path);
        let record = match record {
            Ok(record) => record,
            Err(reason) => {
                tracing::warn!(
                    "skipping the cache record `{}`: {reason} (`mdbook-imagegen verify` explains, `verify --fix` removes it)",
                    path.display()
                );
                continue;
            }
        };
        let extension = crate::vocab::extension_of(&record.media_type).to_owned();
        let entry = Entry {
            master: record.master,
            extension,
            width: record.width,
            height: record.height,
            bytes: record.bytes,
            record: name,
            created_at: record.created_at,
        };
        if !has_master(&entry) {
            if quiet {
                continue;
            }
            tracing::warn!(
                "the cache record `{}` has no master; its image will be generated again",
                path.display()
            );
            continue;
        }
        contenders.push((record.key, entry));
    }
    Ok(wins::winners(contenders, wins::Rank::of_entry))
}

/// A directory's stamp: its modification time (which changes whenever a file is added to it or
/// removed from it), or `none` when it is missing.
fn dir_stamp(dir: &Path) -> String {
    match std::fs::metadata(dir).and_then(|m| m.modified()) {
        Ok(time) => {
            let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
        }
        Err(_) => "none".to_owned(),
    }
}

/// What makes a cache unsafe to use, if anything: its directory, or one of the directories and
/// files of its layout, is a symbolic link or not the kind of file it should be. A pull request
/// could add such a link to make builds write, and `gc` delete, somewhere else.
fn layout_problem(root: &Path) -> Option<String> {
    const DIRS: [&str; 14] = [
        "",
        "masters",
        "records",
        "tuned",
        "descriptions",
        "judgements",
        "picks",
        "tmp",
        "local",
        "local/masters",
        "local/records",
        "local/pending",
        "local/public",
        "local/locks",
    ];
    const FILES: [&str; 2] = ["index.redb", ".gitignore"];
    let kinds = DIRS
        .iter()
        .map(|d| (d, true))
        .chain(FILES.iter().map(|f| (f, false)));
    for (relative, is_dir) in kinds {
        let path = if relative.is_empty() {
            root.to_owned()
        } else {
            root.join(relative)
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        let expected = if is_dir {
            kind.is_dir()
        } else {
            kind.is_file()
        };
        if kind.is_symlink() || !expected {
            return Some(format!(
                "`{}` is {}; mdbook-imagegen never follows links out of its cache; replace it with a {}",
                path.display(),
                if kind.is_symlink() {
                    "a symbolic link"
                } else {
                    "not the kind of file the cache keeps there"
                },
                if is_dir { "directory" } else { "regular file" }
            ));
        }
    }
    None
}

/// Where a tier keeps a master: `masters/<first two digits>/<hash>.<extension>`.
fn master_file(tier_root: &Path, hash: &str, extension: &str) -> PathBuf {
    tier_root
        .join("masters")
        .join(hash.get(..2).unwrap_or(hash))
        .join(format!("{hash}.{extension}"))
}

/// A record's file name: its key, the start of its master's hash, and a nonce, so that no two
/// records ever share a path (and so never conflict in a merge).
fn record_name(key: &str, master: &str) -> String {
    let nonce = blake3::hash(
        format!(
            "{:?} {} {:?}",
            SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        )
        .as_bytes(),
    );
    format!("{key}-{}-{}.json", &master[..16], &nonce.to_hex()[..8])
}

/// Whether a text is a blake3 hash as the cache writes it: 64 lowercase hex digits.
pub(crate) fn is_hash(text: &str) -> bool {
    crate::vocab::is_hex(text, 64)
}

/// The index id under which a derivation published to a store is remembered.
fn published_id(store: &str, derivation: &str) -> String {
    format!("published {store} {derivation}")
}

/// The cache key (hex) a record's file name starts with.
pub(crate) fn record_name_key(name: &str) -> Option<&str> {
    (name.len() > 65 && name.as_bytes()[64] == b'-' && name.ends_with(".json"))
        .then(|| &name[..64])
        .filter(|key| key.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A reference image as a record names it.
fn named(image: &crate::request::RefImage) -> record::Reference {
    record::Reference {
        label: image.label.clone(),
        hash: image.hash.clone(),
    }
}

#[cfg(test)]
mod tests;
