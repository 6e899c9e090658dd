//! Alt text written by a vision model, in real builds: a loopback server speaks OpenAI's Images
//! API (the images) and Responses API (the describer). The first build describes, the next
//! makes no request; `alt` lists and `--write` splices the wording into the Markdown; a
//! describer that refuses fails the build at the directive's file and line.

use std::process::Output;

use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TestBook;
use crate::support::fixtures::{failed, ok};

const KEY: &str = "sk-proj-ALTCHECK-9d2b7e11c4";

const TIDES: &str = "# Harbours and tides\n\nHarbour lights mark the entrance.\n\n```image-prompt caption=\"Harbour lights\"\nTwo small harbour lights at the end of stone piers at night, one red and one green\n```\n\nTides rise and fall twice a day.\n";

/// The example book with OpenAI's images, its `openai` profile also describing them (with
/// gpt-6-luna, its default describer), and a tides chapter whose directive has no alt.
fn book_with(base_url: &str, extra: &str) -> TestBook {
    let extra = format!("alt-text = \"describe\"\ndescribe = {{ profile = \"openai\" }}\n{extra}");
    let book = crate::support::books::book_with(base_url, &extra);
    book.write("src/coast/harbours/tides.md", TIDES);
    book
}

async fn mount_images(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "data": [{ "b64_json": crate::support::fixtures::png_base64(64, 48) }]
        })))
        .mount(server)
        .await;
}

fn described(alt: &str, description: &str) -> ResponseTemplate {
    let text = json!({ "alt": alt, "description": description }).to_string();
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "resp_7", "status": "completed", "model": "gpt-6-luna",
        "output": [{ "type": "message", "content": [{ "type": "output_text", "text": text }] }],
        "usage": { "input_tokens": 1500, "output_tokens": 100 }
    }))
}

