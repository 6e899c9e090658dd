//! Which record wins a key. Two teammates (or two machines sharing a remote cache) may generate
//! one key at once, and every reader must show the same image: among the records whose master is
//! there, the earliest `created-at`, then the smallest master hash, then the file name. Callers
//! pass only the records that can win; what "the master is there" means is theirs to say (a
//! local file, a listed object, a download that matches its hash).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as Slot;

use super::{Entry, Record};

/// Where a record stands among the records of its key: the least wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank<'a> {
    created_at: &'a str,
    master: &'a str,
    /// The file name (`gc --remote` passes the object path: the records of one key share a
    /// shard directory, so the order is the same).
    name: &'a str,
}

impl<'a> Rank<'a> {
    /// A record's rank, filed under `name`.
    pub(crate) fn of(record: &'a Record, name: &'a str) -> Rank<'a> {
        Rank {
            created_at: &record.created_at,
            master: &record.master,
            name,
        }
    }
}

impl Rank<'_> {
    /// The rank of the record an entry was read from.
    pub(crate) fn of_entry(entry: &Entry) -> Rank<'_> {
        Rank {
            created_at: &entry.created_at,
            master: &entry.master,
            name: &entry.record,
        }
    }
}

/// The winner of each key among contenders that can all win (on a tie, the first stays).
pub(crate) fn winners<K: Ord, T>(
    contenders: impl IntoIterator<Item = (K, T)>,
    rank: impl Fn(&T) -> Rank<'_>,
) -> BTreeMap<K, T> {
    let mut out = BTreeMap::new();
    for (key, contender) in contenders {
        match out.entry(key) {
            Slot::Vacant(slot) => {
                slot.insert(contender);
            }
            Slot::Occupied(mut slot) => {
                if rank(&contender) < rank(slot.get()) {
                    slot.insert(contender);
                }
            }
        }
    }
    out
}

/// One key's records, best first, for a reader that learns whether a master is there only by
/// fetching it (the remote: on a missing or damaged master, the next record is tried).
pub(crate) fn best_first<T>(records: &mut [T], rank: impl Fn(&T) -> Rank<'_>) {
    records.sort_by(|a, b| rank(a).cmp(&rank(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank<'a>(created_at: &'a str, master: &'a str, name: &'a str) -> Rank<'a> {
        Rank {
            created_at,
            master,
            name,
        }
    }

    #[test]
    fn the_earliest_then_the_smallest_master_then_the_name_wins() {
        let contenders = [
            ("k", rank("2024-01-02", "aa", "1")),
            ("k", rank("2024-01-01", "bb", "2")),
            ("k", rank("2024-01-01", "aa", "4")),
            ("k", rank("2024-01-01", "aa", "3")),
            ("j", rank("2024-01-03", "cc", "5")),
        ];
        let won = winners(contenders, |r| *r);
        assert_eq!(won["k"].name, "3");
        assert_eq!(won["j"].name, "5");
        let mut list: Vec<Rank<'_>> = contenders.iter().map(|(_, r)| *r).collect();
        best_first(&mut list, |r| *r);
        let names: Vec<&str> = list.iter().map(|r| r.name).collect();
        assert_eq!(names, ["3", "4", "2", "1", "5"]);
    }
}
