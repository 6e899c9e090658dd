//! What `gc` removes, for the local cache and the remote one alike, decided without touching a
//! file: the callers list and read, [`decide`] judges, and the callers delete records first, so
//! that a record never outlives its master even if the deletion is interrupted.
//!
//! The two caches differ in a few ways, each an [`Options`] field: the remote is shared by
//! every branch and machine, so nothing young goes and the master of a record this version
//! cannot read is kept; files made from a master go locally when no kept master has their
//! prefix, remotely only when their master goes now (the web files of placeholders, whose
//! masters a store never holds, stay).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::Tier;
use super::key::CacheKey;
use super::record::Record;
use super::wins::{self, Rank};

/// A record file or object, as listed and read.
pub(crate) struct RecordItem<'a> {
    /// Keys compete within a tier, as in a build (the remote has one: `Committed`).
    pub(crate) tier: Tier,
    /// Its file name (the remote: its object path), the rank's last tie-break.
    pub(crate) name: &'a str,
    /// When it was written, when known (the store's listing; locally `None`).
    pub(crate) modified: Option<SystemTime>,
    /// The record, when this version reads it.
    pub(crate) record: Option<&'a Record>,
    /// The [`MasterItem::id`] of the master it names; the remote reads it loosely, so that a
    /// record of another version names one too.
    pub(crate) names_master: Option<&'a str>,
    /// Whether it may win its key: its master is there (the remote: listed), or (locally) it
    /// is the record a build picks for its key.
    pub(crate) can_win: bool,
    /// Its master's current web files, for a record that may win a key in use.
    pub(crate) derivation: Derivation,
}

/// The web files a kept record's master has now.
pub(crate) enum Derivation {
    /// Web files are not judged by derivation (the remote; records that cannot be kept).
    Untracked,
    /// The index does not know the current derivation: every web file of the master stays.
    Unknown,
    /// The names of the current derivation's web files.
    Known(BTreeSet<String>),
}

/// A master file or object.
pub(crate) struct MasterItem<'a> {
    /// What records name it by: locally its hash, remotely its object path.
    pub(crate) id: &'a str,
    pub(crate) modified: Option<SystemTime>,
}

/// What a file made from a master is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    Tuned,
    /// A description or judgement.
    Note,
    WebFile,
}

/// A file named after the master it was made from.
pub(crate) struct MadeItem<'a> {
    pub(crate) made: Made,
    pub(crate) name: &'a str,
    /// The master's part of its name (the first 16 hex digits of the master's hash).
    pub(crate) prefix: &'a str,
    pub(crate) modified: Option<SystemTime>,
}

/// Everything `gc` may remove, in the order it is listed.
pub(crate) struct Listing<'a> {
    pub(crate) records: Vec<RecordItem<'a>>,
    pub(crate) masters: Vec<MasterItem<'a>>,
    pub(crate) made: Vec<MadeItem<'a>>,
}

/// How a cache is judged.
pub(crate) struct Options {
    pub(crate) now: SystemTime,
    /// Nothing younger goes, nor anything of unknown age. `None`: age does not count.
    pub(crate) grace: Option<Duration>,
    /// Whether a record this version cannot read keeps the master it names.
    pub(crate) refused_keeps_master: bool,
    /// Whether a made file goes when no kept master has its prefix (`true`), or only when a
    /// master that goes now had it (`false`).
    pub(crate) orphans_go: bool,
}

impl Options {
    /// The local cache, as `gc` has always treated it.
    pub(crate) fn local() -> Options {
        Options {
            now: SystemTime::now(),
            grace: None,
            refused_keeps_master: false,
            orphans_go: true,
        }
    }

    /// The remote cache, shared by every branch and machine: nothing younger than `grace`.
    pub(crate) fn remote(grace: Duration) -> Options {
        Options {
            now: SystemTime::now(),
            grace: Some(grace),
            refused_keeps_master: true,
            orphans_go: false,
        }
    }

    /// Whether something written at `time` is too young to go.
    fn young(&self, time: Option<SystemTime>) -> bool {
        self.grace.is_some_and(|grace| {
            time.and_then(|t| self.now.duration_since(t).ok())
                .is_none_or(|age| age < grace)
        })
    }
}

/// Why something goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Unused,
    Loses,
    NoRecord,
    MadeFromGone,
    NotCurrent,
}

impl Why {
    /// As `gc --remote` prints it.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Why::Unused => "no directive uses it",
            Why::Loses => "loses to an earlier image of the same key",
            Why::NoRecord => "no remaining record names it",
            Why::MadeFromGone => "made from a master that goes",
            Why::NotCurrent => "not its master's current web file",
        }
    }
}

/// What goes: indices into the listing's parts, in listing order.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) records: Vec<(usize, Why)>,
    pub(crate) masters: Vec<(usize, Why)>,
    pub(crate) made: Vec<(usize, Why)>,
}

