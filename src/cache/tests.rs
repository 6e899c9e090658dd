use super::*;
use crate::config::ProviderKind;
use crate::note::Note;
use crate::provider::{ImageFormat, Master};
use crate::test_support::books::bare_request;
use std::time::Duration;

fn request(prompt: &str) -> Request {
    bare_request(
        ProviderKind::Placeholder,
        "placeholder",
        "placeholder-1",
        prompt,
        (32, 16),
    )
}

fn master(bytes: &[u8]) -> Master {
    Master {
        bytes: bytes.to_vec(),
        format: ImageFormat::Png,
        width: 32,
        height: 16,
        cost_usd: 0.04,
        elapsed: Duration::from_millis(1200),
        provenance: Default::default(),
        attempts: 1,
        batch: None,
    }
}

/// A cache in a temporary directory holding one committed image, key `a`, bytes `one`.
fn cache_with_one_image() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut cache = Cache::open(&root);
    cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"one"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();
    (dir, root)
}

fn key(prompt: &str) -> CacheKey {
    crate::request::cache_key(&request(prompt))
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let item = item.unwrap();
            let meta = item.metadata().unwrap();
            if meta.is_dir() {
                stack.push(item.path());
            }
            out.push((item.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn stores_then_finds_across_builds_and_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut cache = Cache::open(&root);
    assert_eq!(cache.lookup(Tier::Committed, key("a")).unwrap(), None);
    cache.close_index();
    let stored = cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"one"))
        .unwrap();
    cache
        .store(Tier::Local, key("b"), &request("b"), &master(b"two"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();

    let mut cache = Cache::open(&root);
    assert_eq!(
        cache.lookup(Tier::Committed, key("a")).unwrap(),
        Some(stored.clone())
    );
    assert!(cache.lookup(Tier::Local, key("b")).unwrap().is_some());
    assert_eq!(cache.lookup(Tier::Local, key("a")).unwrap(), None);
    assert_eq!(
        std::fs::read(cache.master_path(Tier::Committed, &stored)).unwrap(),
        b"one"
    );
    assert!(root.join("local/masters").is_dir());
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        GITIGNORE
    );

    let text = std::fs::read_to_string(
        root.join("records")
            .join(&key("a").to_hex()[..2])
            .join(&stored.record),
    )
    .unwrap();
    let record: Record = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            record.prompt.as_str(),
            record.bytes,
            record.generation_ms,
            record.cost_usd
        ),
        ("a", 3, 1200, 0.04)
    );
    assert_eq!(record.master, blake3::hash(b"one").to_hex().as_str());
}

#[test]
fn a_build_that_only_hits_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut cache = Cache::open(&root);
    cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"one"))
        .unwrap();
    let refs = BTreeMap::from([("src/a.md".to_owned(), vec![key("a").to_hex()])]);
    cache.finish(refs.clone()).unwrap();
    let before = snapshot(&root);

    std::thread::sleep(Duration::from_millis(20));
    let mut cache = Cache::open(&root);
    assert!(cache.lookup(Tier::Committed, key("a")).unwrap().is_some());
    cache.close_index();
    cache.finish(refs).unwrap();
    assert_eq!(snapshot(&root), before);
}

#[test]
fn a_missing_or_corrupt_index_is_rebuilt_from_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut cache = Cache::open(&root);
    let stored = cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"one"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();

    for damage in [
        None,
        Some(b"not a database at all".as_slice()),
        Some(&[0u8; 4096][..]),
    ] {
        let index = root.join("index.redb");
        match damage {
            None => std::fs::remove_file(&index).unwrap(),
            Some(bytes) => std::fs::write(&index, bytes).unwrap(),
        }
        let mut cache = Cache::open(&root);
        assert_eq!(
            cache.lookup(Tier::Committed, key("a")).unwrap(),
            Some(stored.clone())
        );
        cache.finish(BTreeMap::new()).unwrap();
        // The rebuilt index serves the next build on its own.
        let cache = Cache::open(&root);
        assert!(cache.index.is_open());
        assert_eq!(
            cache.index.entry(&format!("c/{}", key("a").to_hex())),
            Some(stored.clone())
        );
    }
}

