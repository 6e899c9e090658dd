//! Descriptions (alt text a vision model wrote) on disk, found through the index on a warm
//! build: each `descriptions/ab/` shard is stamped with its directory's modification time, and
//! the index keeps the files of a shard whose stamp still matches, so a build that changed
//! nothing reads no description file. Whatever the index holds passes
//! [`description::Record::parse`] again before it is used, like a file would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Cache, dir_stamp, direct_files};
use crate::description;
use crate::error::Result;

impl Cache {
    /// The description of a master by a describer, when one is kept: the earliest written
    /// (then the smallest name) of those that pass [`description::Record::parse`]; crafted or
    /// damaged files are passed over with a warning.
    pub(crate) fn description(
        &mut self,
        master: &str,
        describer: &str,
    ) -> Option<description::Record> {
        if self.unusable.is_some() || master.len() < 16 {
            return None;
        }
        let prefix = description::name_prefix(master, describer);
        let shard = master[..2].to_owned();
        let mut found: Vec<(description::Record, String)> = Vec::new();
        let mut consider = |name: &str, bytes: &[u8]| match description::Record::parse(bytes, name)
        {
            Ok(record) if record.master == master => found.push((record, name.to_owned())),
            Ok(_) => {}
            Err(why) => tracing::warn!(
                "imagegen: ignoring the description `{}`: {}",
                crate::outside::for_terminal(name),
                crate::outside::for_terminal(&why)
            ),
        };
        let stamp = self.description_stamp(&shard);
        if !self.described.contains_key(&shard)
            && self.index.description_stamp(&shard_id(&shard)) == Some(stamp.as_str())
        {
            for (name, bytes) in self.index.descriptions(&prefix) {
                consider(name, bytes);
            }
        } else {
            let (_, files) = self.scan_descriptions(&shard);
            let matching = files
                .range(prefix.clone()..)
                .take_while(|(n, _)| n.starts_with(&prefix));
            for (name, bytes) in matching {
                consider(name, bytes);
            }
        }
        found.sort_by(|a, b| (a.0.created(), &a.1).cmp(&(b.0.created(), &b.1)));
        found.into_iter().next().map(|(record, _)| record)
    }

    /// Every description file (named as descriptions are; anything else is not ours), read
    /// under the build's rules: the record, or why a build passes over it.
    pub(crate) fn stored_descriptions(
        &self,
    ) -> Result<Vec<(PathBuf, std::result::Result<description::Record, String>)>> {
        let mut out = Vec::new();
        for path in super::files_two_deep(&self.root.join("descriptions"))? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(master) = description::master_prefix(&name) else {
                continue;
            };
            let shard = path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str());
            let read = match shard {
                Some(shard) if !master.starts_with(shard) => Err(format!(
                    "it is filed in `{shard}/`, not in its master's shard"
                )),
                _ => crate::files::read_regular(&path, description::MAX_RECORD_BYTES)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| description::Record::parse(&bytes, &name)),
            };
            out.push((path, read));
        }
        Ok(out)
    }

    /// Keeps a description (committed, so that the team describes each image once).
    pub(crate) fn store_description(&mut self, record: &description::Record) -> Result<PathBuf> {
        self.ensure_layout()?;
        let path = self.description_path(&record.master, &record.file_name());
        self.write_atomic(&path, &record.to_json(), "write")?;
        self.wrote_descriptions(&record.master[..2]);
        Ok(path)
    }

    /// A description shard's stamp, taken once per build (until the build writes to it).
    fn description_stamp(&mut self, shard: &str) -> String {
        let dir = self.shard_dir(shard);
        self.stamps
            .entry((super::Tier::Committed, shard_id(shard)))
            .or_insert_with(|| dir_stamp(&dir))
            .clone()
    }

    /// Forgets what this build read of a description shard it wrote to.
    pub(super) fn wrote_descriptions(&mut self, shard: &str) {
        self.stamps
            .remove(&(super::Tier::Committed, shard_id(shard)));
        self.described.remove(shard);
        self.described_written.insert(shard.to_owned());
    }

    /// Where a description of `master` named `name` is kept.
    pub(crate) fn description_path(&self, master: &str, name: &str) -> PathBuf {
        self.shard_dir(&master[..2]).join(name)
    }

    fn shard_dir(&self, shard: &str) -> PathBuf {
        self.root.join("descriptions").join(shard)
    }

    /// Reads a description shard's files once per build (names as the tool gives them, filed
    /// in their master's shard, regular files under the size cap, never through a link; a
    /// build checks each before use).
    fn scan_descriptions(&mut self, shard: &str) -> &(String, BTreeMap<String, Vec<u8>>) {
        if !self.described.contains_key(shard) {
            let dir = self.shard_dir(shard);
            let stamp = self.description_stamp(shard);
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
                    description::master_prefix(&name).filter(|m| m.starts_with(shard))?;
                    let bytes =
                        crate::files::read_regular(&path, description::MAX_RECORD_BYTES).ok()?;
                    Some((name, bytes))
                })
                .collect();
            self.described.insert(shard.to_owned(), (stamp, files));
        }
        &self.described[shard]
    }

    /// The description shards this build read (or wrote) whose stamp the index lacks: what
    /// the index must learn so that the next build reads no file.
    pub(super) fn description_update(
        &mut self,
    ) -> BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)> {
        for shard in std::mem::take(&mut self.described_written) {
            self.described.remove(&shard);
            self.scan_descriptions(&shard);
        }
        std::mem::take(&mut self.described)
            .into_iter()
            .filter(|(shard, (stamp, _))| {
                self.index.description_stamp(&shard_id(shard)) != Some(stamp.as_str())
            })
            .map(|(shard, contents)| (shard_id(&shard), contents))
            .collect()
    }
}

/// A description shard's id in the index's stamps, beside the records' `c/ab` and `l/ab`.
fn shard_id(shard: &str) -> String {
    format!("d/{shard}")
}
