//! Notes: small committed records a model writes about one master, kept beside the masters and
//! named alike. Two kinds today: descriptions (alt text, `description.rs`) and judgements
//! (how well the image follows its prompt, `judgement.rs`). Both are named
//! `<master 16>-<who 16>-<content 8>.json` (in `descriptions/ab/`, or `judgements/`), written
//! once and never edited; two
//! teammates who write one at once write two files, and the earliest wins. Pure.

use std::time::SystemTime;

use crate::vocab::is_hex;

/// Which kind of note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NoteKind {
    Description,
    Judgement,
}

impl NoteKind {
    pub(crate) const ALL: [NoteKind; 2] = [NoteKind::Description, NoteKind::Judgement];

    /// The committed directory that holds them (and their prefix in the remote cache).
    pub(crate) fn dir(self) -> &'static str {
        match self {
            NoteKind::Description => "descriptions",
            NoteKind::Judgement => "judgements",
        }
    }

    /// The word for one, in messages.
    pub(crate) fn word(self) -> &'static str {
        match self {
            NoteKind::Description => "description",
            NoteKind::Judgement => "judgement",
        }
    }

    /// The directory (under [`NoteKind::dir`]) a note of `master` is filed in: its master's
    /// first two digits for descriptions (`descriptions/ab/`); none for judgements, which a
    /// warm build looks up for every image: one directory is one stamp to check, not one per
    /// shard.
    pub(crate) fn shard_of(self, master: &str) -> &str {
        match self {
            NoteKind::Description => &master[..2.min(master.len())],
            NoteKind::Judgement => "",
        }
    }

    /// Whether its files are filed in shards.
    pub(crate) fn sharded(self) -> bool {
        self == NoteKind::Description
    }

    /// The letter of its shards among the index's stamps (`d/ab`, `j/`).
    pub(crate) fn letter(self) -> char {
        match self {
            NoteKind::Description => 'd',
            NoteKind::Judgement => 'j',
        }
    }

    /// The largest file of this kind read.
    pub(crate) const fn max_bytes(self) -> u64 {
        match self {
            NoteKind::Description => 16 << 10,
            // 40 questions and 80 defects of 300 characters, each up to 4 bytes.
            NoteKind::Judgement => 256 << 10,
        }
    }
}

/// A note's record: what every reader of notes needs.
pub(crate) trait Note: Sized + serde::Serialize + serde::de::DeserializeOwned {
    const KIND: NoteKind;

    /// The format this version writes and reads.
    const FORMAT: u32;

    /// The format the record says it has.
    fn format(&self) -> u32;

    /// The checks of this kind, after those every note passes (see [`Note::parse`]).
    fn check(&self) -> Result<(), String>;

    /// Reads a file under the rules every reader applies (builds, the remote, the team
    /// commands, `verify`): within its kind's size, JSON of this format, named by its master,
    /// writer and content (see [`check_file`]), then its kind's own checks. A crafted file
    /// either passes or is refused.
    fn parse(bytes: &[u8], file_name: &str) -> Result<Self, String> {
        let word = Self::KIND.word();
        if bytes.len() as u64 > Self::KIND.max_bytes() {
            return Err(format!("{} bytes, more than a {word} holds", bytes.len()));
        }
        let record: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not a {word}: {e}"))?;
        if record.format() != Self::FORMAT {
            return Err(format!("written by {word} format {}", record.format()));
        }
        check_file(&record, bytes, file_name)?;
        record.check()?;
        Ok(record)
    }

    /// The blake3 hash of the master it is about, 64 hex digits.
    fn master(&self) -> &str;

    /// The id of the model setup that wrote it (16 hex digits).
    fn by(&self) -> &str;

    /// When it was written, RFC 3339 in UTC.
    fn created_at(&self) -> &str;

    /// Pretty JSON with a final newline, one field per line for readable diffs.
    fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a record always serialises");
        text.push(b'\n');
        text
    }

    /// When it was written (`None` when `created-at` is not RFC 3339).
    fn created(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.created_at()).ok()
    }

    /// The file name: the master's first 16 digits, the writer's id, and a hash of the
    /// content, so that two notes about one image never share a path.
    fn file_name(&self) -> String {
        name_for(self.master(), self.by(), &self.to_json())
    }
}

/// How the names of a master's notes by one writer start.
pub(crate) fn name_prefix(master: &str, by: &str) -> String {
    format!("{}-{by}-", &master[..16.min(master.len())])
}

/// The master prefix (16 hex digits) of a note's name, `<master 16>-<who 16>-<content 8>.json`;
/// anything else in a notes directory is not ours.
pub(crate) fn master_prefix(name: &str) -> Option<&str> {
    let mut parts = name.strip_suffix(".json")?.split('-');
    let (master, by, content) = (parts.next()?, parts.next()?, parts.next()?);
    let ours = parts.next().is_none() && is_hex(master, 16) && is_hex(by, 16) && is_hex(content, 8);
    ours.then_some(master)
}

/// The name of a note of these bytes.
pub(crate) fn name_for(master: &str, by: &str, bytes: &[u8]) -> String {
    format!(
        "{}{}.json",
        name_prefix(master, by),
        &blake3::hash(bytes).to_hex()[..8]
    )
}

/// Whether `name` is [`name_for`] these, without building it.
fn is_named(name: &str, master: &str, by: &str, bytes: &[u8]) -> bool {
    let parts = name
        .strip_suffix(".json")
        .and_then(|rest| rest.strip_prefix(&master[..16.min(master.len())]))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_prefix(by))
        .and_then(|rest| rest.strip_prefix('-'));
    parts.is_some_and(|content| content == &blake3::hash(bytes).to_hex()[..8])
}

/// The checks every note's file passes besides its own: its size, its name (the hash of the
/// bytes as they are, not as they would be written again: a float need not print back the
/// same), hashes where hashes belong, and a creation time.
pub(crate) fn check_file<N: Note>(note: &N, bytes: &[u8], file_name: &str) -> Result<(), String> {
    if !is_hex(note.master(), 64) || !is_hex(note.by(), 16) {
        return Err("its master or writer is not a hash".into());
    }
    if !is_named(file_name, note.master(), note.by(), bytes) {
        return Err("its file name is not its master, writer and content hash (moved, edited, renamed or crafted)".into());
    }
    if note.created().is_none() {
        return Err("its creation time is not an RFC 3339 time".into());
    }
    Ok(())
}

/// The id of a model setup that writes notes: what it is for, its kind, model and the version
/// of its instructions. A note is named by its master and this id, so another model or new
/// instructions write again.
pub(crate) fn writer_id(domain: &str, kind: &str, model: &str, version: u32) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.as_bytes());
    hasher.update(b"\0");
    hasher.update(kind.as_bytes());
    hasher.update(b"\0");
    hasher.update(model.as_bytes());
    hasher.update(b"\0");
    hasher.update(&version.to_le_bytes());
    hasher.finalize().to_hex()[..16].to_owned()
}
