//! The shared remote cache against real object-store servers on 127.0.0.1 (moto for S3,
//! Azurite for Azure Blob, fake-gcs-server for GCS) and a shared directory: one machine
//! generates and uploads, another with an empty local cache builds the same pages without a
//! single provider call; read-only never writes; a server stopped mid-build leaves a sound local
//! cache, and the next build uploads what that one could not.

mod claims;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::books::PROVIDER;
use crate::support::fixtures::ok;
use crate::support::servers::{Kind, Server, block_on};
use crate::support::{BIN, mdbook_binary};

/// A book on one "machine": its own directory and local cache, the shared remote in
/// `book.toml`, and a provider that logs every call.
struct Machine {
    dir: tempfile::TempDir,
    calls: PathBuf,
    env: Vec<(&'static str, String)>,
}

const CHAPTER: &str = "# One\n\nSome text.\n\n```image-prompt alt=\"A harbour\"\na harbour at dawn\n```\n\nMore text.\n\n```image-prompt alt=\"A lighthouse\"\nslow a lighthouse at night\n```\n";

impl Machine {
    fn new(storage: &str, env: Vec<(&'static str, String)>) -> Machine {
        let dir = tempfile::Builder::new()
            .prefix("imagegen-remote-")
            .tempdir()
            .unwrap();
        let machine = Machine {
            calls: dir.path().join("calls.log"),
            dir,
            env,
        };
        machine.write(
            "book.toml",
            &format!(
                "[book]\ntitle = \"Remote\"\n\n[preprocessor.imagegen]\nprovider = \"local\"\n\n[preprocessor.imagegen.providers.local]\nkind = \"command\"\nmodel = \"swatch\"\ncommand = [\"python3\", \"provider.py\"]\n\n[preprocessor.imagegen.output]\nwidths = [64]\nthumbnail = false\n\n{storage}"
            ),
        );
        machine.write("provider.py", PROVIDER);
        machine.write("variant.txt", "base\n");
        machine.write("calls.log", "");
        machine.write("src/SUMMARY.md", "# Summary\n\n- [One](one.md)\n");
        machine.write("src/one.md", CHAPTER);
        machine
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path().join(relative)).unwrap()
    }

    fn mdbook_build(&self, slow: f64) -> Command {
        let mut command = Command::new(mdbook_binary());
        command
            .arg("build")
            .current_dir(self.path())
            .env("MDBOOK_PREPROCESSOR__IMAGEGEN__COMMAND", BIN)
            .env("CALLS", &self.calls)
            .env("SLOW", slow.to_string())
            .env_remove("MDBOOK_IMAGEGEN_LOG")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        command
    }

    fn build(&self) -> String {
        let output = self.mdbook_build(0.0).output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}");
        log
    }

    fn imagegen(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--book", self.path().to_str().unwrap()])
            .env("CALLS", &self.calls)
            .env_remove("MDBOOK_IMAGEGEN_LOG")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    }

    fn calls(&self) -> usize {
        self.read("calls.log").lines().count()
    }

    /// The chapter's `<main>`, where the figures are.
    fn page(&self) -> String {
        crate::support::main_of(&self.read("book/one.html")).to_owned()
    }
}

/// Every object under the test root, with its size.
fn objects(server: &Server) -> BTreeMap<String, u64> {
    let operator = server.operator();
    block_on(async {
        operator
            .list_with("/")
            .recursive(true)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.metadata().mode().is_file())
            .map(|e| {
                let path = e.path().to_owned();
                (path, e.metadata().content_length())
            })
            .collect()
    })
}

/// The warnings in a build's log, but for the one fake-gcs-server earns: it ignores
/// create-only writes, so builds on it claim nothing (see `claims.rs`).
fn warnings(log: &str, kind: Kind) -> usize {
    log.lines()
        .filter(|l| l.contains("WARN"))
        .filter(|l| !(kind == Kind::Gcs && l.contains("does not honour create-only writes")))
        .count()
}

fn count(objects: &BTreeMap<String, u64>, prefix: &str) -> usize {
    objects.keys().filter(|k| k.starts_with(prefix)).count()
}

