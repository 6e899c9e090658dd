//! Art direction with the real `mdbook`: reference images (files and `#id`), variants with a
//! committed pick, and edits, against a loopback OpenAI server that speaks the generations and
//! edits endpoints (multipart, `n`); the example book's chapter with the keyless placeholder;
//! and every way a reference can be wrong, named with its file and line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::TestBook;
use crate::support::books::book_with;
use crate::support::fixtures::assert_no_key_of;
use crate::support::fixtures::{ok, png, png_base64};

const KEY: &str = "sk-art-direction-test-0a1b2c3d";

/// Answers an OpenAI image request with as many images as its `n` asks for (JSON or
/// multipart), each one different, and counts the requests per endpoint.
#[derive(Clone, Default)]
struct Images {
    made: Arc<AtomicU32>,
}

impl Respond for Images {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = if request.url.path().ends_with("/edits") {
            multipart_field(request, "n")
        } else {
            serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|b| b["n"].as_u64())
                .map(|n| n.to_string())
        }
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
        let data: Vec<Value> = (0..n)
            .map(|_| {
                let k = self.made.fetch_add(1, Ordering::SeqCst);
                serde_json::json!({ "b64_json": png_base64(32, 32 + k) })
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({ "created": 1, "data": data }))
    }
}

/// A text field of a multipart body.
fn multipart_field(request: &Request, name: &str) -> Option<String> {
    let body = String::from_utf8_lossy(&request.body);
    let head = format!("name=\"{name}\"\r\n\r\n");
    let start = body.find(&head)? + head.len();
    Some(body[start..].split("\r\n").next()?.to_owned())
}

/// The requests the server got, as (path, `n`, how many `image[]` parts).
async fn received(server: &MockServer) -> Vec<(String, u32, usize)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let path = r.url.path().to_owned();
            let images = String::from_utf8_lossy(&r.body)
                .matches("name=\"image[]\"")
                .count();
            let n = if path.ends_with("/edits") {
                multipart_field(r, "n").and_then(|n| n.parse().ok())
            } else {
                serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b["n"].as_u64())
                    .map(|n| n as u32)
            };
            (path, n.unwrap_or(0), images)
        })
        .collect()
}

fn build(book: &TestBook) -> std::process::Output {
    book.mdbook(&["build"])
        .env("OPENAI_API_KEY", KEY)
        .output()
        .unwrap()
}

