//! What the team commands need from the cache: every record and master on disk, the winner of
//! each key, integrity checks, and removals. Reads and deletes files; never writes a record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::record::Record;
use super::{Cache, Tier, io_error, read_shard};
use crate::error::Result;
use crate::plan::{CACHE_VERSION, CacheKey};

/// A record file and what it holds.
pub(crate) struct StoredRecord {
    pub(crate) tier: Tier,
    pub(crate) path: PathBuf,
    pub(crate) record: std::result::Result<Record, String>,
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
    /// Every record file, in path order.
    pub(crate) fn stored_records(&self) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        for tier in TIERS {
            for path in files_two_deep(&self.tier_root(tier).join("records"))? {
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let text = fs_err::read(&path).map_err(|e| io_error("read", &path, e))?;
                let record = serde_json::from_slice::<Record>(&text)
                    .map_err(|e| format!("not a record: {e}"))
                    .and_then(|r| {
                        if r.format != CACHE_VERSION {
                            Err(format!("written by cache format {}", r.format))
                        } else if CacheKey::from_hex(&r.key).is_none() {
                            Err("its key is not 64 hex digits".to_owned())
                        } else {
                            Ok(r)
                        }
                    });
                out.push(StoredRecord { tier, path, record });
            }
        }
        Ok(out)
    }

    /// Every master file, in path order.
    pub(crate) fn stored_masters(&self) -> Result<Vec<StoredMaster>> {
        let mut out = Vec::new();
        for tier in TIERS {
            for path in files_two_deep(&self.tier_root(tier).join("masters"))? {
                let name_hash = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(StoredMaster { path, name_hash });
            }
        }
        Ok(out)
    }

    /// The path of the master a record names.
    pub(crate) fn master_of(&self, tier: Tier, record: &Record) -> PathBuf {
        let extension = super::extension_of(&record.media_type);
        self.tier_root(tier)
            .join("masters")
            .join(&record.master[..2.min(record.master.len())])
            .join(format!("{}.{extension}", record.master))
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
                    |entry| remote || self.master_path(tier, entry).exists(),
                    self.remote_masters,
                )?;
                out.extend(winners.values().map(|entry| dir.join(&entry.record)));
            }
        }
        Ok(out)
    }

    /// Checks that every master's content matches its name, that every record reads and has
    /// its master, and that the index agrees with the records where it claims to be current.
    /// Files an interrupted build left in `tmp/` are harmless, and not checked (`gc` removes
    /// them).
    pub(crate) fn verify(&mut self) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        for master in self.stored_masters()? {
            let bytes =
                fs_err::read(&master.path).map_err(|e| io_error("read", &master.path, e))?;
            let hash = blake3::hash(&bytes).to_hex();
            if hash.as_str() != master.name_hash {
                problems.push(Problem {
                    path: master.path,
                    what: "its content does not match its name (damaged or edited); restore it with `git checkout`, or delete it and its records to generate the image again".to_owned(),
                    fixable: false,
                });
            }
        }
        for stored in self.stored_records()? {
            match &stored.record {
                Err(reason) => problems.push(Problem {
                    path: stored.path,
                    what: format!(
                        "unreadable record ({reason}); a merge conflict? restore it with `git checkout`, or delete it"
                    ),
                    fixable: false,
                }),
                Ok(record)
                    if !(self.master_of(stored.tier, record).exists()
                        || self.remote_masters && stored.tier == Tier::Committed) =>
                {
                    problems.push(Problem {
                        path: stored.path,
                        what: "its master is missing; --fix removes the record, and the next build generates the image again".to_owned(),
                        fixable: true,
                    });
                }
                Ok(_) => {}
            }
        }
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
                    |entry| self.master_path(tier, entry).exists(),
                    self.remote_masters,
                )?;
                let disagrees = winners.iter().any(|(key, entry)| {
                    self.index.entry(&format!("{}/{key}", tier.id())).as_ref() != Some(entry)
                });
                if disagrees {
                    problems.push(Problem {
                        path: self.root.join("index.redb"),
                        what: format!(
                            "the index disagrees with the records in `{}`; --fix (or `reindex`) rebuilds it",
                            dir.display()
                        ),
                        fixable: true,
                    });
                    break;
                }
            }
        }
        Ok(problems)
    }

    /// Rebuilds the index from the records. Returns how many keys it holds.
    pub(crate) fn reindex(root: &Path) -> Result<usize> {
        let index = root.join("index.redb");
        if index.exists() {
            fs_err::remove_file(&index).map_err(|e| io_error("remove", &index, e))?;
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
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago)
            })
            .collect())
    }
}

/// Removes a file, saying which on failure.
pub(crate) fn remove(path: &Path) -> Result<()> {
    fs_err::remove_file(path).map_err(|e| io_error("remove", path, e))
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

/// The directories (or the files) in `dir`, sorted; nothing when `dir` is missing.
fn listing(dir: &Path, directories: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(items) => {
            for item in items {
                let item = item.map_err(|e| io_error("read", dir, e))?;
                let kind = item.file_type().map_err(|e| io_error("read", dir, e))?;
                if (directories && kind.is_dir()) || (!directories && kind.is_file()) {
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
