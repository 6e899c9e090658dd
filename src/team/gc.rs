//! `gc` and `gc --remote`: the team commands list and read what a cache holds, the policy in
//! [`crate::cache::gc`] judges it, and these remove what goes, records first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RemoteObject, Team};
use crate::assets;
use crate::cache::gc::{self, Derivation, Made};
use crate::cache::key::CacheKey;
use crate::cache::{self, Cache, Record, StoredMaster, StoredRecord, Tier};
use crate::error::Result;
use crate::storage::{Listed, Remote};

/// The object directories whose files are named after the master they were made from.
const MADE_FROM_MASTERS: [&str; 4] = ["tuned/", "descriptions/", "judgements/", "assets/"];

/// What the local cache says of its records: the record a build picks for each key, and the
/// current web files of masters.
struct Local<'a> {
    cache: &'a Cache,
    winners: &'a BTreeSet<PathBuf>,
    in_use: &'a BTreeSet<CacheKey>,
}

/// A local file named after the master it was made from, with the directory it must not be
/// removed from outside of.
struct Found<'a> {
    path: PathBuf,
    base: &'a Path,
    made: Made,
    name: String,
}

impl Team {
    /// Removes the records no directive uses (and the losers of keys that are used), the
    /// masters no remaining record names, their tuned qualities, descriptions and judgements, web files
    /// that are not the current ones of a remaining master, and what killed builds left in
    /// `tmp/` over an hour ago. Returns what it removed (or would, with `dry_run`) and each
    /// file's size.
    pub fn gc(&self, dry_run: bool) -> Result<Vec<(PathBuf, u64)>> {
        self.uses_are_known()?;
        let cache = Cache::of_book(&self.root, &self.config);
        // The record a build picks for each key (saying which records it skips, and why).
        let winners = cache.winners()?;
        let in_use = self.in_use();
        let records = cache.stored_records()?;
        let masters = cache.stored_masters()?;
        let root = self.cache_root.as_path();
        let mut found = made_files(
            &root.join("tuned"),
            root,
            Made::Tuned,
            cache::files_two_deep,
        )?;
        for kind in crate::note::NoteKind::ALL {
            let dir = root.join(kind.dir());
            found.extend(if kind.sharded() {
                made_files(&dir, root, Made::Note, cache::files_two_deep)?
            } else {
                made_files(&dir, root, Made::Note, cache::direct_files)?
            });
        }
        let in_cache = found.len();
        let picks = self.stale_picks(&cache)?;
        let leftovers = cache.leftovers()?;
        for (dir, base) in self.asset_dirs() {
            found.extend(made_files(&dir, base, Made::WebFile, cache::direct_files)?);
        }
        let names: Vec<String> = records.iter().map(|s| file_name(&s.path)).collect();
        let local = Local {
            cache: &cache,
            winners: &winners,
            in_use: &in_use,
        };
        let listing = gc::Listing {
            records: (records.iter().zip(&names))
                .map(|(stored, name)| self.record_item(&local, stored, name))
                .collect(),
            masters: masters.iter().map(master_item).collect(),
            made: found.iter().map(Found::item).collect(),
        };
        let verdict = gc::decide(&listing, &in_use, &gc::Options::local());
        // Removed in this order: records, masters, tuned qualities, notes, picks, what
        // killed builds left in `tmp/`, web files.
        let (made_in_cache, web_files): (Vec<_>, Vec<_>) =
            verdict.made.iter().partition(|(k, _)| *k < in_cache);
        let made = |&(k, _): &(usize, gc::Why)| (found[k].path.clone(), found[k].base);
        let mut doomed: Vec<(PathBuf, &Path)> = Vec::new();
        doomed.extend(
            verdict
                .records
                .iter()
                .map(|&(i, _)| (records[i].path.clone(), root)),
        );
        doomed.extend(
            verdict
                .masters
                .iter()
                .map(|&(j, _)| (masters[j].path.clone(), root)),
        );
        doomed.extend(made_in_cache.into_iter().map(made));
        doomed.extend(picks);
        doomed.extend(leftovers.into_iter().map(|p| (p, root)));
        doomed.extend(web_files.into_iter().map(made));
        remove_local(doomed, dry_run)
    }