async fn build_async(book: &TestBook) -> std::process::Output {
    let mut command = book.mdbook(&["build"]);
    command.env("OPENAI_API_KEY", KEY);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn picks(book: &TestBook) -> usize {
    let dir = book.root().join(".imagegen/picks");
    std::fs::read_dir(dir).map_or(0, |shards| {
        shards
            .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
            .sum()
    })
}

const CHAPTER_B: &str = "# B\n\n```image-prompt reference=\"#keeper, ../../art/sketch.png\" variants=\"3\" alt=\"Rowing out\"\nThe keeper rowing out of the harbour\n```\n\n```image-prompt reference=\"#keeper\" edit=\"make it night\" alt=\"The gallery at night\"\nThe keeper on the gallery\n```\n";

/// A book of two chapters on the loopback server: the keeper in `a.md`; in `b/b.md`, three
/// candidates made from her and a sketch (line 3), and an edit of a figure made from her
/// (line 7).
fn keeper_book(server: &MockServer) -> TestBook {
    let book = book_with(&server.uri(), "");
    book.write(
        "src/SUMMARY.md",
        "# Summary\n\n- [A](a.md)\n- [B](b/b.md)\n",
    );
    book.write(
        "src/a.md",
        "# A\n\n```image-prompt id=\"keeper\" alt=\"The keeper\"\nThe lighthouse keeper in a yellow oilskin\n```\n",
    );
    book.write("src/b/b.md", CHAPTER_B);
    std::fs::create_dir_all(book.root().join("art")).unwrap();
    std::fs::write(book.root().join("art/sketch.png"), png(12, 8)).unwrap();
    book
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_variants_and_edits_are_made_once_and_picked_with_no_call() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Images::default())
        .mount(&server)
        .await;
    let book = keeper_book(&server);

    // Before a build, what the candidates' keys are is not known: `pick` and `gc` say so.
    let early = book.imagegen(&["pick", "src/b/b.md:3", "2"]);
    assert!(String::from_utf8_lossy(&early.stderr).contains("build the book, then pick"));
    let early = book.imagegen(&["gc"]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("build the book, then run `gc`"));

    // The keeper first; then her candidates (one request, n = 3) and the image to edit, each
    // sent with her image; then the edit, sent with that image.
    let first = build_async(&book).await;
    ok(&first);
    let mut calls = received(&server).await;
    calls.sort();
    assert_eq!(
        calls,
        [
            ("/v1/images/edits".to_owned(), 1, 1),
            ("/v1/images/edits".to_owned(), 1, 1),
            ("/v1/images/edits".to_owned(), 3, 2),
            ("/v1/images/generations".to_owned(), 1, 0),
        ]
    );
    let made = book.records();
    assert_eq!(made.len(), 6);
    let candidates: Vec<&Value> = made
        .iter()
        .filter(|r| r["references"].as_array().is_some_and(|a| a.len() == 2))
        .collect();
    assert_eq!(candidates.len(), 3);
    let labels: Vec<&str> = candidates[0]["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["#keeper", "../../art/sketch.png"]);

    // A second build makes nothing and says nothing.
    let again = build_async(&book).await;
    assert!(again.status.success());
    assert_eq!(received(&server).await.len(), 4);
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("imagegen:"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // `plan` shows the candidates, the pick and the edit.
    let rows = book.plan();
    let in_b = |line: u64| {
        rows.iter()
            .find(|r| r["file"] == "src/b/b.md" && r["line"] == line)
            .unwrap()
    };
    let variants = in_b(3);
    assert_eq!(variants["status"], "cached");
    assert_eq!(variants["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(variants["picked"], 1);
    assert_eq!(
        variants["references"],
        serde_json::json!(["#keeper", "../../art/sketch.png"])
    );
    let edit = in_b(7);
    assert_eq!(edit["edit"], "make it night");
    assert!(edit["edits"].is_string());

    // Picking the second candidate shows it, with no call.
    let second_key = variants["candidates"][1].as_str().unwrap().to_owned();
    let second = made
        .iter()
        .find(|r| r["key"] == second_key.as_str())
        .unwrap();
    assert_eq!(second["candidate"], 2);
    let second_master = &second["master"].as_str().unwrap()[..16];
    let page = || book.read("book/b/b.html");
    assert!(!page().contains(second_master));
    let picked = book.imagegen(&["pick", "src/b/b.md:3", "2"]);
    ok(&picked);
    assert!(String::from_utf8_lossy(&picked.stdout).contains("shows candidate 2 of 3"));
    assert_eq!(picks(&book), 1);
    assert!(build_async(&book).await.status.success());
    assert_eq!(received(&server).await.len(), 4);
    assert!(page().contains(second_master), "the pick is shown");
    let wrong = book.imagegen(&["pick", "src/b/b.md:3", "4"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("pick one from 1 to 3"));
    let plain = book.imagegen(&["pick", "a.md:3", "2"]);
    assert!(String::from_utf8_lossy(&plain.stderr).contains("has no variants"));

    // Changing only the instruction makes one new request.
    book.write(
        "src/b/b.md",
        &CHAPTER_B.replace("make it night", "make it dawn"),
    );
    assert!(build_async(&book).await.status.success());
    assert_eq!(received(&server).await.len(), 5);

    // Changing the sketch's pixels makes exactly the images made from it again: the three
    // candidates, in one request. Renaming it changes nothing.
    std::fs::write(book.root().join("art/sketch.png"), png(12, 9)).unwrap();
    assert!(build_async(&book).await.status.success());
    let calls = received(&server).await;
    assert_eq!(calls.len(), 6);
    assert_eq!(calls[5], ("/v1/images/edits".to_owned(), 3, 2));
    std::fs::rename(
        book.root().join("art/sketch.png"),
        book.root().join("art/harbour.png"),
    )
    .unwrap();
    book.write(
        "src/b/b.md",
        &CHAPTER_B
            .replace("make it night", "make it dawn")
            .replace("sketch.png", "harbour.png"),
    );
    assert!(build_async(&book).await.status.success());
    assert_eq!(received(&server).await.len(), 6);

    // `gc` keeps what the directives use (every candidate, the image an edit starts from) and
    // removes the rest: the old candidates, the old edit, and the pick of old candidates.
    let gc = book.imagegen(&["gc"]);
    ok(&gc);
    assert_eq!(book.records().len(), 6);
    assert_eq!(picks(&book), 0);
    assert!(build_async(&book).await.status.success());
    assert_eq!(received(&server).await.len(), 6);

    // `list` says what each image was made from.
    let list = book.imagegen(&["list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("(candidate 3)"), "{listed}");
    // Records keep what the image was made from, as it was named then.
    assert!(
        listed.contains("from #keeper, ../../art/sketch.png"),
        "{listed}"
    );
    assert!(
        listed.contains("make it dawn  from (the image it edits)"),
        "{listed}"
    );

    assert_no_key_of(KEY, book.root(), &[&first, &again]);
}

#[test]
fn the_example_book_shows_references_and_candidates_with_no_key() {
    let book = TestBook::example_full();
    let first = book.build();
    assert!(first.status.success());
    let page = book.read("book/art.html");
    assert_eq!(page.matches("<figure").count(), 3);
    // Nothing to say on a build that changed nothing; `plan` and the build agree.
    let files = book.files();
    let again = book.build();
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("imagegen:"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(book.files(), files, "a warm build writes nothing");
    let rows = book.plan();
    assert!(rows.iter().all(|r| r["status"] == "cached"), "{rows:?}");
    let variants = rows
        .iter()
        .find(|r| r["file"] == "src/art.md" && r["line"] == 15)
        .unwrap();
    assert_eq!(
        variants["references"],
        serde_json::json!([
            "art/house-style.png",
            "#keeper",
            "../art/harbour-sketch.png"
        ])
    );
    let picked = book.imagegen(&["pick", "src/art.md:15", "3"]);
    assert!(picked.status.success());
    let after = book.build();
    assert!(after.status.success());
    assert_ne!(
        book.read("book/art.html"),
        page,
        "the third candidate is shown"
    );
    // The review page shows each candidate with the command that picks it.
    let out = book.root().join("review.html");
    let review = book.imagegen(&["review", "--out", out.to_str().unwrap()]);
    assert!(review.status.success());
    let html = book.read("review.html");
    assert!(html.contains("mdbook-imagegen pick src/art.md:15 2"));
    assert!(html.contains("<li class=\"shown\">"));
    assert!(html.contains("made from"));
}

#[test]
fn every_wrong_reference_fails_with_its_file_and_line() {
    let book = TestBook::example();
    book.edit("book.toml", |toml| format!(
            "{toml}\n[preprocessor.imagegen.providers.sd]\nkind = \"stability\"\nmodel = \"sd3.5-large\"\n"
        ));
    book.write("src/SUMMARY.md", "# Summary\n\n- [C](c/c.md)\n");
    book.write("src/c/notes.png", "not an image");
    std::fs::write(book.root().join("src/c/ok.png"), png(4, 4)).unwrap();
    let alpha = image::RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 0]));
    alpha.save(book.root().join("src/c/alpha.png")).unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), png(4, 4)).unwrap();
    let escape = format!(
        "{}{}",
        "../".repeat(book.root().components().count() + 2),
        outside.path().display().to_string().trim_start_matches('/')
    );
    let directive = |attrs: &str| format!("```image-prompt {attrs} alt=\"x\"\nA keeper\n```\n\n");
    let chapter = [
        "# C\n\n".to_owned(),                                        // line 1
        directive("reference=\"missing.png\""),                      // line 3
        directive(&format!("reference=\"{escape}\"")),               // line 7
        directive("reference=\"notes.png\""),                        // line 11
        directive("id=\"a\" reference=\"#b\""),                      // line 15
        directive("id=\"b\" reference=\"#a\""),                      // line 19
        directive("reference=\"#nobody\""),                          // line 23
        directive("id=\"sd\" provider=\"sd\" reference=\"ok.png\""), // line 27
        directive("reference=\"#a\""),                               // line 31
        directive("reference=\"#sd\""),                              // line 35
        directive("provider=\"sd\" edit=\"at night\""),              // line 39
        directive("edit=\"at night\" mask=\"ok.png\""),              // line 43
        directive("edit=\"at night\" mask=\"gone.png\""),            // line 47
        directive("edit=\"at night\" mask=\"alpha.png\""),           // line 51
    ]
    .concat();
    book.write("src/c/c.md", &chapter);

    let output = book.mdbook(&["build"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (line, wanted) in [
        (3, "reference `src/c/missing.png` does not exist"),
        (7, "leaves the book"),
        (11, "is not a PNG, JPEG or WebP image"),
        (
            15,
            "go round in a circle: #a (src/c/c.md:15) → #b (src/c/c.md:19) → #a",
        ),
        (19, "go round in a circle"),
        (23, "reference `#nobody` names no directive"),
        (27, "profile `sd` is of kind `stability`"),
        (31, "reference `#a` has no image"),
        (
            35,
            "reference `#sd` has no image: profile `sd` is of kind `stability`",
        ),
        // Before its first image is paid for.
        (39, "profile `sd` is of kind `stability`"),
        (43, "mask `ok.png` has no alpha channel"),
        (47, "mask `src/c/gone.png` does not exist"),
        (51, "`mask` goes to OpenAI's edits"),
    ] {
        let place = format!("src/c/c.md:{line}: ");
        let found = stderr
            .lines()
            .find(|l| l.contains(&place))
            .unwrap_or_else(|| panic!("no error at {place}: {stderr}"));
        assert!(found.contains(wanted), "{found}");
    }
    // `plan` shows the same, before anything is spent.
    let rows = book.plan();
    assert!(rows.iter().all(|r| r["status"] == "error"), "{rows:?}");
}

#[test]
fn a_build_with_a_house_style_sends_its_reference_first() {
    let book = TestBook::example();
    // The example book defines `[styles.house]` (with `art/house-style.png`); make it the
    // default.
    book.edit("book.toml", |toml| {
        toml.replace(
            "\nafter = [\"links\"]\n",
            "\nafter = [\"links\"]\nstyle = \"house\"\n",
        )
    });
    let output = build(&book);
    ok(&output);
    let rows = book.plan();
    for row in &rows {
        // `style="engraving"` replaces the house style; the others follow it.
        let engraving = row["file"] == "src/coast/lighthouses.md" && row["line"] == 15;
        let wanted: Vec<&str> = if engraving {
            vec![]
        } else {
            vec!["art/house-style.png"]
        };
        let got: Vec<&str> = row["references"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got, wanted, "{row}");
    }
}
