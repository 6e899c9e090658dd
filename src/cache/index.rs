//! The redb index: a local, derived map from cache key to entry, so that a build that only hits
//! the cache reads one small file instead of every record.
//!
//! It is never the truth. Each shard of records (the directory `records/ab/`) is stamped with its
//! modification time when indexed; a shard whose stamp no longer matches is read again from the
//! records. A missing, corrupt or old-format index is rebuilt, never a reason to fail a build.
//! Reading opens the file read-only (a shared lock, and no byte of it changes); writing opens it
//! briefly at the end of a build. When another process holds it, we wait a bounded time and then
//! carry on without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{
    Builder, DatabaseError, ReadOnlyDatabase, ReadOnlyTable, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::assets::Manifest;
use crate::note::NoteKind;

/// Bump when the tables or the encoding of their values change; an index of another version is
/// rebuilt.
const SCHEMA: &str = "mdbook-imagegen index 4";

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// `"{tier}/{cache key}"` → JSON [`Entry`].
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// `"{tier}/{first two hex digits}"` → the stamp of that records directory when indexed.
const SHARDS: TableDefinition<&str, &str> = TableDefinition::new("shards");
/// Chapter source path → JSON list of the cache keys its directives use.
const REFS: TableDefinition<&str, &[u8]> = TableDefinition::new("chapter-refs");

/// `"{letter}/{file name}"` of a note (`d` a description, `j` a judgement) → its bytes, for the
/// shards stamped `d/ab` and `j/ab` in [`SHARDS`].
const NOTES: TableDefinition<&str, &[u8]> = TableDefinition::new("notes");

/// Derivation id (master, output settings, encoders) → JSON [`Manifest`] of the derived files.
const ASSETS: TableDefinition<&str, &[u8]> = TableDefinition::new("assets");

/// How long to wait for another process to let go of the index.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What the index knows of one cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The blake3 hash of the master, 64 hex digits.
    pub(crate) master: String,
    /// The master's file extension.
    pub(crate) extension: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// The master's size in bytes.
    pub(crate) bytes: u64,
    /// The record's file name in its shard directory.
    pub(crate) record: String,
    /// When the master was generated, RFC 3339; earlier wins when a key has several records.
    pub(crate) created_at: String,
}

/// The changes one build makes to the index.
#[derive(Debug, Default)]
pub(crate) struct Update {
    /// Shards read from the records: id → (stamp, entries by cache key).
    pub(crate) shards: BTreeMap<String, (String, BTreeMap<String, Entry>)>,
    /// Chapters whose references changed.
    pub(crate) refs: BTreeMap<String, Vec<String>>,
    /// Derivations made by this build.
    pub(crate) assets: BTreeMap<String, Manifest>,
    /// Note shards read from their files: `d/ab` or `j/ab` → (stamp, file name → bytes).
    pub(crate) notes: BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>,
}

impl Update {
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.is_empty()
            && self.refs.is_empty()
            && self.assets.is_empty()
            && self.notes.is_empty()
    }
}

/// The index as opened for reading.
pub(crate) struct Index {
    path: PathBuf,
    state: State,
    /// The shard stamps, read whole at open (a few hundred short strings at most).
    stamps: BTreeMap<String, String>,
    /// The chapter references, read whole at open.
    refs: BTreeMap<String, Vec<String>>,
    /// The notes (`d/<name>`, `j/<name>`), read whole at open (one small file per described or
    /// judged image; none in a book that asks for neither).
    notes: BTreeMap<String, Vec<u8>>,
    lock_wait: Duration,
}

enum State {
    Open {
        entries: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
        assets: Box<Option<ReadOnlyTable<&'static str, &'static [u8]>>>,
        // Kept last so the table above is dropped before the database.
        _database: ReadOnlyDatabase,
    },
    /// No usable file: everything is read from the records, and the file is rebuilt on write.
    Rebuild,
    /// Another process holds the file: read the records, and try to write at the end.
    Busy,
    /// Reading is over for this build.
    Closed,
    /// The cache must not be used (a link in its layout): never read, never written.
    Refused,
}

/// What is read from an index of the right schema.
struct Contents {
    entries: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    assets: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    stamps: BTreeMap<String, String>,
    refs: BTreeMap<String, Vec<String>>,
    notes: BTreeMap<String, Vec<u8>>,
}

