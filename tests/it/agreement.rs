//! `plan` and the build share one decision (the `resolve` stage): on the example book and on a
//! fixture book with fallbacks, offline, a budget, a remote and a retired model, every
//! directive `plan` calls a failure gets an error figure at its file and line, every other one
//! gets an image, the provider is called exactly for the images `plan` says are generated, and
//! the images `plan` finds in the remote are the ones the build copies.

use std::path::Path;

use serde_json::Value;

use crate::support::TestBook;
use crate::support::books::PROVIDER;
use crate::support::fixtures::{ok, statuses};

const TOML: &str = r#"[book]
title = "Agreement"

[preprocessor.imagegen]
provider = "local"
on-error = "placeholder"
max-images-per-build = 2
SETTINGS

[preprocessor.imagegen.providers.local]
kind = "command"
model = "swatch"
command = ["python3", "provider.py"]

[preprocessor.imagegen.providers.old]
kind = "openai"
model = "gpt-image-1"
base-url = "http://127.0.0.1:9/v1"

[preprocessor.imagegen.output]
widths = [64]
thumbnail = false

[preprocessor.imagegen.storage]
scheme = "fs"
root = "SHARED"
"#;

fn directive(attrs: &str, prompt: &str) -> String {
    format!("```image-prompt {attrs}\n{prompt}\n```\n\nSome text.\n\n")
}

/// A book of one chapter, with its own cache and the shared remote.
fn fixture(shared: &Path, settings: &str, chapter: &str) -> TestBook {
    let book = TestBook::example();
    let toml = TOML
        .replace("SETTINGS", settings)
        .replace("SHARED", &shared.display().to_string());
    book.write("book.toml", &toml);
    book.write("provider.py", PROVIDER);
    book.write("variant.txt", "base\n");
    book.write("src/SUMMARY.md", "# Summary\n\n- [One](one.md)\n");
    book.write("src/one.md", &format!("# One\n\n{chapter}"));
    book
}

/// Plans the book, builds it, and checks that the build did what the plan said.
fn agree(book: &TestBook, calls: &Path, chapters: &[&str]) -> Vec<Value> {
    let rows = book.plan();
    let before = std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .count();
    let output = book
        .mdbook(&["build"])
        .env("CALLS", calls)
        .output()
        .unwrap();
    let log = ok(&output);
    let made = std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .count()
        - before;
    let html: String = chapters
        .iter()
        .map(|c| book.read(&format!("book/{c}.html")))
        .collect();
    let is = |row: &Value, status: &str| row["status"] == status;
    for row in &rows {
        let at = format!(
            "<code>{}:{}</code>",
            row["file"].as_str().unwrap(),
            row["line"]
        );
        let failure = ["error", "offline", "over-budget", "retired"]
            .iter()
            .any(|s| is(row, s));
        assert_eq!(
            html.contains(&at),
            failure,
            "plan says {} for {at}, the build disagrees:\n{log}",
            row["status"]
        );
    }
    let failures = rows
        .iter()
        .filter(|r| {
            ["error", "offline", "over-budget", "retired"]
                .iter()
                .any(|s| is(r, s))
        })
        .count();
    assert_eq!(html.matches("imagegen-error").count(), failures, "{log}");
    assert_eq!(
        html.matches("<figure class=\"imagegen").count(),
        rows.len(),
        "every other directive has its image"
    );
    let generated = rows.iter().filter(|r| is(r, "generate")).count();
    assert_eq!(
        made, generated,
        "the provider is called for what plan generates:\n{log}"
    );
    let remote = rows.iter().filter(|r| is(r, "remote")).count();
    if remote > 0 {
        assert!(
            log.contains(&format!("copied {remote} image")),
            "plan's remote images are the ones copied:\n{log}"
        );
    } else {
        assert!(!log.contains("copied"), "{log}");
    }
    rows
}

#[test]
fn plan_and_build_agree_on_the_example_book() {
    let book = TestBook::example();
    let calls = book.root().join("calls.log");
    let chapters = [
        "index",
        "coast/lighthouses",
        "coast/harbours/tides",
        "reference",
    ];
    assert_eq!(statuses(&agree(&book, &calls, &chapters)), ["draw"; 5]);
    assert_eq!(statuses(&agree(&book, &calls, &chapters)), ["cached"; 5]);
}

