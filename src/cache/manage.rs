//! What the team commands need from the cache: every record and master on disk, the winner of
//! each key, integrity checks, and removals. Reads and deletes files; never writes a record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::record::Record;
use super::{Cache, Tier, index, io_error, read_shard};
use crate::error::Result;

/// A record file and what it holds.
pub(crate) struct StoredRecord {
    pub(crate) tier: Tier,
    pub(crate) path: PathBuf,
    pub(crate) record: std::result::Result<Record, RecordError>,
}

/// A master file.
pub(crate) struct StoredMaster {
    pub(crate) path: PathBuf,
    /// The hash its name claims.
    pub(crate) name_hash: String,
}

/// Something `verify` found.
pub(crate) struct Problem {
    pub(crate) path: PathBuf,
    pub(crate) what: String,
    /// Whether `verify --fix` repairs it (by removing the file, or rebuilding the index).
    pub(crate) fixable: bool,
}

const TIERS: [Tier; 2] = [Tier::Committed, Tier::Local];

impl Cache {
    /// Every record file, in path order, read under the build's rules.
    pub(crate) fn stored_records(&self) -> Result<Vec<StoredRecord>> {
        self.usable()?;
        let mut out = Vec::new();
        for tier in TIERS {
            for path in files_two_deep(&self.tier_root(tier).join("records"))? {
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let record = read_record(&path);
                out.push(StoredRecord { tier, path, record });
            }
        }
        Ok(out)
    }

    /// Every master file, in path order: the files of `masters/` named as the cache names
    /// masters (anything else there is not one, and `verify` says so).
    pub(crate) fn stored_masters(&self) -> Result<Vec<StoredMaster>> {
        Ok(self
            .master_files()?
            .into_iter()
            .filter_map(|path| {
                let name_hash = master_name_hash(&path)?;
                Some(StoredMaster { path, name_hash })
            })
            .collect())
    }

    /// Every file in the masters directories, whatever its name.
    fn master_files(&self) -> Result<Vec<PathBuf>> {
        self.usable()?;
        let mut out = Vec::new();
        for tier in TIERS {
            out.extend(files_two_deep(&self.tier_root(tier).join("masters"))?);
        }
        Ok(out)
    }

    /// The path of the master a record names.
    pub(crate) fn master_of(&self, tier: Tier, record: &Record) -> PathBuf {
        super::master_file(
            &self.tier_root(tier),
            &record.master,
            crate::vocab::extension_of(&record.media_type),
        )
    }

    /// The record file that wins each key, by tier and key: the one every build uses.
    pub(crate) fn winners(&self) -> Result<BTreeSet<PathBuf>> {
        let mut out = BTreeSet::new();
        for tier in TIERS {
            let records = self.tier_root(tier).join("records");
            for shard in subdirectories(&records)? {
                let dir = records.join(&shard);
                // A master kept only in the remote cache still makes its record the winner.
                let remote = self.remote_masters && tier == Tier::Committed;
                let winners = read_shard(
                    &dir,
                    |entry| remote || crate::files::is_regular(&self.master_path(tier, entry)),
                    self.remote_masters,
                )?;
                out.extend(winners.values().map(|entry| dir.join(&entry.record)));
            }
        }
        Ok(out)
    }

