//! Test books in temporary directories, and the commands that build them; the one book
//! template, fixtures and loopback servers the tests share.

pub(crate) mod batches;
pub(crate) mod books;
pub(crate) mod fixtures;
pub(crate) mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

/// The preprocessor binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mdbook-imagegen");

/// A copy of a book in a temporary directory.
pub(crate) struct TestBook {
    dir: tempfile::TempDir,
}

impl TestBook {
    /// Copies `example-book/` without anything a build made, and without its chapter "The
    /// keeper" (references, variants and an edit, which need the book's own house style): the
    /// book most tests change the settings of.
    pub(crate) fn example() -> TestBook {
        let book = TestBook::example_full();
        let summary = book
            .read("src/SUMMARY.md")
            .replace("- [The keeper](art.md)\n", "");
        book.write("src/SUMMARY.md", &summary);
        std::fs::remove_file(book.root().join("src/art.md")).unwrap();
        book
    }

    /// Copies all of `example-book/` without anything a build made.
    pub(crate) fn example_full() -> TestBook {
        // Not under `target/`: mdBook's watcher obeys the first `.gitignore` above the book,
        // and this repository's ignores `target/`.
        let dir = tempfile::Builder::new()
            .prefix("imagegen-book-")
            .tempdir()
            .unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-book");
        copy_tree(&source, dir.path(), &|p: &Path| {
            let name = p.file_name().unwrap().to_string_lossy();
            !(name == "book"
                || name == ".imagegen"
                || (name == "imagegen" && p.parent().unwrap().ends_with("src")))
        });
        TestBook { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.root().join(relative)).unwrap()
    }

    /// `mdbook` with our binary as the `imagegen` preprocessor.
    pub(crate) fn mdbook(&self, args: &[&str]) -> Command {
        let mut command = Command::new(mdbook_binary());
        command
            .args(args)
            .current_dir(self.root())
            .env("MDBOOK_PREPROCESSOR__IMAGEGEN__COMMAND", BIN)
            .env_remove("MDBOOK_IMAGEGEN_LOG");
        command
    }

    /// `mdbook-imagegen <args> --book <this book>`, with `mdbook` on the `PATH`.
    pub(crate) fn imagegen(&self, args: &[&str]) -> Output {
        self.imagegen_command(args).output().unwrap()
    }

    /// [`TestBook::imagegen`] with `vars` set, on a blocking thread (a test's servers keep
    /// answering).
    pub(crate) async fn imagegen_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut command = self.imagegen_command(args);
        command.envs(vars.iter().copied());
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    fn imagegen_command(&self, args: &[&str]) -> Command {
        let bin_dir = mdbook_binary().parent().unwrap().to_owned();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(args)
            .arg("--book")
            .arg(self.root())
            .env("PATH", path)
            .env_remove("MDBOOK_PREPROCESSOR__IMAGEGEN__COMMAND");
        command
    }

    /// What a teammate gets by cloning the book's repository: everything but mdBook's output
    /// and the cache's local parts (`.imagegen/.gitignore`).
    pub(crate) fn committed_clone(&self) -> TestBook {
        let dir = tempfile::Builder::new()
            .prefix("imagegen-clone-")
            .tempdir()
            .unwrap();
        let cache = self.root().join(".imagegen");
        copy_tree(self.root(), dir.path(), &|p: &Path| {
            let local = p.parent() == Some(cache.as_path())
                && matches!(
                    p.file_name().unwrap().to_str().unwrap(),
                    "local" | "tmp" | "index.redb"
                );
            !(local || p == self.root().join("book"))
        });
        TestBook { dir }
    }

    /// `mdbook-imagegen plan --json` on the book: one row per directive.
    pub(crate) fn plan(&self) -> Vec<serde_json::Value> {
        let output = self.imagegen(&["plan", "--json"]);
        fixtures::ok(&output);
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `mdbook build` with `vars` set, on a blocking thread (a test's servers keep answering).
    pub(crate) async fn build_with(&self, vars: &[(&str, &str)]) -> Output {
        let mut command = self.mdbook(&["build"]);
        command.envs(vars.iter().copied());
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Rewrites the file at `relative` with `change`.
    pub(crate) fn edit(&self, relative: &str, change: impl FnOnce(String) -> String) {
        let text = self.read(relative);
        self.write(relative, &change(text));
    }

    /// Runs `mdbook build` and returns its output, failing the test if it fails.
    pub(crate) fn build(&self) -> Output {
        let output = self.mdbook(&["build"]).output().unwrap();
        assert!(
            output.status.success(),
            "mdbook build failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The committed records, as JSON.
    pub(crate) fn records(&self) -> Vec<serde_json::Value> {
        let dir = self.root().join(".imagegen/records");
        let Ok(shards) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        shards
            .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
            .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
            .collect()
    }

    /// Every file and directory under the book except mdBook's output, with size and mtime.
    pub(crate) fn files(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root().to_owned()];
        while let Some(dir) = stack.pop() {
            for item in std::fs::read_dir(&dir).unwrap() {
                let item = item.unwrap();
                let path = item.path();
                if path == self.root().join("book") {
                    continue;
                }
                let meta = item.metadata().unwrap();
                if meta.is_dir() {
                    stack.push(path.clone());
                }
                out.push((path, meta.len(), meta.modified().unwrap()));
            }
        }
        out.sort();
        out
    }
}

/// The `mdbook` binary: from `PATH`, or where `cargo install` puts it.
pub(crate) fn mdbook_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")));
    for dir in candidates {
        let path = dir.join("mdbook");
        if path.is_file() {
            return path;
        }
    }
    panic!("`mdbook` is not installed; run `scripts/install-tools`");
}

/// The `<main>` element of a rendered page.
pub(crate) fn main_of(html: &str) -> &str {
    let start = html.find("<main>").expect("a <main> element");
    let end = html.find("</main>").expect("a </main>") + "</main>".len();
    &html[start..end]
}

fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let path = item.path();
        if !keep(&path) {
            continue;
        }
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_tree(&path, &target, keep);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