    /// A local record as `gc` judges it; for one that may be kept, its master's current web
    /// files.
    fn record_item<'a>(
        &self,
        local: &Local<'_>,
        stored: &'a StoredRecord,
        name: &'a str,
    ) -> gc::RecordItem<'a> {
        let record = stored.record.as_ref().ok();
        let can_win = local.winners.contains(&stored.path);
        let derivation = match record {
            Some(r) if can_win && r.cache_key().is_some_and(|k| local.in_use.contains(&k)) => {
                self.derivation(local.cache, stored.tier, r)
            }
            _ => Derivation::Untracked,
        };
        gc::RecordItem {
            tier: stored.tier,
            name,
            modified: None,
            record,
            names_master: record.map(|r| r.master.as_str()),
            can_win,
            derivation,
        }
    }

    /// Removes from the remote cache what no directive of this book uses: records of unused
    /// keys, losers of used keys, masters no remaining record names, their tuned qualities and
    /// web files. The store is shared by every branch and machine, so nothing younger than
    /// `grace` goes (images of branches in flight, uploads under way), and the master of a
    /// record this version cannot read is kept. Returns what it removed (or would, with
    /// `dry_run`).
    pub fn gc_remote(&self, dry_run: bool, grace: Duration) -> Result<Vec<RemoteObject>> {
        self.uses_are_known()?;
        let remote = self.remote()?;
        let objects = self.remote_objects(&remote)?;
        let records = self.remote_records(&remote, &objects)?;
        let in_use = self.in_use();
        let masters: Vec<&Listed> = objects
            .values()
            .filter(|l| l.path.starts_with("masters/"))
            .collect();
        let made: Vec<&Listed> = objects
            .values()
            .filter(|l| MADE_FROM_MASTERS.iter().any(|d| l.path.starts_with(d)))
            .collect();
        let listing = gc::Listing {
            records: records
                .iter()
                .map(|(listed, record, master)| gc::RecordItem {
                    tier: Tier::Committed,
                    // The object path, as `gc --remote` has always ranked them (within one
                    // shard, the same order as their names).
                    name: &listed.path,
                    modified: listed.modified,
                    record: record.as_ref().ok(),
                    names_master: master.as_deref(),
                    can_win: master.as_ref().is_some_and(|m| objects.contains_key(m)),
                    derivation: Derivation::Untracked,
                })
                .collect(),
            masters: masters
                .iter()
                .map(|l| gc::MasterItem {
                    id: &l.path,
                    modified: l.modified,
                })
                .collect(),
            made: made.iter().map(|l| made_object(l)).collect(),
        };
        let verdict = gc::decide(&listing, &in_use, &gc::Options::remote(grace));
        let object = |listed: &Listed, why: gc::Why| RemoteObject {
            path: listed.path.clone(),
            bytes: listed.bytes,
            what: why.text().into(),
        };
        let doomed: Vec<RemoteObject> = (verdict.records.iter())
            .map(|&(i, why)| object(&records[i].0, why))
            .chain(
                verdict
                    .masters
                    .iter()
                    .map(|&(j, why)| object(masters[j], why)),
            )
            .chain(verdict.made.iter().map(|&(k, why)| object(made[k], why)))
            .collect();
        let claims = self.claim_objects(&remote)?;
        let now = std::time::SystemTime::now();
        let doomed: Vec<RemoteObject> = doomed
            .into_iter()
            .chain(
                super::claims::doomed_claims(&claims, now, grace)
                    .into_iter()
                    .map(|(listed, what)| RemoteObject {
                        path: listed.path.clone(),
                        bytes: listed.bytes,
                        what,
                    }),
            )
            .collect();
        if !dry_run && !doomed.is_empty() {
            delete_remote(&remote, &doomed)?;
        }
        Ok(doomed)
    }

    /// The picks no build reads: older picks of a directive, and picks of candidates no
    /// directive has any more.
    fn stale_picks(&self, cache: &Cache) -> Result<Vec<(PathBuf, &Path)>> {
        let groups: BTreeSet<CacheKey> = self
            .planned
            .iter()
            .filter_map(|p| p.variants()?.1.candidates.first().copied())
            .collect();
        let mut latest: BTreeMap<CacheKey, (String, PathBuf)> = BTreeMap::new();
        let mut doomed = Vec::new();
        for (path, read) in cache.stored_picks()? {
            let Ok(pick) = read else { continue };
            let key = pick.key;
            if !groups.contains(&key) {
                doomed.push((path, self.cache_root.as_path()));
                continue;
            }
            match latest.get(&key) {
                Some((stamp, _)) if *stamp >= pick.stamp => {
                    doomed.push((path, self.cache_root.as_path()));
                }
                _ => {
                    if let Some((_, older)) = latest.insert(key, (pick.stamp, path)) {
                        doomed.push((older, self.cache_root.as_path()));
                    }
                }
            }
        }
        Ok(doomed)
    }

    /// The current web files of a kept record's master, when the index knows its derivation.
    fn derivation(&self, cache: &Cache, tier: Tier, record: &Record) -> Derivation {
        // Only images made by a model live in the committed part (see `tier_of`).
        let origin = assets::Origin {
            provider: &record.provider,
            model: &record.model,
            by_model: tier == Tier::Committed,
        };
        let vector = record.media_type == "image/svg+xml";
        let frame = record
            .size
            .parse::<crate::config::Size>()
            .ok()
            .and_then(|size| {
                assets::frame((record.width, record.height), (size.width, size.height))
            })
            .filter(|_| !vector);
        let id = assets::derivation_id(&record.master, &origin, frame, &self.config.output, vector);
        match cache.manifest(&id) {
            Some(manifest) => {
                Derivation::Known(manifest.files.into_iter().map(|f| f.name).collect())
            }
            None => Derivation::Unknown,
        }
    }

    /// The directories web files are written to, each with the directory it lies in: the
    /// assets directory, and the copies beside chapters in subdirectories (only those inside
    /// the source directory, and not behind a link).
    fn asset_dirs(&self) -> Vec<(PathBuf, &Path)> {
        let base: &Path = if self.assets_dir.starts_with(&self.cache_root) {
            &self.cache_root
        } else {
            &self.src_dir
        };
        let mut dirs: BTreeMap<PathBuf, &Path> = BTreeMap::from([(self.assets_dir.clone(), base)]);
        for p in &self.planned {
            let chapter = Path::new(&p.file);
            let Ok(inside) = chapter.strip_prefix(&self.src) else {
                continue;
            };
            if let Some(parent) = inside.parent()
                && let Some(dir) = crate::files::join_inside(&self.src_dir, parent)
            {
                let dir = dir.join(&self.config.assets_dir);
                if crate::files::check_confined(&self.src_dir, &dir).is_ok() {
                    dirs.insert(dir, &self.src_dir);
                }
            }
        }
        dirs.into_iter().collect()
    }
}