#[test]
fn records_added_by_a_merge_are_seen_despite_the_index() {
    let (_dir, root) = cache_with_one_image();

    // A teammate's build, in another copy of the cache, adds an image; git brings its files.
    let other = tempfile::tempdir().unwrap();
    let mut theirs = Cache::open(other.path());
    theirs
        .store(Tier::Committed, key("b"), &request("b"), &master(b"two"))
        .unwrap();
    copy_tree(other.path(), &root);

    let mut cache = Cache::open(&root);
    assert!(cache.lookup(Tier::Committed, key("b")).unwrap().is_some());
    assert!(cache.lookup(Tier::Committed, key("a")).unwrap().is_some());
}

#[test]
fn the_earliest_record_of_a_key_wins_and_orphans_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut cache = Cache::open(&root);
    let first = cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"first"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    cache
        .store(Tier::Committed, key("a"), &request("a"), &master(b"second"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();
    let mut cache = Cache::open(&root);
    assert_eq!(
        cache.lookup(Tier::Committed, key("a")).unwrap(),
        Some(first.clone())
    );

    // Without its master a record is no entry: the other record takes over.
    std::fs::remove_file(cache.master_path(Tier::Committed, &first)).unwrap();
    std::fs::remove_file(root.join("index.redb")).unwrap();
    let mut cache = Cache::open(&root);
    let winner = cache.lookup(Tier::Committed, key("a")).unwrap().unwrap();
    assert_eq!(winner.master, blake3::hash(b"second").to_hex().as_str());
}

#[test]
fn a_busy_index_is_waited_for_then_bypassed() {
    let (_dir, root) = cache_with_one_image();
    // Another process holds the index for writing. (redb refuses a second open in one process
    // just as it does across processes.)
    let holder = redb::Database::open(root.join("index.redb")).unwrap();
    let mut cache = Cache::open_with_wait(&root, Duration::from_millis(30));
    assert!(!cache.index.is_open());
    assert!(cache.lookup(Tier::Committed, key("a")).unwrap().is_some());
    cache
        .store(Tier::Committed, key("c"), &request("c"), &master(b"three"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();
    drop(holder);
    let mut cache = Cache::open(&root);
    assert!(cache.lookup(Tier::Committed, key("c")).unwrap().is_some());
}

fn copy_tree(from: &Path, to: &Path) {
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&item.path(), &target);
        } else if !target.exists() {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_jpeg_master_is_found_again_under_the_name_it_was_stored_with() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".imagegen");
    let mut jpeg = master(b"\xff\xd8\xff jpeg");
    jpeg.format = ImageFormat::Jpeg;
    let mut cache = Cache::open(&root);
    let stored = cache
        .store(Tier::Committed, key("j"), &request("j"), &jpeg)
        .unwrap();
    assert!(
        cache
            .master_path(Tier::Committed, &stored)
            .ends_with(format!("{}.jpg", stored.master))
    );
    cache.finish(BTreeMap::new()).unwrap();
    let mut again = Cache::open(&root);
    let found = again.lookup(Tier::Committed, key("j")).unwrap().unwrap();
    assert_eq!(found, stored);
    assert!(again.master_path(Tier::Committed, &found).exists());
}

fn description(master: &str, alt: &str, created_at: &str) -> crate::description::Record {
    crate::description::Record {
        format: crate::description::RECORD_FORMAT,
        master: master.to_owned(),
        describer: crate::description::describer_id(ProviderKind::OpenAi, "gpt-6-luna"),
        provider: "openai".into(),
        model: "gpt-6-luna".into(),
        instructions: crate::description::INSTRUCTIONS_VERSION,
        alt: alt.into(),
        description: String::new(),
        model_version: None,
        request_id: None,
        attempts: 1,
        cost_usd: 0.0002,
        created_at: created_at.into(),
    }
}

#[test]
fn descriptions_are_kept_the_earliest_wins_and_crafted_ones_are_ignored_and_flagged() {
    let (_dir, root) = cache_with_one_image();
    let mut cache = Cache::open(&root);
    let master = blake3::hash(b"one").to_hex().to_string();
    let id = crate::description::describer_id(ProviderKind::OpenAi, "gpt-6-luna");
    assert!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .is_none()
    );
    // Two teammates described it at once: two files, the earliest wins everywhere.
    let late = cache
        .store_note(&description(&master, "Later words", "2026-11-30T10:00:00Z"))
        .unwrap();
    cache
        .store_note(&description(
            &master,
            "Earlier words",
            "2026-11-30T09:00:00Z",
        ))
        .unwrap();
    assert_eq!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .unwrap()
            .alt,
        "Earlier words"
    );
    assert_ne!(
        late.file_name(),
        cache
            .note_path(
                crate::note::NoteKind::Description,
                &master,
                &description(&master, "Earlier words", "2026-11-30T09:00:00Z").file_name()
            )
            .file_name()
    );
    // A crafted file (markup and a terminal escape in its alt, an even earlier date) is passed
    // over by builds and flagged by `verify`.
    let mut crafted = description(&master, "x", "2000-01-01T00:00:00Z");
    crafted.alt = "<script>\u{1b}[2J".into();
    let crafted_path = cache.note_path(
        crate::note::NoteKind::Description,
        &master,
        &crafted.file_name(),
    );
    std::fs::write(&crafted_path, crafted.to_json()).unwrap();
    assert_eq!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .unwrap()
            .alt,
        "Earlier words"
    );
    let problems = cache.verify().unwrap();
    assert_eq!(
        problems.len(),
        1,
        "{:?}",
        problems.iter().map(|p| &p.what).collect::<Vec<_>>()
    );
    assert_eq!(problems[0].path, crafted_path);
    assert!(
        problems[0].fixable
            && problems[0]
                .what
                .contains("a build ignores this description")
    );
}

