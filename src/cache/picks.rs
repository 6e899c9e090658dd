//! Which candidate of a directive's `variants` its figure shows: `mdbook-imagegen pick` writes
//! a small committed file, `picks/ab/<key>-<stamp>.txt`, whose text is the candidate's number
//! (from 1). The key is the first candidate's; every pick is a new file, so two people who pick
//! at once merge without a conflict, and the latest stamp wins on every machine.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::key::CacheKey;
use super::{Cache, io_error};
use crate::error::Result;

/// The largest pick file read.
const MAX_PICK_BYTES: u64 = 64;

/// One pick file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    /// The first candidate's key.
    pub(crate) key: CacheKey,
    /// Nanoseconds since 1970, 20 digits: later wins.
    pub(crate) stamp: String,
    /// The candidate shown, from 0.
    pub(crate) candidate: u32,
}

impl Pick {
    /// Reads a pick from its file name and text; `None` for anything that is not exactly one.
    pub(crate) fn parse(name: &str, text: &str) -> Option<Pick> {
        let stem = name.strip_suffix(".txt")?;
        let (key, stamp) = stem.split_once('-')?;
        if stamp.len() != 20 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let key = CacheKey::from_hex(key).filter(|k| k.to_hex() == key)?;
        let number: u32 = text.strip_suffix('\n').unwrap_or(text).parse().ok()?;
        if !(1..=crate::directive::MAX_VARIANTS).contains(&number) || text.starts_with('+') {
            return None;
        }
        Some(Pick {
            key,
            stamp: stamp.to_owned(),
            candidate: number - 1,
        })
    }

    /// The file's name.
    pub(crate) fn file_name(&self) -> String {
        format!("{}-{}.txt", self.key.to_hex(), self.stamp)
    }
}

impl Cache {
    fn picks_dir(&self, key: CacheKey) -> PathBuf {
        self.root.join("picks").join(&key.to_hex()[..2])
    }

    /// The candidate (from 0) picked for the directive whose first candidate has `key`, if any:
    /// the latest valid pick. Anything else in the directory is ignored (`verify` reports it).
    pub(crate) fn picked(&self, key: CacheKey) -> Option<u32> {
        let dir = self.picks_dir(key);
        // Never through a link (a pull request could add one).
        for part in [self.root.join("picks"), dir.clone()] {
            if std::fs::symlink_metadata(&part).is_ok_and(|m| !m.is_dir()) {
                return None;
            }
        }
        let prefix = format!("{}-", key.to_hex());
        let files = super::direct_files(&dir).ok()?;
        files
            .iter()
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .filter_map(|path| read_pick(path).ok())
            .max_by(|a, b| a.stamp.cmp(&b.stamp))
            .map(|pick| pick.candidate)
    }

    /// Records that the directive whose first candidate has `key` shows `candidate` (from 0).
    pub(crate) fn store_pick(&self, key: CacheKey, candidate: u32) -> Result<PathBuf> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let pick = Pick {
            key,
            stamp: format!("{nanos:020}"),
            candidate,
        };
        let path = self.picks_dir(key).join(pick.file_name());
        self.write_atomic(&path, format!("{}\n", candidate + 1).as_bytes(), "write")?;
        Ok(path)
    }

    /// Every file under `picks/`, read (`Err` says why one is not a pick).
    pub(crate) fn stored_picks(&self) -> Result<Vec<(PathBuf, std::result::Result<Pick, String>)>> {
        Ok(super::files_two_deep(&self.root.join("picks"))?
            .into_iter()
            .map(|path| {
                let read = read_pick(&path).and_then(|pick| {
                    let shard = path
                        .parent()
                        .and_then(Path::file_name)
                        .and_then(|n| n.to_str());
                    if shard == Some(&pick.key.to_hex()[..2]) {
                        Ok(pick)
                    } else {
                        Err("it is not in its key's directory".to_owned())
                    }
                });
                (path, read)
            })
            .collect())
    }
}

/// Reads one pick file (regular, tiny, named and written exactly as `pick` does).
fn read_pick(path: &Path) -> std::result::Result<Pick, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("its name is not UTF-8")?;
    let bytes = crate::files::read_regular(path, MAX_PICK_BYTES)
        .map_err(|e| io_error("read", path, e).to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "it is not text".to_owned())?;
    Pick::parse(name, text).ok_or_else(|| {
        "it is not a pick (`<key>-<stamp>.txt` holding a candidate's number from 1 to 8)".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_pick_wins_and_crafted_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        let key = CacheKey([7; 32]);
        assert_eq!(cache.picked(key), None);
        cache.store_pick(key, 2).unwrap();
        assert_eq!(cache.picked(key), Some(2));
        std::thread::sleep(std::time::Duration::from_millis(2));
        cache.store_pick(key, 0).unwrap();
        assert_eq!(cache.picked(key), Some(0));
        let shard = dir.path().join("picks").join(&key.to_hex()[..2]);
        // A crafted later file that is not a number, or out of range, changes nothing.
        for (stamp, text) in [
            ("99999999999999999999", "x\n"),
            ("99999999999999999998", "11\n"),
        ] {
            std::fs::write(shard.join(format!("{}-{stamp}.txt", key.to_hex())), text).unwrap();
        }
        assert_eq!(cache.picked(key), Some(0));
        let stored = cache.stored_picks().unwrap();
        assert_eq!(stored.iter().filter(|(_, r)| r.is_ok()).count(), 2);
        assert_eq!(stored.iter().filter(|(_, r)| r.is_err()).count(), 2);
    }

    #[test]
    fn pick_names_are_checked_in_full() {
        let key = CacheKey([0xab; 32]).to_hex();
        assert!(Pick::parse(&format!("{key}-{}.txt", "0".repeat(20)), "3\n").is_some());
        for (name, text) in [
            (format!("{key}-{}.txt", "0".repeat(19)), "3\n"),
            (format!("{}-{}.txt", &key[..63], "0".repeat(20)), "3\n"),
            (format!("{key}-{}.toml", "0".repeat(20)), "3\n"),
            (format!("{key}-{}.txt", "0".repeat(20)), "0\n"),
            (format!("{key}-{}.txt", "0".repeat(20)), "+3"),
            (
                format!("{}-{}.txt", key.to_uppercase(), "0".repeat(20)),
                "3",
            ),
        ] {
            assert_eq!(Pick::parse(&name, text), None, "{name} {text:?}");
        }
    }
}