/// Records of keys no directive uses and the losers of keys in use; masters no remaining record
/// names; files made from masters that go (and, locally, web files no kept master has now).
pub(crate) fn decide(
    listing: &Listing<'_>,
    in_use: &BTreeSet<CacheKey>,
    options: &Options,
) -> Verdict {
    let mut verdict = Verdict::default();
    let kept = records(listing, in_use, options, &mut verdict.records);
    let gone = masters(listing, &kept, options, &mut verdict.masters);
    made(listing, &kept, &gone, options, &mut verdict.made);
    verdict
}

/// What the kept records keep: the masters they name, and which records win a key.
struct Kept<'a> {
    masters: BTreeSet<&'a str>,
    winners: Vec<usize>,
}

/// Judges the records: each key in use keeps its winner (the earliest record that can win);
/// the remote also keeps young records, and unused ones created lately.
fn records<'a>(
    l: &Listing<'a>,
    in_use: &BTreeSet<CacheKey>,
    o: &Options,
    out: &mut Vec<(usize, Why)>,
) -> Kept<'a> {
    let used = |r: &Record| r.cache_key().is_some_and(|k| in_use.contains(&k));
    let winners = wins::winners(
        l.records.iter().enumerate().filter_map(|(i, item)| {
            let record = item.record.filter(|r| item.can_win && used(r))?;
            Some(((item.tier, record.cache_key()?), (i, record, item.name)))
        }),
        |(_, record, name)| Rank::of(record, name),
    );
    let wins: BTreeSet<usize> = winners.values().map(|(i, ..)| *i).collect();
    let mut kept = Kept {
        masters: BTreeSet::new(),
        winners: Vec::new(),
    };
    for (i, item) in l.records.iter().enumerate() {
        let Some(record) = item.record else {
            // Another version's record, or a damaged one: not ours to judge.
            if o.refused_keeps_master {
                kept.masters.extend(item.names_master);
            }
            continue;
        };
        let used = used(record);
        let created = humantime::parse_rfc3339_weak(&record.created_at).ok();
        if wins.contains(&i) || (!used && o.young(created)) || o.young(item.modified) {
            kept.masters.extend(item.names_master);
            if wins.contains(&i) {
                kept.winners.push(i);
            }
        } else {
            out.push((i, if used { Why::Loses } else { Why::Unused }));
        }
    }
    kept
}

/// Judges the masters: one no kept record names goes. Returns the prefixes of those that go.
fn masters<'a>(
    l: &Listing<'a>,
    kept: &Kept<'_>,
    o: &Options,
    out: &mut Vec<(usize, Why)>,
) -> BTreeSet<&'a str> {
    let mut gone = BTreeSet::new();
    for (j, master) in l.masters.iter().enumerate() {
        if !kept.masters.contains(master.id) && !o.young(master.modified) {
            gone.insert(prefix(master.id));
            out.push((j, Why::NoRecord));
        }
    }
    gone
}

/// Judges the files made from masters (see [`Options::orphans_go`]); locally a web file also
/// goes when it is not one its master has now, unless the index does not know which those are.
fn made(
    l: &Listing<'_>,
    kept: &Kept<'_>,
    gone: &BTreeSet<&str>,
    o: &Options,
    out: &mut Vec<(usize, Why)>,
) {
    let kept_prefixes: BTreeSet<&str> = kept.masters.iter().map(|m| prefix(m)).collect();
    let (mut current, mut unknown) = (BTreeSet::new(), BTreeSet::new());
    for &i in &kept.winners {
        let item = &l.records[i];
        match &item.derivation {
            Derivation::Known(files) => current.extend(files.iter().map(String::as_str)),
            Derivation::Unknown => unknown.extend(item.names_master.map(prefix)),
            Derivation::Untracked => {}
        }
    }
    for (k, file) in l.made.iter().enumerate() {
        if o.young(file.modified) {
            continue;
        }
        let kept = kept_prefixes.contains(file.prefix);
        let why = if !o.orphans_go {
            (!kept && gone.contains(file.prefix)).then_some(Why::MadeFromGone)
        } else if file.made == Made::WebFile {
            let stays = current.contains(file.name) || unknown.contains(file.prefix);
            (!stays).then_some(if kept {
                Why::NotCurrent
            } else {
                Why::MadeFromGone
            })
        } else {
            (!kept).then_some(Why::MadeFromGone)
        };
        out.extend(why.map(|why| (k, why)));
    }
}