#[test]
fn plan_and_build_agree_with_fallbacks_offline_budgets_a_remote_and_a_retired_model() {
    let shared = tempfile::tempdir().unwrap();
    // Another machine puts one image in the remote; this book has another one cached.
    let other = fixture(shared.path(), "", &directive("", "a harbour at dawn"));
    agree(&other, &other.root().join("calls.log"), &["one"]);
    let chapter = [
        directive("", "a harbour at dawn"),
        directive("", "a lighthouse at night"),
    ]
    .concat();
    let first = fixture(shared.path(), "", &chapter);
    let calls = first.root().join("calls.log");
    assert_eq!(
        statuses(&agree(&first, &calls, &["one"])),
        ["remote", "generate"]
    );

    let chapter = [
        chapter,
        directive("", "a new buoy"),
        directive("", "a new pier"),
        directive("", "a new boat, over the budget"),
        directive("provider=\"old\"", "a retired model's image"),
        directive("provider=\"placeholder\"", "a sketch"),
        directive("style=\"nope\"", "an unknown style"),
        directive("", "a new buoy"),
    ]
    .concat();
    // A fresh checkout of the whole book: both images are in the remote now.
    let book = fixture(shared.path(), "", &chapter);
    let rows = agree(&book, &calls, &["one"]);
    assert_eq!(
        statuses(&rows),
        [
            "remote",
            "remote",
            "generate",
            "generate",
            "over-budget",
            "retired",
            "draw",
            "error",
            "cached"
        ]
    );
    assert!(rows[5]["message"].as_str().unwrap().contains("gpt-image-1"));

    // Offline, with a placeholder fallback: what is missing is drawn, and plan says so (the
    // placeholder profile's own image was drawn by the last build, so it is cached).
    book.write(
        "book.toml",
        &TOML
            .replace("SETTINGS", "offline = true\nfallback = [\"placeholder\"]")
            .replace("SHARED", &shared.path().display().to_string()),
    );
    book.write(
        "src/one.md",
        &format!("# One\n\n{chapter}{}", directive("", "one more, offline")),
    );
    let rows = agree(&book, &calls, &["one"]);
    assert_eq!(
        statuses(&rows),
        [
            "cached", "cached", "cached", "cached", "draw", "draw", "cached", "error", "cached",
            "draw"
        ]
    );
    // Offline with no fallback: plan and build both call it missing.
    book.write(
        "book.toml",
        &TOML
            .replace("SETTINGS", "offline = true")
            .replace("SHARED", &shared.path().display().to_string()),
    );
    let rows = agree(&book, &calls, &["one"]);
    assert_eq!(statuses(&rows)[4], "offline");
}

#[test]
fn plan_and_build_agree_on_references_variants_and_edits_within_the_budget() {
    let shared = tempfile::tempdir().unwrap();
    let chapter = [
        directive("id=\"keeper\" alt=\"k\"", "The keeper"), // line 3
        directive(
            "reference=\"#keeper\" variants=\"2\" alt=\"v\"",
            "Rowing out",
        ), // line 9
        directive(
            "reference=\"#keeper\" edit=\"at night\" alt=\"e\"",
            "On the gallery",
        ), // line 15
    ]
    .concat();
    let book = fixture(shared.path(), "", &chapter);
    let calls = book.root().join("calls.log");
    // A budget of two images across the rounds: the keeper, then the first candidate; the
    // second candidate and the image to edit are over it, so the edit cannot be made. `plan`
    // says so before the keeper exists, and the build does it.
    let rows = agree(&book, &calls, &["one"]);
    assert_eq!(statuses(&rows), ["generate", "generate", "error"]);
    assert!(rows[1]["key"].is_null(), "its key waits for the keeper");
    assert!(
        rows[2]["message"]
            .as_str()
            .unwrap()
            .contains("the image to edit has none"),
        "{}",
        rows[2]
    );
    let after = book.plan();
    assert_eq!(after[0]["status"], "cached");
    assert_eq!(after[1]["candidates"].as_array().unwrap().len(), 2);
}