/// Machine A generates both images and uploads them; machine B, with a fresh copy of the book
/// and no local cache, builds identical pages without a provider call; a read-only machine C
/// generates a new image locally and writes nothing to the remote.
fn shares_images_between_machines(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let a = Machine::new(&server.storage_table(""), server.env());
    let log = a.build();
    assert_eq!(a.calls(), 2, "{log}");
    assert_eq!(warnings(&log, kind), 0, "{log}");
    let after_a = objects(&server);
    assert_eq!(count(&after_a, "masters/"), 2, "{after_a:?}");
    assert_eq!(count(&after_a, "records/"), 2, "{after_a:?}");
    if kind != Kind::Gcs {
        // fake-gcs-server drops both headers; real GCS keeps them.
        let master = after_a.keys().find(|k| k.starts_with("masters/")).unwrap();
        let meta = block_on(server.operator().stat(master)).unwrap();
        assert_eq!(meta.content_type(), Some("image/png"));
        assert_eq!(
            meta.cache_control(),
            Some("public, max-age=31536000, immutable")
        );
    }

    let b = Machine::new(&server.storage_table(""), server.env());
    let log = b.build();
    assert_eq!(b.calls(), 0, "machine B called the provider:\n{log}");
    assert!(log.contains("copied 2 images from"), "{log}");
    assert_eq!(b.page(), a.page());
    assert_eq!(objects(&server), after_a);
    // A second build on B hits the local cache and says nothing.
    let quiet = b.build();
    assert!(!quiet.contains("imagegen:"), "{quiet}");

    let c = Machine::new(
        &server.storage_table("mode = \"read-only\"\n"),
        server.env(),
    );
    c.write(
        "src/one.md",
        &format!("{CHAPTER}\n```image-prompt alt=\"A pier\"\na new pier\n```\n"),
    );
    let plan = c.imagegen(&["plan", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["remote", "remote", "generate"]);
    let log = c.build();
    assert_eq!(c.calls(), 1, "{log}");
    // One warning: a read-only build claims nothing.
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("no claims in"), "{log}");
    assert_eq!(objects(&server), after_a, "read-only wrote to the remote");
    assert!(!c.path().join(".imagegen/local/pending").exists());
}

#[test]
fn s3_shares_images_between_machines() {
    shares_images_between_machines(Kind::S3);
}

#[test]
fn azure_blob_shares_images_between_machines() {
    shares_images_between_machines(Kind::Azure);
}

#[test]
fn gcs_shares_images_between_machines() {
    shares_images_between_machines(Kind::Gcs);
}