impl Index {
    /// Opens the index for reading, without changing a byte of it.
    pub(crate) fn open(path: &Path, lock_wait: Duration) -> Index {
        let mut index = Index {
            path: path.to_owned(),
            state: State::Rebuild,
            stamps: BTreeMap::new(),
            refs: BTreeMap::new(),
            notes: BTreeMap::new(),
            lock_wait,
        };
        if !path.exists() {
            return index;
        }
        let unreadable = |reason: &dyn std::fmt::Display| {
            tracing::warn!(
                "the cache index `{}` is unreadable ({reason}); rebuilding it from the records",
                path.display()
            );
        };
        match wait_for(lock_wait, || Builder::new().open_read_only(path)) {
            Ok(database) => match read_contents(&database) {
                Ok(Some(contents)) => {
                    index.stamps = contents.stamps;
                    index.refs = contents.refs;
                    index.notes = contents.notes;
                    index.state = State::Open {
                        entries: contents.entries,
                        assets: Box::new(contents.assets),
                        _database: database,
                    };
                }
                Ok(None) => tracing::info!(
                    "the cache index `{}` is from another version; rebuilding it from the records",
                    path.display()
                ),
                Err(reason) => unreadable(&reason),
            },
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                tracing::debug!("the cache index is busy; reading the records directly");
                index.state = State::Busy;
            }
            Err(reason) => unreadable(&reason),
        }
        index
    }

    /// An index that is neither read nor written, for a cache that must not be used.
    pub(crate) fn unusable(path: &Path) -> Index {
        Index {
            path: path.to_owned(),
            state: State::Refused,
            stamps: BTreeMap::new(),
            refs: BTreeMap::new(),
            notes: BTreeMap::new(),
            lock_wait: Duration::ZERO,
        }
    }

    /// What is wrong with the index file, if anything a build would rebuild it for: unreadable,
    /// or of another version. A missing index is not a problem (the next build makes it).
    pub(crate) fn health(path: &Path, lock_wait: Duration) -> Option<String> {
        if !path.exists() {
            return None;
        }
        match wait_for(lock_wait, || Builder::new().open_read_only(path)) {
            Ok(database) => match read_contents(&database) {
                Ok(Some(_)) => None,
                Ok(None) => Some("it is from another version".to_owned()),
                Err(reason) => Some(format!("it is unreadable ({reason})")),
            },
            Err(DatabaseError::DatabaseAlreadyOpen) => None,
            Err(reason) => Some(format!("it is unreadable ({reason})")),
        }
    }

    /// Whether lookups can trust this index at all.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// The stamp a shard had when it was last indexed.
    pub(crate) fn shard_stamp(&self, shard: &str) -> Option<&str> {
        self.stamps.get(shard).map(String::as_str)
    }

    /// The indexed entry of a cache key, `"{tier}/{key}"`.
    pub(crate) fn entry(&self, id: &str) -> Option<Entry> {
        let State::Open {
            entries: Some(entries),
            ..
        } = &self.state
        else {
            return None;
        };
        let value = entries.get(id).ok().flatten()?;
        // Only an entry that names files the cache could have written is believed.
        serde_json::from_slice::<Entry>(value.value())
            .ok()
            .filter(|e| super::is_hash(&e.master) && super::record::is_record_name(&e.record))
    }

    /// The files derived under a derivation id, when this index knows them.
    pub(crate) fn manifest(&self, id: &str) -> Option<Manifest> {
        let State::Open { assets, .. } = &self.state else {
            return None;
        };
        let value = assets.as_ref().as_ref()?.get(id).ok().flatten()?;
        serde_json::from_slice(value.value()).ok()
    }

    /// The stamp a note shard (`d/ab`, `j/ab`) had when it was last indexed.
    pub(crate) fn note_stamp(&self, shard: &str) -> Option<&str> {
        self.stamps.get(shard).map(String::as_str)
    }

    /// The indexed note files of a kind whose names start with `prefix`, with their bytes.
    pub(crate) fn notes(
        &self,
        kind: NoteKind,
        prefix: &str,
    ) -> impl Iterator<Item = (&str, &[u8])> {
        let from = format!("{}/{prefix}", kind.letter());
        self.notes
            .range(from.clone()..)
            .take_while(move |(name, _)| name.starts_with(&from))
            .map(|(name, bytes)| (&name[2..], bytes.as_slice()))
    }

    /// The cache keys a chapter used when last built.
    pub(crate) fn refs(&self, chapter: &str) -> Option<&[String]> {
        self.refs.get(chapter).map(Vec::as_slice)
    }

    /// Reads again after [`Index::close`] (a later round of a build looks up more images).
    pub(crate) fn reopen(&mut self) {
        if matches!(self.state, State::Closed) {
            *self = Index::open(&self.path, self.lock_wait);
        }
    }

    /// Ends reading, releasing the shared lock so that another build can write.
    pub(crate) fn close(&mut self) {
        if matches!(self.state, State::Open { .. }) {
            self.state = State::Closed;
        }
    }

    /// Writes a build's changes. Failing to write is logged and otherwise ignored: the records
    /// hold everything the index does.
    pub(crate) fn apply(mut self, update: &Update) {
        if matches!(self.state, State::Refused) {
            return;
        }
        let rebuild = matches!(self.state, State::Rebuild);
        self.state = State::Closed;
        if update.is_empty() && !rebuild {
            return;
        }
        if let Err(reason) = write(&self.path, update, rebuild, self.lock_wait) {
            tracing::debug!(
                "the cache index `{}` was not updated ({reason}); the next build reads the records",
                self.path.display()
            );
        }
    }
}

