//! The team commands (`plan`, `generate`) on real books, through the real `mdbook`.

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::books::toml;
use crate::support::fixtures::{ok, statuses, walk};
use crate::support::{BIN, TestBook};

fn imagegen(book: &TestBook, args: &[&str]) -> Output {
    book.imagegen(args)
}

#[test]
fn plan_sees_what_a_build_sees_and_generate_fills_the_cache() {
    let book = TestBook::example();
    let rows = book.plan();
    // Five directives, one of them in a file that reference.md {{#include}}s.
    assert_eq!(statuses(&rows), ["draw"; 5]);
    assert!(
        rows.iter().any(|r| r["file"] == "src/reference.md"
            && r["prompt"].as_str().unwrap().starts_with("A fog horn")),
        "{rows:#?}"
    );
    assert!(!book.root().join("book").exists(), "plan renders nothing");

    let output = imagegen(&book, &["generate"]);
    ok(&output);
    assert!(output.stdout.is_empty());
    assert_eq!(statuses(&book.plan()), ["cached"; 5]);
    // A build afterwards generates nothing and makes no web file.
    let before = book.files();
    let build = book.build();
    let log = String::from_utf8_lossy(&build.stderr);
    assert!(!log.contains("generat"), "{log}");
    assert_eq!(book.files(), before);
}

#[test]
fn plan_estimates_costs_and_applies_the_budget_without_calling_anyone() {
    let book = TestBook::example();
    book.write(
        "book.toml",
        &toml(
            "Budget",
            r#"provider = "paid"
max-images-per-build = 3

[preprocessor.imagegen.providers.paid]
kind = "openai"
model = "gpt-image-2"
price = 0.04
base-url = "http://127.0.0.1:9"

[preprocessor.imagegen.styles]
engraving = "black and white copperplate engraving, fine cross-hatching"
"#,
        ),
    );
    let rows = book.plan();
    assert_eq!(
        statuses(&rows),
        [
            "generate",
            "generate",
            "generate",
            "over-budget",
            "over-budget"
        ]
    );
    assert_eq!(rows[0]["cost"], 0.04);
    assert!(
        rows[3]["message"]
            .as_str()
            .unwrap()
            .contains("max-images-per-build = 3")
    );
    let table = imagegen(&book, &["plan"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(
            "5 directives: 0 cached, 3 to generate (estimated $0.12, $0.06 by `batch submit`), 2 over budget"
        ),
        "{text}"
    );
}

#[test]
fn generate_fails_with_the_place_of_a_bad_directive() {
    let book = TestBook::example();
    book.write(
        "src/coast/lighthouses.md",
        "# Lighthouses\n\n```image-prompt sise=\"10x10\"\nA lighthouse\n```\n",
    );
    let output = imagegen(&book, &["generate"]);
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("src/coast/lighthouses.md:3"), "{log}");
}

/// `models` prints what this version knows, each row with its state, source and date; the
/// table needs no book.
#[test]
fn models_lists_what_this_version_knows_with_its_sources() {
    let output = Command::new(BIN)
        .args(["models", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let find = |model: &str| rows.iter().find(|r| r["model"] == model).unwrap().clone();
    assert_eq!(find("gpt-image-1")["state"], "retired");
    assert_eq!(find("gpt-image-1")["replacement"], "gpt-image-2");
    assert_eq!(find("gpt-image-2.6-sunburst")["state"], "current");
    assert_eq!(find("ideogram-v3")["kind"], "ideogram");
    assert_eq!(find("grok-imagine-image-2.0")["kind"], "xai");
    for row in &rows {
        assert!(
            row["source"].as_str().unwrap().starts_with("https://"),
            "{row}"
        );
        assert_eq!(row["read"].as_str().unwrap().len(), 10, "{row}");
    }
    let text = Command::new(BIN).arg("models").output().unwrap();
    ok(&text);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("retired 2026-10-23 → gpt-image-2"), "{text}");
    assert!(text.contains("takes "), "{text}");
}

#[test]
fn commands_explain_a_missing_book() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["plan", "--book"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("has no book.toml"), "{log}");
}