/// The server dies while the provider is drawing: the build still succeeds with one warning,
/// the local cache passes `verify`, and once the server is back the next build uploads both
/// images without generating them again.
fn survives_a_server_stopped_mid_build(kind: Kind) {
    let Some(mut server) = Server::start(kind) else {
        return;
    };
    let port = server.port;
    let a = Machine::new(&server.storage_table(""), server.env());
    let child = a
        .mdbook_build(3.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The lookup is over once the provider has been called for the quick image.
    let started = std::time::Instant::now();
    while a.calls() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    let output = child.wait_with_output().unwrap();
    let log = ok(&output);
    assert_eq!(a.calls(), 2, "{log}");
    assert_eq!(
        warnings(&log, kind),
        1,
        "one warning about the remote:\n{log}"
    );
    assert!(log.contains("the remote cache"), "{log}");
    let verify = a.imagegen(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The server comes back empty (it kept everything in memory): the next build uploads what
    // the last one could not, and `push` whatever the old server had.
    let Some(server) = Server::start_on(kind, port) else {
        return;
    };
    let log = a.build();
    assert!(log.contains("an earlier build could not"), "{log}");
    assert_eq!(a.calls(), 2);
    let push = a.imagegen(&["push"]);
    assert!(push.status.success());
    let after = objects(&server);
    assert_eq!(count(&after, "masters/"), 2, "{after:?}");
    assert_eq!(count(&after, "records/"), 2, "{after:?}");
    assert!(
        !a.path()
            .join(".imagegen/local/pending")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}

#[test]
fn s3_survives_a_server_stopped_mid_build() {
    survives_a_server_stopped_mid_build(Kind::S3);
}

#[test]
fn azure_blob_survives_a_server_stopped_mid_build() {
    survives_a_server_stopped_mid_build(Kind::Azure);
}

#[test]
fn gcs_survives_a_server_stopped_mid_build() {
    survives_a_server_stopped_mid_build(Kind::Gcs);
}

/// A team that committed its cache to git moves it into a bucket with `push`; a fresh machine
/// then builds from the bucket alone. `gc --remote` removes an image no directive uses, and
/// `verify --remote` finds the bucket sound.
#[test]
fn push_moves_a_committed_cache_into_the_bucket_and_gc_cleans_it() {
    let Some(server) = Server::start(Kind::S3) else {
        return;
    };
    let a = Machine::new("", server.env());
    a.build();
    assert_eq!(a.calls(), 2);
    let toml = a.read("book.toml");
    a.write("book.toml", &format!("{toml}{}", server.storage_table("")));
    let push = a.imagegen(&["push"]);
    let text = String::from_utf8_lossy(&push.stdout);
    assert!(
        push.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&push.stderr)
    );
    assert!(text.contains("uploaded 4 files"), "{text}");
    let again = a.imagegen(&["push"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("uploaded 0 files"));

    let b = Machine::new(&server.storage_table(""), server.env());
    b.build();
    assert_eq!(b.calls(), 0);
    assert_eq!(b.page(), a.page());

    // Drop the lighthouse: its record and master go from the bucket, the harbour stays.
    b.write(
        "src/one.md",
        &CHAPTER[..CHAPTER.find("More text.").unwrap()],
    );
    let dry = b.imagegen(&["gc", "--remote", "--dry-run", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(value["remote"].as_array().unwrap().len(), 0, "{value}");
    let gc = b.imagegen(&["gc", "--remote", "--grace", "0s", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    let removed: Vec<&str> = value["remote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2, "{value}");
    let after = objects(&server);
    assert_eq!(count(&after, "masters/"), 1);
    assert_eq!(count(&after, "records/"), 1);
    let verify = b.imagegen(&["verify", "--remote"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // `gc` on a bucket needs the flag: without it, the bucket is not touched.
    let local_only = b.imagegen(&["gc"]);
    assert!(local_only.status.success());
    assert_eq!(objects(&server), after);
}

/// With `public-url`, figures point at the bucket's web files, which the build uploads; the
/// book's own output carries no image.
#[test]
fn public_url_serves_figures_from_the_bucket() {
    let Some(server) = Server::start(Kind::S3) else {
        return;
    };
    let a = Machine::new(
        &server.storage_table("public-url = \"https://img.example.com/books/test\"\n"),
        server.env(),
    );
    a.build();
    let page = a.page();
    assert!(
        page.contains("src=\"https://img.example.com/books/test/assets/"),
        "{page}"
    );
    let after = objects(&server);
    for url in page.split("https://img.example.com/books/test/").skip(1) {
        let path = url.split(['"', ' ']).next().unwrap();
        assert!(after.contains_key(path), "{path} is not in {after:?}");
    }
    let asset = after.keys().find(|k| k.ends_with(".webp")).unwrap();
    let meta = block_on(server.operator().stat(asset)).unwrap();
    assert_eq!(meta.content_type(), Some("image/webp"));
    assert!(!a.path().join("src/imagegen").exists());
    assert!(!a.path().join("book/imagegen").exists());
    // Nothing changed: no request at all (with the server gone, one would warn), nothing
    // said, and the index not rewritten.
    let index = a.path().join(".imagegen/index.redb");
    let before = std::fs::metadata(&index).unwrap().modified().unwrap();
    let mut server = server;
    server.stop();
    let quiet = a.build();
    assert!(!quiet.contains("imagegen:"), "{quiet}");
    assert_eq!(
        std::fs::metadata(&index).unwrap().modified().unwrap(),
        before
    );
}

/// The `[storage]` table of a shared directory at `dir`.
fn shared_directory(dir: &Path) -> String {
    format!(
        "[preprocessor.imagegen.storage]\nscheme = \"fs\"\nroot = \"{}\"\n",
        dir.display()
    )
}

/// A shared directory (a network drive) works the same way, with no server.
#[test]
fn a_shared_directory_works_as_a_remote() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared_directory(shared.path());
    let a = Machine::new(&table, Vec::new());
    a.build();
    let b = Machine::new(&table, Vec::new());
    let log = b.build();
    assert_eq!(b.calls(), 0, "{log}");
    assert_eq!(b.page(), a.page());
    let stats = b.imagegen(&["stats"]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(text.contains("2 records, 2 masters"), "{text}");
}

/// Records stay in git while masters live only in the store: a clone with the records and no
/// masters finds them sound (`verify`, `gc` keep the records) and builds with zero calls. A
/// regenerated image replaces the old one in the store too, so every machine gets the new one.
#[test]
fn records_in_git_masters_in_the_store_and_regenerate() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared_directory(shared.path());
    let a = Machine::new(&table, Vec::new());
    a.build();
    let b = Machine::new(&table, Vec::new());
    std::fs::create_dir_all(b.path().join(".imagegen")).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(a.path().join(".imagegen/records"))
        .arg(b.path().join(".imagegen/records"))
        .status()
        .unwrap();
    assert!(copied.success());
    let verify = b.imagegen(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let gc = b.imagegen(&["gc", "--dry-run", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(value["files"].as_array().unwrap().len(), 0, "{value}");
    let log = b.build();
    assert_eq!(b.calls(), 0, "{log}");
    assert!(!log.contains("WARN"), "{log}");
    assert_eq!(b.page(), a.page());

    a.write("variant.txt", "regenerated\n");
    let regenerate = a.imagegen(&["regenerate", "src/one.md"]);
    ok(&regenerate);
    assert_eq!(a.calls(), 4);
    a.build();
    let c = Machine::new(&table, Vec::new());
    c.build();
    assert_eq!(c.calls(), 0);
    assert_eq!(c.page(), a.page());
    assert_ne!(c.page(), b.page());
}

/// Two machines generate the same images (different bytes, as models give): B made its own
/// while the store was out of reach. Its next build uploads them, finds A's earlier images, and
/// switches to them, so every machine shows the first images made. (Two builds that finish
/// within moments of each other may each keep their own until their local cache is fresh; a
/// new machine always gets the first.)
#[test]
fn a_machine_that_made_an_image_later_switches_to_the_first() {
    let Some(server) = Server::start(Kind::S3) else {
        return;
    };
    let a = Machine::new(&server.storage_table(""), server.env());
    a.build();
    let b = Machine::new(&server.storage_table(""), server.env());
    b.write("variant.txt", "other\n");
    let offline = b
        .mdbook_build(0.0)
        .env(
            "MDBOOK_PREPROCESSOR__IMAGEGEN__STORAGE__ENDPOINT",
            "http://127.0.0.1:1",
        )
        .output()
        .unwrap();
    let log = ok(&offline);
    assert_eq!(b.calls(), 2, "{log}");
    assert_ne!(b.page(), a.page());
    let log = b.build();
    assert!(log.contains("an earlier build could not"), "{log}");
    b.build();
    assert_eq!(b.page(), a.page());
    let c = Machine::new(&server.storage_table(""), server.env());
    c.build();
    assert_eq!(c.calls(), 0);
    assert_eq!(c.page(), a.page());
    // Both images of each key are in the store; the later ones lose.
    assert_eq!(count(&objects(&server), "records/"), 4);
}

/// Descriptions and judgements travel like images: the machine that described and judged an
/// image uploads them, and another machine with an empty local cache shows the same alt text
/// and score without asking its describer or judge.
#[test]
fn descriptions_and_judgements_travel_through_the_remote() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared_directory(shared.path());
    let describing = |machine: &Machine| {
        let toml = machine.read("book.toml").replace(
            "provider = \"local\"\n",
            "provider = \"local\"\nalt-text = \"describe\"\n",
        );
        machine.write(
            "book.toml",
            &format!("{toml}\n[preprocessor.imagegen.describe]\nprofile = \"reader\"\n\n[preprocessor.imagegen.judge]\nmode = \"report\"\nprofile = \"reader\"\n\n[preprocessor.imagegen.providers.reader]\nkind = \"command\"\nmodel = \"reader\"\ncommand = [\"sh\", \"describe.sh\"]\n"),
        );
        machine.write(
            "describe.sh",
            "cat >/dev/null\necho \"$IMAGEGEN_TASK\" >>described.log\nif [ \"$IMAGEGEN_TASK\" = judge ]; then printf '%s' '{\"checks\": [{\"question\": \"Is it dawn?\", \"answer\": \"yes\"}], \"defects\": [], \"text_seen\": null}'; else printf '%s' '{\"alt\": \"A harbour at dawn, boats at rest\", \"description\": \"\"}'; fi\n",
        );
        machine.write(
            "src/one.md",
            "# One\n\n```image-prompt\na harbour at dawn\n```\n",
        );
    };
    let a = Machine::new(&table, Vec::new());
    describing(&a);
    let log = a.build();
    assert_eq!(a.read("described.log"), "judge\ndescribe\n", "{log}");
    assert!(
        a.page()
            .contains("alt=\"A harbour at dawn, boats at rest\"")
    );
    let described: Vec<_> = crate::support::fixtures::walk(&shared.path().join("descriptions"));
    assert_eq!(described.len(), 1, "the description was uploaded");
    let judged: Vec<_> = crate::support::fixtures::walk(&shared.path().join("judgements"));
    assert_eq!(judged.len(), 1, "the judgement was uploaded");

    let b = Machine::new(&table, Vec::new());
    describing(&b);
    let log = b.build();
    assert_eq!(b.calls(), 0, "{log}");
    assert!(!b.path().join("described.log").exists(), "{log}");
    assert_eq!(b.page(), a.page());
}

/// Runs a command, failing the test (not hanging it) when it takes over a minute.
fn within_a_minute(mut command: Command) -> Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{command:?} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A shared directory a teammate filled with traps where objects should be: a master that is a
/// link to `/dev/zero`, another that is a FIFO, a record linked to a file outside the store and
/// a record of 300 MB. A fresh build, `verify --remote` and `gc --remote --dry-run` finish at
/// once, read none of them, and the build makes the images it could not fetch.
#[cfg(unix)]
#[test]
fn a_shared_directory_of_traps_is_read_within_bounds() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared_directory(shared.path());
    let a = Machine::new(&table, Vec::new());
    a.build();
    let files = crate::support::fixtures::walk(shared.path());
    let masters: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains("/masters/"))
        .collect();
    assert_eq!(masters.len(), 2, "{files:?}");
    std::fs::remove_file(masters[0]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", masters[0]).unwrap();
    std::fs::remove_file(masters[1]).unwrap();
    let fifo = Command::new("mkfifo").arg(masters[1]).status().unwrap();
    assert!(fifo.success());
    let records = shared.path().join("records/00");
    std::fs::create_dir_all(&records).unwrap();
    let name = format!("{}-{}-00000000.json", "0".repeat(64), "0".repeat(16));
    std::os::unix::fs::symlink("/etc/passwd", records.join(&name)).unwrap();
    let big = std::fs::File::create(records.join(name.replace("-00000000", "-00000001"))).unwrap();
    big.set_len(300 << 20).unwrap();

    let b = Machine::new(&table, Vec::new());
    let built = within_a_minute(b.mdbook_build(0.0));
    let log = ok(&built);
    assert_eq!(
        b.calls(),
        2,
        "the images it could not fetch are made: {log}"
    );
    assert!(log.contains("is not read"), "{log}");
    assert!(!log.contains("root:x:0"), "{log}");

    let mut verify = Command::new(BIN);
    verify
        .args([
            "verify",
            "--remote",
            "--json",
            "--book",
            b.path().to_str().unwrap(),
        ])
        .env("CALLS", &b.calls);
    let verified = within_a_minute(verify);
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        !verified.status.success(),
        "the traps are problems: {report}"
    );
    assert!(!report.contains("root:x:0"), "{report}");
    for master in &masters {
        let object = master
            .strip_prefix(shared.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(report.contains(&object), "{object} is reported: {report}");
    }

    let mut gc = Command::new(BIN);
    gc.args([
        "gc",
        "--remote",
        "--dry-run",
        "--book",
        b.path().to_str().unwrap(),
    ])
    .env("CALLS", &b.calls);
    let collected = within_a_minute(gc);
    ok(&collected);
    // Nothing outside the store was touched.
    assert!(Path::new("/etc/passwd").exists());
}
