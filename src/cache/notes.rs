//! Notes (descriptions and judgements a vision model wrote, see [`crate::note`]) on disk, found
//! through the index on a warm build: each `descriptions/ab/` shard, and the one `judgements/`
//! directory, is stamped with its modification time, and the index keeps the files of a shard
//! whose stamp still matches, so a build that changed nothing reads no note file. Whatever the
//! index holds passes the note's `parse` again before it is used, like a file would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Cache, dir_stamp, direct_files};
use crate::error::Result;
use crate::note::{self, Note, NoteKind};

/// A note shard read this build: (stamp, file name → bytes).
pub(super) type Shard = (String, BTreeMap<String, Vec<u8>>);

impl Cache {
    /// The note of a master by a writer (describer or judge), when one is kept: the earliest
    /// written (then the smallest name) of those that pass `N::parse`; crafted or damaged
    /// files are passed over with a warning.
    pub(crate) fn note<N: Note>(&mut self, master: &str, by: &str) -> Option<N> {
        if self.unusable.is_some() || master.len() < 16 {
            return None;
        }
        let kind = N::KIND;
        let prefix = note::name_prefix(master, by);
        let shard = kind.shard_of(master).to_owned();
        let mut found: Vec<(N, String)> = Vec::with_capacity(1);
        let mut consider = |name: &str, bytes: &[u8]| match N::parse(bytes, name) {
            Ok(record) if record.master() == master => found.push((record, name.to_owned())),
            Ok(_) => {}
            Err(why) => tracing::warn!(
                "imagegen: ignoring the {} `{}`: {}",
                kind.word(),
                crate::outside::for_terminal(name),
                crate::outside::for_terminal(&why)
            ),
        };
        let id = shard_id(kind, &shard);
        let stamp = self.note_stamp(kind, &shard);
        let slot = (kind, shard);
        if !self.noted.contains_key(&slot) && self.index.note_stamp(&id) == Some(stamp.as_str()) {
            for (name, bytes) in self.index.notes(kind, &prefix) {
                consider(name, bytes);
            }
        } else {
            let (_, files) = self.scan_notes(kind, &slot.1);
            let matching = files
                .range(prefix.clone()..)
                .take_while(|(n, _)| n.starts_with(&prefix));
            for (name, bytes) in matching {
                consider(name, bytes);
            }
        }
        if found.len() > 1 {
            found.sort_by(|a, b| (a.0.created(), &a.1).cmp(&(b.0.created(), &b.1)));
        }
        found.into_iter().next().map(|(record, _)| record)
    }

    /// Every note file of a kind (named as notes are; anything else is not ours), read under
    /// the build's rules: the record, or why a build passes over it.
    pub(crate) fn stored_notes<N: Note>(
        &self,
    ) -> Result<Vec<(PathBuf, std::result::Result<N, String>)>> {
        let kind = N::KIND;
        let mut out = Vec::new();
        let dir = self.root.join(kind.dir());
        let paths = if kind.sharded() {
            super::files_two_deep(&dir)?
        } else if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            direct_files(&dir)?
        } else {
            Vec::new()
        };
        for path in paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(master) = note::master_prefix(&name) else {
                continue;
            };
            let shard = path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str());
            let read = match shard.filter(|_| kind.sharded()) {
                Some(shard) if !master.starts_with(shard) => Err(format!(
                    "it is filed in `{shard}/`, not in its master's shard"
                )),
                _ => crate::files::read_regular(&path, kind.max_bytes())
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| N::parse(&bytes, &name)),
            };
            out.push((path, read));
        }
        Ok(out)
    }

    /// Keeps a note (committed, so that the team asks once per image).
    pub(crate) fn store_note<N: Note>(&mut self, record: &N) -> Result<PathBuf> {
        self.ensure_layout()?;
        let path = self.note_path(N::KIND, record.master(), &record.file_name());
        self.write_atomic(&path, &record.to_json(), "write")?;
        self.wrote_notes(N::KIND, N::KIND.shard_of(record.master()));
        Ok(path)
    }

    /// A note shard's stamp, taken once per build (until the build writes to it).
    fn note_stamp(&mut self, kind: NoteKind, shard: &str) -> String {
        let dir = self.shard_dir(kind, shard);
        self.stamps
            .entry((super::Tier::Committed, shard_id(kind, shard)))
            .or_insert_with(|| dir_stamp(&dir))
            .clone()
    }

    /// Forgets what this build read of a note shard it wrote to.
    pub(super) fn wrote_notes(&mut self, kind: NoteKind, shard: &str) {
        self.stamps
            .remove(&(super::Tier::Committed, shard_id(kind, shard)));
        self.noted.remove(&(kind, shard.to_owned()));
        self.noted_written.insert((kind, shard.to_owned()));
    }

    /// Where a note of `master` named `name` is kept.
    pub(crate) fn note_path(&self, kind: NoteKind, master: &str, name: &str) -> PathBuf {
        self.shard_dir(kind, kind.shard_of(master)).join(name)
    }

    fn shard_dir(&self, kind: NoteKind, shard: &str) -> PathBuf {
        self.root.join(kind.dir()).join(shard)
    }

    /// Reads a note shard's files once per build (names as the tool gives them, filed in their
    /// master's shard, regular files under the size cap, never through a link; a build checks
    /// each before use).
    fn scan_notes(&mut self, kind: NoteKind, shard: &str) -> &Shard {
        let slot = (kind, shard.to_owned());
        if !self.noted.contains_key(&slot) {
            let dir = self.shard_dir(kind, shard);
            let stamp = self.note_stamp(kind, shard);
            let real_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
            let listed = if real_dir {
                direct_files(&dir).unwrap_or_default()
            } else {
                Vec::new()
            };
            let files = listed
                .into_iter()
                .filter_map(|path| {
                    let name = path.file_name()?.to_str()?.to_owned();
                    note::master_prefix(&name).filter(|m| m.starts_with(shard))?;
                    let bytes = crate::files::read_regular(&path, kind.max_bytes()).ok()?;
                    Some((name, bytes))
                })
                .collect();
            self.noted.insert(slot.clone(), (stamp, files));
        }
        &self.noted[&slot]
    }

    /// The note shards this build read (or wrote) whose stamp the index lacks: what the index
    /// must learn so that the next build reads no file.
    pub(super) fn note_update(&mut self) -> BTreeMap<String, Shard> {
        for (kind, shard) in std::mem::take(&mut self.noted_written) {
            self.noted.remove(&(kind, shard.clone()));
            self.scan_notes(kind, &shard);
        }
        std::mem::take(&mut self.noted)
            .into_iter()
            .map(|((kind, shard), contents)| (shard_id(kind, &shard), contents))
            .filter(|(id, (stamp, _))| self.index.note_stamp(id) != Some(stamp.as_str()))
            .collect()
    }
}

/// A note shard's id in the index's stamps, beside the records' `c/ab` and `l/ab`: `d/ab` for
/// descriptions, `j/` for judgements.
fn shard_id(kind: NoteKind, shard: &str) -> String {
    format!("{}/{shard}", kind.letter())
}