/// The first 16 bytes of a master's name, from its hash or its object path. A listed name
/// whose 16th byte falls inside a character (a store may hold any name) is taken whole: it
/// matches no hash prefix.
fn prefix(id: &str) -> &str {
    let name = id.rsplit('/').next().unwrap_or_default();
    name.get(..16).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn a_crafted_object_name_is_no_panic() {
        assert_eq!(
            super::prefix("masters/ab/0123456789abcdef0123.png"),
            "0123456789abcdef"
        );
        assert_eq!(super::prefix("masters/ab/aéééééééé.png"), "aéééééééé.png");
        assert_eq!(super::prefix("short"), "short");
    }
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use Why::{Loses, MadeFromGone, NoRecord, NotCurrent, Unused};

    /// 2033-05-18T03:33:20Z: what the tests take as now.
    const NOW: u64 = 2_000_000_000;
    /// Long before `NOW`, and a moment before it (within the remote's grace).
    const OLD: u64 = 1_700_000_000;
    const LATELY: u64 = NOW - 60;
    const OLD_DATE: &str = "2023-11-14T22:13:20Z";
    const LATER_DATE: &str = "2024-01-01T00:00:00Z";
    const RECENT_DATE: &str = "2033-05-18T03:00:00Z";

    fn leak<T>(value: T) -> &'static T {
        Box::leak(Box::new(value))
    }

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn key(byte: u8) -> CacheKey {
        CacheKey([byte; 32])
    }

    /// The object path of master `m` (its hash is `m` 64 times).
    fn master_id(m: char) -> &'static str {
        leak(format!("masters/{m}{m}/{}.png", m.to_string().repeat(64)))
    }

    fn record(key_byte: u8, created_at: &str, m: char) -> &'static Record {
        leak(
            serde_json::from_value(serde_json::json!({
                "format": 2, "key": key(key_byte).to_hex(), "provider": "openai", "model": "m",
                "prompt": "p", "size": "1024x1024", "master": m.to_string().repeat(64),
                "media-type": "image/png", "width": 1, "height": 1, "bytes": 1,
                "generation-ms": 1, "cost-usd": 0.0, "created-at": created_at,
            }))
            .unwrap(),
        )
    }

    /// An old record of `key_byte`, made at `created_at`, naming master `m`, that may win.
    fn rec(name: &'static str, key_byte: u8, created_at: &str, m: char) -> RecordItem<'static> {
        RecordItem {
            tier: Tier::Committed,
            name,
            modified: at(OLD),
            record: Some(record(key_byte, created_at, m)),
            names_master: Some(master_id(m)),
            can_win: true,
            derivation: Derivation::Untracked,
        }
    }

    fn master(m: char, modified: Option<SystemTime>) -> MasterItem<'static> {
        MasterItem {
            id: master_id(m),
            modified,
        }
    }

    /// A file made from master `m`: `<m × 16>-<rest>`.
    fn file(made: Made, m: char, rest: &str, modified: Option<SystemTime>) -> MadeItem<'static> {
        let name: &'static str = leak(format!("{}-{rest}", m.to_string().repeat(16)));
        MadeItem {
            made,
            name,
            prefix: &name[..16],
            modified,
        }
    }

    fn verdict(
        records: &[(usize, Why)],
        masters: &[(usize, Why)],
        made: &[(usize, Why)],
    ) -> Verdict {
        Verdict {
            records: records.to_vec(),
            masters: masters.to_vec(),
            made: made.to_vec(),
        }
    }

    /// A listing, the keys in use, and what goes locally and remotely.
    struct Case {
        name: &'static str,
        listing: Listing<'static>,
        in_use: Vec<u8>,
        local: Verdict,
        remote: Verdict,
    }

    fn winners_losers_and_orphans() -> Case {
        let mut earliest = rec("1-a", 1, OLD_DATE, 'a');
        let current: &str = leak(format!("{}-640w-current.webp", "a".repeat(16)));
        earliest.derivation = Derivation::Known(BTreeSet::from([current.to_owned()]));
        let without_master = RecordItem {
            can_win: false,
            ..rec("1-d", 1, "2000-01-01T00:00:00Z", 'd')
        };
        Case {
            name: "the earliest record that can win keeps its key; losers, unused records and what only they keep go",
            listing: Listing {
                records: vec![
                    earliest,
                    rec("1-b", 1, LATER_DATE, 'b'),
                    rec("2-c", 2, OLD_DATE, 'c'),
                    without_master,
                ],
                masters: vec![
                    master('a', at(OLD)),
                    master('b', at(OLD)),
                    master('c', at(OLD)),
                ],
                made: vec![
                    file(Made::Tuned, 'a', "00000000.json", at(OLD)),
                    file(Made::Tuned, 'b', "00000000.json", at(OLD)),
                    file(Made::Note, 'c', "d-0.json", at(OLD)),
                    file(Made::WebFile, 'a', "640w-current.webp", at(OLD)),
                    file(Made::WebFile, 'a', "640w-stale.webp", at(OLD)),
                    file(Made::WebFile, 'c', "640w-x.webp", at(OLD)),
                    file(Made::WebFile, 'e', "640w-orphan.webp", at(OLD)),
                ],
            },
            in_use: vec![1],
            local: verdict(
                &[(1, Loses), (2, Unused), (3, Loses)],
                &[(1, NoRecord), (2, NoRecord)],
                &[
                    (1, MadeFromGone),
                    (2, MadeFromGone),
                    (4, NotCurrent),
                    (5, MadeFromGone),
                    (6, MadeFromGone),
                ],
            ),
            remote: verdict(
                &[(1, Loses), (2, Unused), (3, Loses)],
                &[(1, NoRecord), (2, NoRecord)],
                &[(1, MadeFromGone), (2, MadeFromGone), (5, MadeFromGone)],
            ),
        }
    }

    fn a_record_this_version_refuses() -> Case {
        let refused = RecordItem {
            record: None,
            ..rec("1-a", 1, OLD_DATE, 'a')
        };
        Case {
            name: "a refused record keeps its master remotely only",
            listing: Listing {
                records: vec![refused],
                masters: vec![master('a', at(OLD))],
                made: vec![file(Made::Tuned, 'a', "00000000.json", at(OLD))],
            },
            in_use: vec![1],
            local: verdict(&[], &[(0, NoRecord)], &[(0, MadeFromGone)]),
            remote: verdict(&[], &[], &[]),
        }
    }

    fn young_objects() -> Case {
        let young_loser = RecordItem {
            modified: at(LATELY),
            ..rec("1-b", 1, LATER_DATE, 'b')
        };
        Case {
            name: "the remote keeps what is young or of unknown age",
            listing: Listing {
                records: vec![
                    rec("2-a", 2, RECENT_DATE, 'a'),
                    young_loser,
                    rec("1-c", 1, OLD_DATE, 'c'),
                ],
                masters: vec![
                    master('a', at(OLD)),
                    master('b', at(OLD)),
                    master('c', at(OLD)),
                    master('d', at(LATELY)),
                    master('e', at(OLD)),
                    master('f', None),
                ],
                made: vec![
                    file(Made::Tuned, 'd', "00000000.json", at(LATELY)),
                    file(Made::Tuned, 'e', "00000000.json", at(OLD)),
                    file(Made::WebFile, 'f', "640w-x.webp", at(OLD)),
                ],
            },
            in_use: vec![1],
            local: verdict(
                &[(0, Unused), (1, Loses)],
                &[
                    (0, NoRecord),
                    (1, NoRecord),
                    (3, NoRecord),
                    (4, NoRecord),
                    (5, NoRecord),
                ],
                &[(0, MadeFromGone), (1, MadeFromGone), (2, MadeFromGone)],
            ),
            remote: verdict(&[], &[(4, NoRecord)], &[(1, MadeFromGone)]),
        }
    }

    fn derivations_and_tiers() -> Case {
        let mut committed = rec("1-a", 1, OLD_DATE, 'a');
        committed.derivation = Derivation::Unknown;
        let mut local = rec("1-b", 1, LATER_DATE, 'b');
        local.tier = Tier::Local;
        local.derivation = Derivation::Known(BTreeSet::new());
        Case {
            name: "each tier keeps its own winner; a master whose derivation is unknown keeps its web files",
            listing: Listing {
                records: vec![committed, local],
                masters: vec![master('a', at(OLD)), master('b', at(OLD))],
                made: vec![
                    file(Made::WebFile, 'a', "640w-x.webp", at(OLD)),
                    file(Made::WebFile, 'b', "640w-x.webp", at(OLD)),
                ],
            },
            in_use: vec![1],
            local: verdict(&[], &[], &[(1, NotCurrent)]),
            remote: verdict(&[], &[], &[]),
        }
    }

    #[test]
    fn listings_are_judged_locally_and_remotely() {
        let cases = [
            winners_losers_and_orphans(),
            a_record_this_version_refuses(),
            young_objects(),
            derivations_and_tiers(),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        for case in cases {
            let in_use: BTreeSet<CacheKey> = case.in_use.iter().map(|b| key(*b)).collect();
            let local = Options {
                now,
                ..Options::local()
            };
            let remote = Options {
                now,
                ..Options::remote(Duration::from_secs(86_400))
            };
            assert_eq!(
                decide(&case.listing, &in_use, &local),
                case.local,
                "local: {}",
                case.name
            );
            assert_eq!(
                decide(&case.listing, &in_use, &remote),
                case.remote,
                "remote: {}",
                case.name
            );
        }
    }

    #[test]
    fn a_prefix_is_the_first_16_characters_of_the_name() {
        assert_eq!(
            prefix("masters/ab/abcdef0123456789ffff.png"),
            "abcdef0123456789"
        );
        assert_eq!(prefix("abcdef0123456789ffff"), "abcdef0123456789");
        assert_eq!(prefix("masters/ab/short.png"), "short.png");
    }
}