impl Found<'_> {
    fn item(&self) -> gc::MadeItem<'_> {
        gc::MadeItem {
            made: self.made,
            name: &self.name,
            prefix: made_prefix(self.made, &self.name).unwrap_or_default(),
            modified: None,
        }
    }
}

/// The files `list` finds in `dir` that are named as the build names what it makes from a
/// master (anything else there is someone else's).
fn made_files<'a>(
    dir: &Path,
    base: &'a Path,
    made: Made,
    list: fn(&Path) -> Result<Vec<PathBuf>>,
) -> Result<Vec<Found<'a>>> {
    Ok(list(dir)?
        .into_iter()
        .filter_map(|path| {
            let name = file_name(&path);
            made_prefix(made, &name)?;
            Some(Found {
                path,
                base,
                made,
                name,
            })
        })
        .collect())
}

/// The master a made file's name gives (the first 16 hex digits of its hash), when the build
/// gives such names.
fn made_prefix(made: Made, name: &str) -> Option<&str> {
    match made {
        Made::Tuned => assets::tuned_master_prefix(name),
        Made::Note => crate::note::master_prefix(name),
        Made::WebFile => assets::asset_master_prefix(name),
    }
}

/// A remote object made from a master, as `gc --remote` judges it: by the part of its name
/// before the first `-`.
fn made_object(listed: &Listed) -> gc::MadeItem<'_> {
    let name = listed.path.rsplit('/').next().unwrap_or_default();
    let made = if listed.path.starts_with("tuned/") {
        Made::Tuned
    } else if listed.path.starts_with("descriptions/") || listed.path.starts_with("judgements/") {
        Made::Note
    } else {
        Made::WebFile
    };
    gc::MadeItem {
        made,
        name,
        prefix: name.split('-').next().unwrap_or_default(),
        modified: listed.modified,
    }
}

/// A local master as `gc` judges it: by its hash, whatever its age.
fn master_item(master: &StoredMaster) -> gc::MasterItem<'_> {
    gc::MasterItem {
        id: &master.name_hash,
        modified: None,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Removes local files one by one, each confined to its directory; returns each with its size.
fn remove_local(doomed: Vec<(PathBuf, &Path)>, dry_run: bool) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for (path, base) in doomed {
        let bytes = crate::files::regular_len(&path).unwrap_or(0);
        if !dry_run {
            cache::remove(base, &path)?;
        }
        out.push((path, bytes));
    }
    Ok(out)
}

/// Deletes remote objects, records first: a record never outlives its master, even if this is
/// interrupted.
fn delete_remote(remote: &Remote, doomed: &[RemoteObject]) -> Result<()> {
    let (first, then): (Vec<&RemoteObject>, Vec<&RemoteObject>) =
        doomed.iter().partition(|o| o.path.starts_with("records/"));
    for group in [first, then] {
        let paths: Vec<String> = group.iter().map(|o| o.path.clone()).collect();
        remote.delete(&paths)?;
    }
    Ok(())
}
