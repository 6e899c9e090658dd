//! Real builds against a loopback server that speaks OpenAI's Images API: costs and a summary
//! on the first build, zero provider calls on the next, keys that never leak into anything a
//! build writes, and offline builds that list every missing image.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TestBook;
use crate::support::books::{book_with, lights};
use crate::support::fixtures::{assert_no_key_of, failed, ok, png_base64, walk};

/// A key that must never appear in anything a build writes.
const KEY: &str = "sk-proj-LEAKCHECK-4f9a1c2e7d";

fn png() -> String {
    png_base64(64, 48)
}

async fn build(book: &TestBook) -> Output {
    book.build_with(&[("OPENAI_API_KEY", KEY)]).await
}

/// Fails if the key appears in any file under the book (sources, cache, index, output) or in
/// anything a build printed.
fn assert_no_key(root: &Path, outputs: &[&Output]) {
    assert_no_key_of(KEY, root, outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_build_records_costs_then_rebuilds_with_no_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "data": [{ "b64_json": png() }]
        })))
        .mount(&server)
        .await;
    let book = book_with(&server.uri(), "");

    let first = build(&book).await;
    let stderr = ok(&first);
    let calls = server.received_requests().await.unwrap().len();
    assert!(calls >= 4, "{calls} calls");
    // Records are committed (not local), with their estimated cost: gpt-image-2 at medium
    // quality, priced at the size sent ($0.053 for 1024x1024, less for wider images).
    let records = std::fs::read_dir(book.root().join(".imagegen/records"))
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect::<Vec<serde_json::Value>>();
    assert_eq!(records.len(), calls);
    let mut total = 0.0;
    for record in &records {
        assert_eq!(record["provider"], "openai");
        assert_eq!(record["quality"], "medium");
        assert_eq!(record["model"], "gpt-image-2");
        let cost = record["cost-usd"].as_f64().unwrap();
        assert!((0.03..=0.06).contains(&cost), "{record}");
        // Sizes the model cannot take exactly are fitted, and the size sent is recorded.
        if let Some(sent) = record["sent-size"].as_str() {
            assert_ne!(record["size"], sent);
        }
        total += cost;
    }
    assert!(
        stderr.contains(&format!("imagegen: generated {calls} images, reused 0 in"))
            && stderr.contains(&format!("estimated cost ${total:.2}")),
        "{stderr}"
    );

    let second = build(&book).await;
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8_lossy(&second.stderr)
            .lines()
            .filter(|l| l.contains("imagegen:"))
            .count(),
        0,
        "a build that changed nothing says nothing"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), calls);
    assert_no_key(book.root(), &[&first, &second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_fails_with_file_line_and_never_leaks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": { "message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                       "type": "invalid_request_error", "param": null, "code": "invalid_api_key" }
        })))
        .mount(&server)
        .await;
    let book = book_with(&server.uri(), "");
    let output = build(&book).await;
    let stderr = failed(&output);
    assert!(
        stderr.contains("src/README.md:")
            && stderr
                .contains("refused the key: HTTP 401: Incorrect API key provided: [redacted].")
            && stderr.contains("check the key in OPENAI_API_KEY"),
        "{stderr}"
    );
    assert!(!book.root().join(".imagegen/records").exists());
    assert_no_key(book.root(), &[&output]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_builds_call_nothing_and_list_every_missing_image() {
    let server = MockServer::start().await;
    let book = book_with(&server.uri(), "");
    let mut command = book.mdbook(&["build"]);
    command.env("MDBOOK_PREPROCESSOR__IMAGEGEN__OFFLINE", "true");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = failed(&output);
    assert!(
        stderr.contains("image directives failed:")
            && stderr.contains("src/coast/lighthouses.md:")
            && stderr.contains("is not in the cache and `offline = true`")
            && stderr.contains("src/README.md:"),
        "{stderr}"
    );
    assert!(stderr.contains("the image for \""), "{stderr}");
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// One real image from each provider named in `MDBOOK_IMAGEGEN_LIVE`, with its key in its usual
/// variable (a few cents each). Every other test stays on 127.0.0.1.
#[test]
fn live_providers_when_asked() {
    // `MDBOOK_IMAGEGEN_LIVE=openai,bfl,recraft-vector,openrouter` (with each kind's key in its
    // usual variable) calls the real services: never in CI.
    let Ok(wanted) = std::env::var("MDBOOK_IMAGEGEN_LIVE") else {
        return;
    };
    for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let profile = match name {
            "openai" => "kind = \"openai\"\nquality = \"low\"",
            "bfl" => "kind = \"bfl\"\nmodel = \"flux-2-klein-4b\"",
            "recraft" => "kind = \"recraft\"",
            "recraft-vector" => "kind = \"recraft\"\nmodel = \"recraftv3_vector\"",
            "openrouter" => "kind = \"openrouter\"\nmodel = \"google/gemini-2.5-flash-image\"",
            other => panic!("no live profile `{other}`"),
        };
        let book = TestBook::example();
        book.write(
            "book.toml",
            &format!(
                "[book]\ntitle = \"Live\"\n\n[preprocessor.imagegen]\nprovider = \"live\"\n\n\
                 [preprocessor.imagegen.providers.live]\n{profile}\n"
            ),
        );
        book.write("src/SUMMARY.md", "# Summary\n\n[Introduction](README.md)\n");
        book.write(
            "src/README.md",
            "# Live\n\n```image-prompt alt=\"A lighthouse\" size=\"1024x768\"\nA small lighthouse on a rock, flat vector illustration\n```\n",
        );
        let output = book.build();
        let html = book.read("book/index.html");
        assert!(
            html.contains("<figure class=\"imagegen\""),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(book.root().join(".imagegen/records").is_dir(), "{name}");
    }
}

/// A vector answer with everything a sanitizer must remove.
const HOSTILE_SVG: &str = r##"<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1820 1024" onload="alert(1)"><script>alert(2)</script><rect width="1820" height="1024" fill="#1d3557" onclick="alert(3)"/><image href="https://evil.example/t.png"/><circle cx="910" cy="512" r="300" fill="#f1faee"/></svg>"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vector_book_shows_clean_svg_files_in_img_tags() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "credits": 80,
            "data": [{ "image_id": "a", "b64_json": base64::engine::general_purpose::STANDARD.encode(HOSTILE_SVG) }]
        })))
        .mount(&server)
        .await;
    let vector = format!(
        "kind = \"recraft\"\nmodel = \"recraftv3_vector\"\nbase-url = \"{}/v1\"\napi-key-env = \"OPENAI_API_KEY\"",
        server.uri()
    );
    let book = lights("vector", "", &[("vector", &vector)]);
    // `plan` prices each image at Recraft's vector price before any request.
    let rows = book.plan();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row["status"], "generate", "{row}");
        assert_eq!(row["cost"], 0.08, "{row}");
    }
    let first = build(&book).await;
    ok(&first);
    let calls = server.received_requests().await.unwrap().len();
    assert!(calls >= 4, "{calls} calls");
    // `stats` counts them under their kind and model, at the cost Recraft's answer gave.
    let stats = book.imagegen(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let models = stats["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{stats}");
    assert_eq!(models[0]["provider"], "recraft");
    assert_eq!(models[0]["model"], "recraftv3_vector");
    assert_eq!(models[0]["images"], calls);

    // Masters are stored as sanitized SVG.
    let masters: Vec<_> = walk(&book.root().join(".imagegen/masters"));
    assert!(!masters.is_empty() && masters.iter().all(|m| m.extension().unwrap() == "svg"));
    // Each figure is an <img> of an .svg file with the view box's size; never inline SVG.
    let html = std::fs::read_to_string(book.root().join("book/index.html")).unwrap();
    let main = crate::support::main_of(&html);
    assert!(main.contains(".svg\" alt=\""), "{main}");
    assert!(main.contains("width=\"1820\" height=\"1024\""), "{main}");
    assert!(
        !main.contains("<svg") && !main.contains("<picture>"),
        "{main}"
    );
    let svgs: Vec<_> = walk(&book.root().join("book"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".svg")
                && name.as_bytes().get(16) == Some(&b'-')
                && name[..16].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect();
    assert!(!svgs.is_empty());
    for svg in &svgs {
        let text = std::fs::read_to_string(svg).unwrap();
        for bad in ["<script", "onload", "onclick", "evil.example", "alert"] {
            assert!(!text.contains(bad), "`{bad}` in {}: {text}", svg.display());
        }
        assert!(
            text.contains("trainedAlgorithmicMedia"),
            "provenance in <metadata>"
        );
    }
    // A raster file rendered from it (the book's JPEG fallback: the drawing is opaque) serves
    // the renderers that cannot show SVG.
    assert!(
        walk(&book.root().join("book"))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "jpg"))
    );

    let second = build(&book).await;
    assert!(second.status.success());
    assert_eq!(server.received_requests().await.unwrap().len(), calls);
    assert_no_key(book.root(), &[&first, &second]);
}
