//! Working as a team: two branches add images and plain `git merge` combines them with no
//! conflict and no merge driver; the merged book builds without a single provider call. Two
//! builds at once agree, and a build killed while generating leaves a sound cache.

use std::path::Path;
use std::process::Command;

use crate::support::books::PROVIDER;
use crate::support::fixtures::ok;
use crate::support::{BIN, mdbook_binary};

struct Repo {
    dir: tempfile::TempDir,
    calls: tempfile::NamedTempFile,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::Builder::new()
                .prefix("imagegen-git-")
                .tempdir()
                .unwrap(),
            calls: tempfile::NamedTempFile::new().unwrap(),
        };
        repo.write(
            "book.toml",
            r#"[book]
title = "Merges"

[preprocessor.imagegen]
provider = "local"

[preprocessor.imagegen.providers.local]
kind = "command"
model = "swatch"
command = ["python3", "provider.py"]

[preprocessor.imagegen.output]
widths = [64]
thumbnail = false
"#,
        );
        repo.write("provider.py", PROVIDER);
        repo.write("variant.txt", "base\n");
        // The variant is a property of the machine, not of the book.
        repo.write(".gitignore", "/book/\n/variant.txt\n");
        repo.write(
            "src/SUMMARY.md",
            "# Summary\n\n- [One](one.md)\n- [Two](two.md)\n",
        );
        repo.write("src/one.md", &chapter("One", &["a harbour"]));
        repo.write("src/two.md", &chapter("Two", &[]));
        repo.git(&["init", "-q", "-b", "main"]);
        repo.build();
        repo.commit("base");
        repo
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn git(&self, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "merge.conflictstyle=merge",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        let output = self.git(&["commit", "-q", "-m", message]);
        ok(&output);
    }

    /// `mdbook build`, not yet run.
    fn mdbook_build(&self) -> Command {
        let mut command = Command::new(mdbook_binary());
        command
            .arg("build")
            .current_dir(self.dir.path())
            .env("MDBOOK_PREPROCESSOR__IMAGEGEN__COMMAND", BIN)
            .env("CALLS", self.calls.path())
            .env_remove("MDBOOK_IMAGEGEN_LOG");
        command
    }

    fn build(&self) -> String {
        let output = self.mdbook_build().output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}");
        log
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.calls.path())
            .unwrap()
            .lines()
            .count()
    }

    fn records(&self) -> usize {
        count_files(&self.dir.path().join(".imagegen/records"))
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).unwrap()
    }
}

fn chapter(title: &str, prompts: &[&str]) -> String {
    let mut text = format!("# {title}\n");
    for prompt in prompts {
        text.push_str(&format!(
            "\n```image-prompt size=\"64x64\"\n{prompt}\n```\n"
        ));
    }
    text
}

fn count_files(dir: &Path) -> usize {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    listing
        .flatten()
        .map(|i| {
            if i.file_type().unwrap().is_dir() {
                count_files(&i.path())
            } else {
                1
            }
        })
        .sum()
}