#[test]
fn a_warm_build_finds_descriptions_in_the_index_and_a_changed_shard_in_its_files() {
    let (_dir, root) = cache_with_one_image();
    let master = blake3::hash(b"one").to_hex().to_string();
    let id = crate::description::describer_id(ProviderKind::OpenAi, "gpt-6-luna");
    let mut cache = Cache::open(&root);
    let path = cache
        .store_note(&description(
            &master,
            "Indexed words",
            "2026-11-30T09:00:00Z",
        ))
        .unwrap();
    assert_eq!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .unwrap()
            .alt,
        "Indexed words"
    );
    cache.finish(BTreeMap::new()).unwrap();

    // The next build reads the index, not the file: a file changed in place (its directory's
    // stamp unchanged) is not read again, and nothing is written.
    let stamp = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(&path, b"not json").unwrap();
    let dir = std::fs::File::open(path.parent().unwrap()).unwrap();
    dir.set_modified(stamp).unwrap();
    let before = snapshot(&root);
    let mut cache = Cache::open(&root);
    assert_eq!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .unwrap()
            .alt,
        "Indexed words"
    );
    cache.finish(BTreeMap::new()).unwrap();
    assert_eq!(snapshot(&root), before, "a warm lookup changed a file");

    // A new file changes the stamp: the shard is read from its files (the broken one passed
    // over), and the index learns the new state.
    std::fs::remove_file(&path).unwrap();
    let mut cache = Cache::open(&root);
    cache
        .store_note(&description(&master, "New words", "2026-11-30T10:00:00Z"))
        .unwrap();
    cache.finish(BTreeMap::new()).unwrap();
    let mut cache = Cache::open(&root);
    assert_eq!(
        cache
            .note::<crate::description::Record>(&master, &id)
            .unwrap()
            .alt,
        "New words"
    );
}