async fn run(book: &TestBook, args: &[&str]) -> Output {
    let mut command = book.mdbook(args);
    command.env("OPENAI_API_KEY", KEY);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn calls(server: &MockServer, route: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == route)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn described_alt_is_kept_reused_listed_and_written_into_the_markdown() {
    let server = MockServer::start().await;
    mount_images(&server).await;
    // The described image is one of its own (the others share theirs), so `gc` can drop it.
    let own = crate::support::fixtures::png_base64(40, 30);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(body_string_contains("harbour lights"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 2, "data": [{ "b64_json": own }]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(described(
            "Red and green harbour lights on two stone piers at night",
            "Two stone piers reach into a dark harbour. The left pier ends in a red light, the right one in a green light.",
        ))
        .mount(&server)
        .await;
    let book = book_with(&server.uri(), "");
    // `plan` prices the description before anything is spent: a typical image at
    // gpt-6-luna's token prices (1,500 in at $0.10/M, 150 out at $0.50/M).
    let tides = |rows: Vec<serde_json::Value>| {
        rows.into_iter()
            .find(|r| r["file"] == "src/coast/harbours/tides.md")
            .unwrap()
    };
    let planned = tides(book.plan());
    assert_eq!(planned["describe"], "describe", "{planned}");
    assert!((planned["describe_cost"].as_f64().unwrap() - 0.000225).abs() < 1e-9);
    assert!(
        String::from_utf8_lossy(&book.imagegen(&["plan"]).stdout)
            .contains("1 to describe (estimated $0.0002)")
    );

    let first = run(&book, &["build"]).await;
    let stderr = ok(&first);
    assert_eq!(
        calls(&server, "/v1/responses").await,
        1,
        "only the directive without alt is described"
    );
    assert!(
        stderr.contains("imagegen: described 1 image with `openai` (gpt-6-luna)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 figure has no alt text from its author (written by the describer): src/coast/harbours/tides.md:5"),
        "{stderr}"
    );
    let page = book.read("book/coast/harbours/tides.html");
    assert!(page.contains("alt=\"Red and green harbour lights on two stone piers at night\" aria-describedby=\"imagegen-description-"), "{page}");
    // mdBook's renderer lays the block out on lines of its own; the elements are what matter.
    assert!(
        page.contains(
            "</picture><details class=\"imagegen-description\"><summary>Image description</summary>"
        ) && page.contains("<p id=\"imagegen-description-"),
        "{page}"
    );
    assert!(page.contains("The left pier ends in a red light"));
    let descriptions = crate::support::fixtures::walk(&book.root().join(".imagegen/descriptions"));
    assert_eq!(descriptions.len(), 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&descriptions[0]).unwrap()).unwrap();
    assert_eq!(record["model"], "gpt-6-luna");
    assert_eq!(record["request-id"], "resp_7");
    // 1500 in at $0.10/M, 100 out at $0.50/M.
    assert!(
        (record["cost-usd"].as_f64().unwrap() - 0.0002).abs() < 1e-9,
        "{record}"
    );

    assert_eq!(tides(book.plan())["describe"], "cached");

    // A warm build asks nothing and says only the standing warning.
    let (images, describes) = (calls(&server, "/v1/images/generations").await, 1);
    let second = run(&book, &["build"]).await;
    assert!(second.status.success());
    assert_eq!(calls(&server, "/v1/images/generations").await, images);
    assert_eq!(calls(&server, "/v1/responses").await, describes);

    // `stats` counts the description and its cost beside the images.
    let stats = book.imagegen(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["descriptions"][0]["model"], "gpt-6-luna");
    assert_eq!(stats["descriptions"][0]["descriptions"], 1);

    // `alt` lists it; `--write` puts exactly ` alt="…"` into the info string.
    let listed = book.imagegen(&["alt", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["file"], "src/coast/harbours/tides.md");
    assert_eq!(listed[0]["line"], 5);
    assert_eq!(listed[0]["from"], "described");
    let written = book.imagegen(&["alt", "--write"]);
    ok(&written);
    assert_eq!(
        book.read("src/coast/harbours/tides.md"),
        TIDES.replace(
            "```image-prompt caption=\"Harbour lights\"",
            "```image-prompt caption=\"Harbour lights\" alt=\"Red and green harbour lights on two stone piers at night\""
        )
    );

    // Now the author owns it: the same figure and description, no warning, no request.
    let third = run(&book, &["build"]).await;
    let stderr = ok(&third);
    assert!(!stderr.contains("imagegen:"), "{stderr}");
    assert_eq!(calls(&server, "/v1/responses").await, describes);
    let page = book.read("book/coast/harbours/tides.html");
    assert!(page.contains("alt=\"Red and green harbour lights on two stone piers at night\""));
    assert!(
        page.contains("aria-describedby=\"imagegen-description-")
            && page.contains("The left pier ends in a red light"),
        "the description written before stays with the author's alt: {page}"
    );

    // When no directive uses the image any more, `gc` removes its description with it.
    book.write(
        "src/coast/harbours/tides.md",
        "# Harbours and tides\n\n```image-prompt alt=\"A tide table\"\nA printed tide table\n```\n",
    );
    let fourth = run(&book, &["build"]).await;
    assert!(fourth.status.success());
    let gc = book.imagegen(&["gc"]);
    ok(&gc);
    assert!(crate::support::fixtures::walk(&book.root().join(".imagegen/descriptions")).is_empty());

    crate::support::fixtures::assert_no_key_of(
        KEY,
        book.root(),
        &[&first, &second, &third, &fourth],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describer_that_refuses_fails_the_directive_like_a_generation() {
    let server = MockServer::start().await;
    mount_images(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_8", "status": "completed",
            "output": [{ "type": "message", "content": [{ "type": "refusal", "refusal": "I can't describe this image." }] }]
        })))
        .mount(&server)
        .await;
    let book = book_with(&server.uri(), "");
    let output = run(&book, &["build"]).await;
    let stderr = failed(&output);
    assert!(
        stderr.contains("src/coast/harbours/tides.md:5")
            && stderr.contains("refused to describe the image: I can't describe this image."),
        "{stderr}"
    );
    assert!(!book.root().join(".imagegen/descriptions").exists());

    // With `on-error = "placeholder"` the figure keeps its derived alt, and a warning says why.
    let book = book_with(
        &server.uri(),
        "on-error = \"placeholder\"\nrequire-alt = false",
    );
    let output = run(&book, &["build"]).await;
    let stderr = ok(&output);
    assert!(stderr.contains("refused to describe the image"), "{stderr}");
    let page = book.read("book/coast/harbours/tides.html");
    assert!(page.contains("alt=\"Two small harbour lights at the end of stone piers at night, one red and one green\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_alt_fails_a_figure_with_no_alt_at_all() {
    let book = TestBook::example();
    let toml = book.read("book.toml").replace(
        "[preprocessor.imagegen]\n",
        "[preprocessor.imagegen]\nrequire-alt = true\n",
    );
    book.write("book.toml", &toml);
    book.write("src/coast/harbours/tides.md", TIDES);
    let output = run(&book, &["build"]).await;
    let stderr = failed(&output);
    assert!(
        stderr.contains("src/coast/harbours/tides.md:5")
            && stderr.contains("this figure has no alt text (`require-alt = true`)"),
        "{stderr}"
    );

    // `on-error = "placeholder"` keeps failed images from failing the build, not missing alt.
    book.write(
        "book.toml",
        &toml.replace(
            "require-alt = true\n",
            "require-alt = true\non-error = \"placeholder\"\n",
        ),
    );
    let output = run(&book, &["build"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("src/coast/harbours/tides.md:5"), "{stderr}");

    // An author's alt, even an empty one for a decorative image, satisfies it.
    book.write(
        "src/coast/harbours/tides.md",
        &TIDES.replace(
            "```image-prompt caption",
            "```image-prompt alt=\"\" caption",
        ),
    );
    let output = run(&book, &["build"]).await;
    ok(&output);
    assert!(
        book.read("book/coast/harbours/tides.html")
            .contains("alt=\"\" role=\"presentation\"")
    );
}

/// A describer whose alt and description hold mdBook directives: shown as text in the figure
/// (imagegen before or after mdBook's `links` preprocessor), and `alt --write` puts into the
/// chapter an alt that reads back the same, with no `{{` for `links` to expand on the next build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describer_never_writes_an_mdbook_directive_into_the_book() {
    let secret = "CONFIDENTIAL-5c1e-do-not-publish";
    let alt = "Piers {{#include ../../secret.txt}} {{#title Owned}}";
    for after_links in [false, true] {
        let server = MockServer::start().await;
        mount_images(&server).await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(described(
                alt,
                "Lights {{ #include ../../secret.txt }} here",
            ))
            .mount(&server)
            .await;
        let book = book_with(&server.uri(), "");
        book.write("secret.txt", secret);
        if !after_links {
            let toml = book.read("book.toml").replace("after = [\"links\"]\n", "");
            book.write("book.toml", &toml);
        }
        let check = |output: &Output| {
            let stderr = ok(output);
            assert!(!stderr.contains(secret), "{stderr}");
            for page in ["book/coast/harbours/tides.html", "book/print.html"] {
                let html = book.read(page);
                if let Some(at) = html.find(secret) {
                    panic!(
                        "{page} (after links: {after_links}): {}",
                        &html[at.saturating_sub(600)..(at + 100).min(html.len())]
                    );
                }
                assert!(!html.contains("<title>Owned"), "{page}");
                // Shown as the describer wrote it (mdBook 0.5 writes the page's character
                // references out as characters, after `links` has run).
                let shown = html
                    .find("alt=\"Piers")
                    .map(|at| &html[at..(at + 200).min(html.len())]);
                assert!(
                    html.contains("alt=\"Piers {{#include ../../secret.txt}} {{#title Owned}}\""),
                    "{page}: {shown:?}"
                );
            }
        };
        let first = run(&book, &["build"]).await;
        check(&first);
        let written = book.imagegen(&["alt", "--write"]);
        ok(&written);
        let chapter = book.read("src/coast/harbours/tides.md");
        assert!(
            chapter
                .contains(" alt=\"Piers \\{\\{#include ../../secret.txt}} \\{\\{#title Owned}}\""),
            "{chapter}"
        );
        assert!(!chapter.contains("{{"), "{chapter}");
        // The next build reads the author's alt back as the describer wrote it.
        let second = run(&book, &["build"]).await;
        check(&second);
    }
}