fn python_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn branches_that_add_different_images_merge_cleanly_and_build_without_calls() {
    if !python_available() {
        panic!("python3 is needed for the test provider; run scripts/install-tools");
    }
    let repo = Repo::new();
    assert_eq!(repo.calls(), 1);

    repo.git(&["checkout", "-q", "-b", "lighthouses"]);
    repo.write(
        "src/one.md",
        &chapter("One", &["a harbour", "a lighthouse"]),
    );
    repo.build();
    repo.commit("A lighthouse");

    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["checkout", "-q", "-b", "tides"]);
    repo.write("src/two.md", &chapter("Two", &["a tide table", "a buoy"]));
    repo.build();
    repo.commit("Tides");
    assert_eq!(repo.calls(), 4);

    repo.git(&["checkout", "-q", "main"]);
    let first = repo.git(&["merge", "-q", "--no-edit", "lighthouses"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let second = repo.git(&["merge", "-q", "--no-edit", "tides"]);
    assert!(
        second.status.success(),
        "merge conflict:\n{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(repo.records(), 4);

    let log = repo.build();
    assert_eq!(
        repo.calls(),
        4,
        "the merged book generated something:\n{log}"
    );
    assert!(repo.read("book/one.html").matches("<figure").count() == 2);
    assert!(repo.read("book/two.html").matches("<figure").count() == 2);
}

#[test]
fn the_same_prompt_on_two_branches_merges_and_one_image_wins_everywhere() {
    if !python_available() {
        panic!("python3 is needed for the test provider; run scripts/install-tools");
    }
    let repo = Repo::new();
    for (branch, variant) in [("first", "first\n"), ("second", "second\n")] {
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["checkout", "-q", "-b", branch]);
        repo.write("variant.txt", variant);
        repo.write("src/two.md", &chapter("Two", &["the same buoy"]));
        repo.build();
        repo.commit(branch);
        // Different bytes on each branch, a millisecond apart at least.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(repo.calls(), 3);
    repo.git(&["checkout", "-q", "main"]);
    assert!(
        repo.git(&["merge", "-q", "--no-edit", "first"])
            .status
            .success()
    );
    let merge = repo.git(&["merge", "-q", "--no-edit", "second"]);
    assert!(
        merge.status.success(),
        "merge conflict:\n{}",
        String::from_utf8_lossy(&merge.stdout)
    );
    // Both records survived the merge.
    assert_eq!(repo.records(), 3);

    repo.build();
    let page = repo.read("book/two.html");
    repo.build();
    assert_eq!(
        repo.read("book/two.html"),
        page,
        "the same winner on every build"
    );
    assert_eq!(repo.calls(), 3, "no provider call after the merge");

    // The winner is the image made first: the `first` branch's.
    let first_master = {
        repo.git(&["checkout", "-q", "first"]);
        let html = {
            repo.build();
            repo.read("book/two.html")
        };
        repo.git(&["checkout", "-q", "main"]);
        html
    };
    repo.build();
    assert_eq!(repo.read("book/two.html"), first_master);

    // gc removes the loser.
    let gc = imagegen(&repo, &["gc"]);
    ok(&gc);
    assert_eq!(repo.records(), 2);
    repo.build();
    assert_eq!(repo.read("book/two.html"), first_master);
    assert_eq!(repo.calls(), 3);
}

fn imagegen(repo: &Repo, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--book")
        .arg(repo.dir.path())
        .env("PATH", with_mdbook_on_path())
        .env("CALLS", repo.calls.path())
        .output()
        .unwrap()
}

#[test]
fn two_builds_at_once_both_succeed_with_the_same_pages() {
    let repo = Repo::new();
    repo.write(
        "src/two.md",
        &chapter("Two", &["a buoy", "a tide table", "a slow ferry", "a pier"]),
    );
    let spawn = |dest: &str| {
        let mut command = repo.mdbook_build();
        command
            .args(["--dest-dir", dest])
            .env("SLOW", "0.5")
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let (a, b) = (spawn("out-a"), spawn("out-b"));
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        ok(&output);
    }
    for page in ["one.html", "two.html"] {
        assert_eq!(
            repo.read(&format!("out-a/{page}")),
            repo.read(&format!("out-b/{page}")),
            "{page}"
        );
    }
    assert_eq!(repo.read("out-a/two.html").matches("<figure").count(), 4);
    // Single flight: each new image was generated once, by one of the two builds, and the
    // other waited for it (one call for the base image, four for the new ones).
    assert_eq!(repo.calls(), 5);
    assert!(imagegen(&repo, &["verify"]).status.success());
}

#[test]
fn a_build_killed_while_generating_leaves_a_sound_cache_and_the_next_one_finishes() {
    use std::os::unix::process::CommandExt;

    let repo = Repo::new();
    repo.write(
        "src/two.md",
        &chapter("Two", &["a buoy", "a slow ferry", "a pier"]),
    );
    let mut command = repo.mdbook_build();
    command
        .env("SLOW", "60")
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let mut child = command.spawn().unwrap();
    // Wait for the fast images; the slow one is still being made.
    let started = std::time::Instant::now();
    while repo.calls() < 3 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the fast images never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SIGKILL to mdBook, the preprocessor and the provider alike.
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(!child.wait().unwrap().success());

    let verify = imagegen(&repo, &["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let log = repo.build();
    assert!(log.contains("generated 1 image"), "{log}");
    assert_eq!(repo.calls(), 4);
    assert_eq!(repo.read("book/two.html").matches("<figure").count(), 3);
    assert!(imagegen(&repo, &["verify"]).status.success());
}

fn with_mdbook_on_path() -> std::ffi::OsString {
    let bin_dir = mdbook_binary().parent().unwrap().to_owned();
    std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap()
}

#[test]
fn regenerate_makes_a_new_image_that_wins_and_gc_drops_the_old_master() {
    let repo = Repo::new();
    let masters = || count_files(&repo.dir.path().join(".imagegen/masters"));
    let before = repo.read("book/one.html");
    assert_eq!((repo.calls(), repo.records(), masters()), (1, 1, 1));

    // The model answers differently now; ask again for the chapter's image.
    repo.write("variant.txt", "another day\n");
    let output = imagegen(&repo, &["regenerate", "one.md"]);
    ok(&output);
    assert_eq!((repo.calls(), repo.records(), masters()), (2, 1, 2));
    repo.build();
    assert_ne!(repo.read("book/one.html"), before, "the new image is used");
    assert_eq!(repo.calls(), 2);

    // By the start of a cache key, as `list` shows it.
    let list = imagegen(&repo, &["list", "--json"]);
    let images: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let key = images[0]["key"].as_str().unwrap()[..8].to_owned();
    repo.write("variant.txt", "a third day\n");
    assert!(imagegen(&repo, &["regenerate", &key]).status.success());
    assert_eq!((repo.calls(), repo.records(), masters()), (3, 1, 3));

    let gc = imagegen(&repo, &["gc"]);
    assert!(gc.status.success());
    assert_eq!(masters(), 1);
    assert!(imagegen(&repo, &["verify"]).status.success());

    let none = imagegen(&repo, &["regenerate", "no-such-chapter.md"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no directive matches"));
    let failed = imagegen(&repo, &["regenerate", "--failed"]);
    assert!(String::from_utf8_lossy(&failed.stderr).contains("nothing to regenerate"));
}