#[test]
fn list_gc_verify_and_reindex_look_after_the_cache() {
    let book = TestBook::example();
    assert!(imagegen(&book, &["generate"]).status.success());
    let list = |book: &TestBook| -> Vec<Value> {
        let output = imagegen(book, &["list", "--json"]);
        assert!(output.status.success());
        serde_json::from_slice::<Value>(&output.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let images = list(&book);
    assert_eq!(images.len(), 5);
    assert!(
        images
            .iter()
            .all(|i| i["chapters"].as_array().unwrap().len() == 1)
    );

    // A prompt changes: the old image is no longer used.
    let chapter = book.read("src/coast/lighthouses.md");
    book.write(
        "src/coast/lighthouses.md",
        &chapter.replace("An open logbook", "A closed logbook"),
    );
    book.build();
    let images = list(&book);
    assert_eq!(images.len(), 6);
    let unused: Vec<&Value> = images
        .iter()
        .filter(|i| i["chapters"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(unused.len(), 1);
    let old_key = unused[0]["key"].as_str().unwrap().to_owned();

    let json = imagegen(&book, &["gc", "--dry-run", "--json"]);
    let value: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["dry_run"], true);
    assert!(
        value["files"].as_array().unwrap().iter().any(|f| f["path"]
            .as_str()
            .unwrap()
            .starts_with(".imagegen/local/records/")),
        "{value:#}"
    );
    let dry = imagegen(&book, &["gc", "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains(&old_key[..16]) || text.contains(".json"),
        "{text}"
    );
    assert!(text.contains("would delete"), "{text}");
    assert_eq!(list(&book).len(), 6, "a dry run deletes nothing");
    let before_html = book.read("book/coast/lighthouses.html");

    let gc = imagegen(&book, &["gc"]);
    let text = String::from_utf8_lossy(&gc.stdout);
    assert!(text.contains("deleted"), "{text}");
    assert_eq!(list(&book).len(), 5);
    // Nothing the book uses went: a build generates nothing and renders the same page.
    let build = book.build();
    assert!(!String::from_utf8_lossy(&build.stderr).contains("generat"));
    assert_eq!(book.read("book/coast/lighthouses.html"), before_html);

    let verify = imagegen(&book, &["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // A damaged master cannot be fixed; a missing one can (its record goes, the image comes back).
    let masters = book.root().join(".imagegen/local/masters");
    let mut files: Vec<_> = walk(&masters);
    files.sort();
    std::fs::write(&files[0], b"not the image").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let verify = imagegen(&book, &["verify"]);
    assert!(!verify.status.success());
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(text.contains("does not match its name"), "{text}");
    assert!(text.contains("its master is missing"), "{text}");
    let json = imagegen(&book, &["verify", "--json"]);
    assert!(!json.status.success());
    let problems: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(problems.as_array().unwrap().len(), 2);
    let fix = imagegen(&book, &["verify", "--fix"]);
    assert!(
        !fix.status.success(),
        "the damaged master is left to the user"
    );
    let text = String::from_utf8_lossy(&fix.stdout);
    assert!(text.contains("cannot fix"), "{text}");
    assert!(text.contains("1 problem fixed, 1 left"), "{text}");
    std::fs::remove_file(&files[0]).unwrap();
    assert!(imagegen(&book, &["verify", "--fix"]).status.success());
    assert!(imagegen(&book, &["verify"]).status.success());

    let reindex = imagegen(&book, &["reindex"]);
    assert!(reindex.status.success());
    assert!(String::from_utf8_lossy(&reindex.stderr).contains("the index holds 3 images"));
    let build = book.build();
    assert!(String::from_utf8_lossy(&build.stderr).contains("generated 2 images"));
}

#[test]
fn install_adds_the_preprocessor_and_the_book_builds() {
    let book = TestBook::example();
    let original = "[book]\n# Our notes.\ntitle = \"Notes\"  # short\n";
    book.write("book.toml", original);
    // The example's chapters use a style its book.toml defines; this book has none.
    let chapter = book.read("src/coast/lighthouses.md");
    book.write(
        "src/coast/lighthouses.md",
        &chapter.replace(" style=\"engraving\"", ""),
    );
    let first = imagegen(&book, &["install"]);
    ok(&first);
    let text = book.read("book.toml");
    assert_eq!(
        text,
        format!("{original}\n[preprocessor.imagegen]\nafter = [\"links\"]\n")
    );
    assert!(book.read(".imagegen/.gitignore").contains("/index.redb"));
    // A second run changes nothing.
    let again = imagegen(&book, &["install"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has"));
    assert_eq!(book.read("book.toml"), text);
    // The book builds with figures, through mdBook's own lookup of the preprocessor.
    book.build();
    assert!(book.read("book/index.html").contains("<figure"));
}

#[test]
fn review_writes_one_self_contained_page() {
    let book = TestBook::example();
    assert!(imagegen(&book, &["generate"]).status.success());
    let out = book.root().join("review.html");
    let output = imagegen(&book, &["review", "--out", out.to_str().unwrap()]);
    ok(&output);
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>Images of Lights of the Coast</title>"));
    assert_eq!(page.matches("<article").count(), 5);
    assert_eq!(page.matches("src=\"data:image/webp;base64,").count(), 5);
    // Nothing outside the page: no link, script or remote image.
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    assert!(page.contains("The keeper&#39;s log") || page.contains("The keeper's log"));
}