    /// Checks the cache by exactly the rules a build reads it with: every file in `masters/`
    /// is a master named by its content's hash, every record passes [`Record::parse`] in its
    /// key's shard and has its master, and the index is readable and agrees with the records
    /// where it claims to be current. A problem `--fix` can repair is repaired by removing the
    /// file (a build ignores it anyway) or rebuilding the index, so one `--fix` is enough.
    /// Files an interrupted build left in `tmp/` are harmless, and not checked (`gc` removes
    /// them).
    pub(crate) fn verify(&mut self) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        for path in self.master_files()? {
            problems.extend(check_master(&path));
        }
        for stored in self.stored_records()? {
            problems.extend(self.check_record(&stored));
        }
        // Small committed files a build skips when they do not read: `--fix` removes them.
        let ignored = |path, reason: String, what: &str, then: &str| Problem {
            path,
            what: format!("a build ignores this {what}: {reason}; --fix removes it ({then})"),
            fixable: true,
        };
        for (path, read) in self.stored_notes::<crate::description::Record>()? {
            if let Err(reason) = read {
                let then = "the next build describes the image again";
                problems.push(ignored(path, reason, "description", then));
            }
        }
        for (path, read) in self.stored_notes::<crate::judgement::Record>()? {
            if let Err(reason) = read {
                let then = "the next build with a judge judges the image again";
                problems.push(ignored(path, reason, "judgement", then));
            }
        }
        for (path, read) in self.stored_picks()? {
            if let Err(reason) = read {
                problems.push(ignored(path, reason, "pick", "run `pick` again to choose"));
            }
        }
        let index = self.root.join("index.redb");
        if let Some(reason) = index::Index::health(&index, index::LOCK_WAIT) {
            problems.push(Problem {
                path: index,
                what: format!("the index is unusable: {reason}; --fix (or `reindex`) rebuilds it"),
                fixable: true,
            });
        } else if let Some(problem) = self.index_disagreement()? {
            problems.push(problem);
        }
        Ok(problems)
    }

    /// What is wrong with one record file, by the build's rules.
    fn check_record(&self, stored: &StoredRecord) -> Option<Problem> {
        let problem = |what: String, fixable| {
            Some(Problem {
                path: stored.path.clone(),
                what,
                fixable,
            })
        };
        match &stored.record {
            Err(RecordError::Unreadable(reason)) => problem(
                format!(
                    "unreadable record ({reason}); a merge conflict? restore it with `git checkout`, or delete it"
                ),
                false,
            ),
            Err(RecordError::Refused(reason)) => problem(
                format!("a build ignores this record: {reason}; --fix removes it"),
                true,
            ),
            Ok(record)
                if !(crate::files::is_regular(&self.master_of(stored.tier, record))
                    || self.remote_masters && stored.tier == Tier::Committed) =>
            {
                problem(
                    "its master is missing; --fix removes the record, and the next build generates the image again".to_owned(),
                    true,
                )
            }
            Ok(_) => None,
        }
    }

    /// Whether a current shard of the index disagrees with its records.
    fn index_disagreement(&mut self) -> Result<Option<Problem>> {
        for tier in TIERS {
            let records = self.tier_root(tier).join("records");
            for shard in subdirectories(&records)? {
                let id = format!("{}/{shard}", tier.id());
                let stamp = self.stamp(tier, &shard);
                if self.index.shard_stamp(&id) != Some(stamp.as_str()) {
                    continue; // Stale is normal after a pull: the next build reads it again.
                }
                let dir = records.join(&shard);
                let winners = read_shard(
                    &dir,
                    |entry| crate::files::is_regular(&self.master_path(tier, entry)),
                    true,
                )?;
                let disagrees = winners.iter().any(|(key, entry)| {
                    self.index.entry(&format!("{}/{key}", tier.id())).as_ref() != Some(entry)
                });
                if disagrees {
                    return Ok(Some(Problem {
                        path: self.root.join("index.redb"),
                        what: format!(
                            "the index disagrees with the records in `{}`; --fix (or `reindex`) rebuilds it",
                            dir.display()
                        ),
                        fixable: true,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Rebuilds the index from the records. Returns how many keys it holds.
    pub(crate) fn reindex(root: &Path) -> Result<usize> {
        let index = root.join("index.redb");
        Cache::open(root).usable()?;
        if std::fs::symlink_metadata(&index).is_ok() {
            crate::files::remove_confined(root, &index)
                .map_err(|e| io_error("remove", &index, e))?;
        }
        let mut cache = Cache::open(root);
        let mut keys = 0;
        for tier in TIERS {
            for shard in subdirectories(&cache.tier_root(tier).join("records"))? {
                keys += cache.scan(tier, &shard)?.len();
            }
        }
        cache.finish(BTreeMap::new())?;
        Ok(keys)
    }
}

impl Cache {
    /// Files in `tmp/` older than an hour: left by a build that was killed while writing.
    pub(crate) fn leftovers(&self) -> Result<Vec<PathBuf>> {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        Ok(direct_files(&self.root.join("tmp"))?
            .into_iter()
            .filter(|p| {
                // Only the temporary names the cache writes under.
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
                    && std::fs::symlink_metadata(p)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t < hour_ago)
            })
            .collect())
    }
}

/// Removes a file below `base` (never through a link), saying which on failure.
pub(crate) fn remove(base: &Path, path: &Path) -> Result<()> {
    crate::files::remove_confined(base, path).map_err(|e| io_error("remove", path, e))
}

/// Why a record file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// It cannot be read as a record at all (a merge conflict, a damaged file): restore it.
    Unreadable(String),
    /// It reads, but breaks a rule every build applies (crafted, moved, renamed, or written by
    /// another version): builds ignore it.
    Refused(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Unreadable(reason) | RecordError::Refused(reason) => f.write_str(reason),
        }
    }
}

/// Reads one record file by the build's rules: a regular file of bounded size, a record by
/// [`Record::parse`], filed in its key's shard.
pub(crate) fn read_record(path: &Path) -> std::result::Result<Record, RecordError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let shard = path
        .parent()
        .and_then(Path::file_name)
        .unwrap_or_default()
        .to_string_lossy();
    let bytes = crate::files::read_regular(path, super::record::MAX_RECORD_BYTES)
        .map_err(|e| RecordError::Refused(e.to_string()))?;
    let record = Record::parse(&bytes, &name).map_err(|reason| {
        // Only a refused record is looked at twice, to tell a damaged file from a crafted one.
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            RecordError::Unreadable("not JSON".to_owned())
        } else {
            RecordError::Refused(reason)
        }
    })?;
    if !record.key.starts_with(shard.as_ref()) {
        return Err(RecordError::Refused(
            "it is filed under another key's shard".to_owned(),
        ));
    }
    Ok(record)
}

/// The hash a master's file name claims: `<64 hex digits>.<png|jpg|webp>`.
pub(crate) fn master_name_hash(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (hash, extension) = name.split_once('.')?;
    (super::is_hash(hash) && crate::vocab::is_master_extension(extension)).then(|| hash.to_owned())
}

/// What is wrong with one file of `masters/`: not a master's name, not a regular file, or its
/// content does not match its name.
fn check_master(path: &Path) -> Option<Problem> {
    let problem = |what: String, fixable| {
        Some(Problem {
            path: path.to_owned(),
            what,
            fixable,
        })
    };
    let Some(name_hash) = master_name_hash(path) else {
        return problem(
            "not a master (masters are named by their hash); --fix removes it".to_owned(),
            true,
        );
    };
    match crate::files::read_regular(path, crate::provider::MAX_MASTER_BYTES as u64) {
        Err(e) => problem(format!("{e}; --fix removes it"), true),
        Ok(bytes) if blake3::hash(&bytes).to_hex().as_str() != name_hash => problem(
            "its content does not match its name (damaged or edited); restore it with `git checkout`, or delete it and its records to generate the image again".to_owned(),
            false,
        ),
        // Every SVG master was sanitized before it was stored; one that a sanitizing pass
        // changes holds parts a build removes (a crafted file in a pull request), or was
        // stored by another version of the sanitizer. Builds sanitize it again before anything
        // reaches a page, so it is reported, never removed: it may be an image someone paid for.
        Ok(bytes) if path.extension().is_some_and(|e| e == "svg") => {
            match crate::svg::sanitize(&bytes) {
                Ok(svg) if svg.bytes == bytes => None,
                Ok(_) => problem(
                    "an SVG master that holds parts a build removes (scripts, links, …) or was stored by another version; builds sanitize it before it reaches a page; if no build of yours stored it, review where it came from and delete it and its records".to_owned(),
                    false,
                ),
                Err(reason) => problem(
                    format!(
                        "{}; a build cannot show it: delete it and its records to generate the image again",
                        crate::outside::clean(&reason, crate::outside::SHOWN_CHARS)
                    ),
                    false,
                ),
            }
        }
        Ok(_) => None,
    }
}

/// The names of the directories in `dir` (none when it is missing), sorted.
fn subdirectories(dir: &Path) -> Result<Vec<String>> {
    Ok(listing(dir, true)?
        .into_iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect())
}

/// The files directly in `dir`, sorted.
pub(crate) fn direct_files(dir: &Path) -> Result<Vec<PathBuf>> {
    listing(dir, false)
}

/// The directories (or everything else: files, links, FIFOs) in `dir`, sorted; nothing when
/// `dir` is missing.
fn listing(dir: &Path, directories: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(items) => {
            for item in items {
                let item = item.map_err(|e| io_error("read", dir, e))?;
                let kind = item.file_type().map_err(|e| io_error("read", dir, e))?;
                // Links are listed as files (never followed into), so that readers refuse them
                // by name and `verify` can report them.
                if kind.is_dir() == directories {
                    out.push(item.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("read", dir, e)),
    }
    out.sort();
    Ok(out)
}

/// The files one directory down (`dir/ab/file`), sorted.
pub(crate) fn files_two_deep(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for shard in subdirectories(dir)? {
        out.extend(direct_files(&dir.join(shard))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crafted_svg_master_is_a_problem_a_sanitized_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = |bytes: &[u8]| {
            let hash = blake3::hash(bytes).to_hex().to_string();
            let path = dir.path().join(format!("{hash}.svg"));
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let crafted = store(
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><script>alert(1)</script></svg>"#,
        );
        let problem = check_master(&crafted).unwrap();
        assert!(
            !problem.fixable,
            "a paid-for image is never removed by --fix"
        );
        assert!(
            problem.what.contains("parts a build removes"),
            "{}",
            problem.what
        );
        let clean = crate::svg::sanitize(
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><rect width="4" height="4"/></svg>"#,
        )
        .unwrap();
        assert!(check_master(&store(&clean.bytes)).is_none());
    }
}