/// Reads an index of the right schema; `None` when it has another schema.
fn read_contents(database: &ReadOnlyDatabase) -> Result<Option<Contents>, redb::Error> {
    let txn = database.begin_read()?;
    let schema_matches = match txn.open_table(META) {
        Ok(meta) => meta.get("schema")?.is_some_and(|v| v.value() == SCHEMA),
        Err(redb::TableError::TableDoesNotExist(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !schema_matches {
        return Ok(None);
    }
    let mut stamps = BTreeMap::new();
    if let Some(table) = optional_table(txn.open_table(SHARDS))? {
        for row in table.iter()? {
            let (shard, stamp) = row?;
            stamps.insert(shard.value().to_owned(), stamp.value().to_owned());
        }
    }
    let mut refs = BTreeMap::new();
    if let Some(table) = optional_table(txn.open_table(REFS))? {
        for row in table.iter()? {
            let (chapter, keys) = row?;
            if let Ok(keys) = serde_json::from_slice(keys.value()) {
                refs.insert(chapter.value().to_owned(), keys);
            }
        }
    }
    let mut notes = BTreeMap::new();
    if let Some(table) = optional_table(txn.open_table(NOTES))? {
        for row in table.iter()? {
            let (name, bytes) = row?;
            notes.insert(name.value().to_owned(), bytes.value().to_vec());
        }
    }
    Ok(Some(Contents {
        entries: optional_table(txn.open_table(ENTRIES))?,
        notes,
        assets: optional_table(txn.open_table(ASSETS))?,
        stamps,
        refs,
    }))
}

fn optional_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    table: Result<ReadOnlyTable<K, V>, redb::TableError>,
) -> Result<Option<ReadOnlyTable<K, V>>, redb::Error> {
    match table {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write(
    path: &Path,
    update: &Update,
    rebuild: bool,
    lock_wait: Duration,
) -> Result<(), redb::Error> {
    let database = match wait_for(lock_wait, || Builder::new().create(path)) {
        Ok(database) => database,
        Err(DatabaseError::DatabaseAlreadyOpen) => {
            return Err(DatabaseError::DatabaseAlreadyOpen.into());
        }
        Err(_) if rebuild => {
            // Corrupt beyond what redb repairs: start over; the records hold everything.
            let _ = fs_err::remove_file(path);
            Builder::new().create(path)?
        }
        Err(e) => return Err(e.into()),
    };
    let txn = database.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let current = meta.get("schema")?.map(|v| v.value() == SCHEMA);
        if current != Some(true) {
            drop(meta);
            for name in [
                "entries",
                "shards",
                "chapter-refs",
                "assets",
                "descriptions",
                "notes",
                "meta",
            ] {
                // A table of an older schema may have other types; delete it by name.
                let _ = txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new(name));
                let _ = txn.delete_table(redb::TableDefinition::<&str, &str>::new(name));
            }
            meta = txn.open_table(META)?;
            meta.insert("schema", SCHEMA)?;
        }
        let mut entries = txn.open_table(ENTRIES)?;
        let mut shards = txn.open_table(SHARDS)?;
        for (shard, (stamp, shard_entries)) in &update.shards {
            let low = shard.as_str();
            let high = format!("{shard}\u{10FFFF}");
            entries.retain_in(low..high.as_str(), |_, _| false)?;
            for (key, entry) in shard_entries {
                let id = format!("{}/{key}", &shard[..shard.find('/').unwrap_or(0)]);
                let value = serde_json::to_vec(entry).expect("an entry always serialises");
                entries.insert(id.as_str(), value.as_slice())?;
            }
            shards.insert(shard.as_str(), stamp.as_str())?;
        }
        let mut notes = txn.open_table(NOTES)?;
        for (shard, (stamp, files)) in &update.notes {
            // `d/ab`: every file of the shard is `d/` and a name that starts with `ab`.
            let high = format!("{shard}\u{10FFFF}");
            notes.retain_in(shard.as_str()..high.as_str(), |_, _| false)?;
            let letter = &shard[..shard.find('/').unwrap_or(0)];
            for (name, bytes) in files {
                notes.insert(format!("{letter}/{name}").as_str(), bytes.as_slice())?;
            }
            shards.insert(shard.as_str(), stamp.as_str())?;
        }
        let mut refs = txn.open_table(REFS)?;
        for (chapter, keys) in &update.refs {
            let value = serde_json::to_vec(keys).expect("a list of keys always serialises");
            refs.insert(chapter.as_str(), value.as_slice())?;
        }
        let mut assets = txn.open_table(ASSETS)?;
        for (id, manifest) in &update.assets {
            let value = serde_json::to_vec(manifest).expect("a manifest always serialises");
            assets.insert(id.as_str(), value.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Retries an open while another process holds the file, for at most `lock_wait`.
fn wait_for<T>(
    lock_wait: Duration,
    mut open: impl FnMut() -> Result<T, DatabaseError>,
) -> Result<T, DatabaseError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match open() {
            Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < lock_wait => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}
