//! Models' lifecycles and rules in real builds: a retired model is never called and names its
//! replacement, an image it made earlier keeps serving, a deprecated one gets one warning, and a
//! setting the model cannot take fails when the book is read.

use std::process::Output;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TestBook;
use crate::support::books::lights;
use crate::support::fixtures::{failed, ok, png};

const KEY: &str = "sk-proj-MODELS-0a1b2c3d4e";

/// The example book with one profile, `main`, of `kind` and `model` at `base_url`, and
/// `settings` in its table.
fn book(base_url: &str, kind: &str, model: &str, settings: &str) -> TestBook {
    let main =
        format!("kind = \"{kind}\"\nmodel = \"{model}\"\nbase-url = \"{base_url}\"\n{settings}");
    lights("main", "", &[("main", &main)])
}

async fn build(book: &TestBook) -> Output {
    book.build_with(&[("OPENAI_API_KEY", KEY), ("GEMINI_API_KEY", KEY)])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_model_is_never_called_and_names_its_replacement() {
    let server = MockServer::start().await;
    let book = book(&format!("{}/v1", server.uri()), "openai", "gpt-image-1", "");
    let rows = book.plan();
    assert!(rows.iter().all(|r| r["status"] == "retired"), "{rows:#?}");
    let output = build(&book).await;
    let stderr = failed(&output);
    assert!(
        stderr.contains("src/README.md:")
            && stderr.contains("`gpt-image-1` was retired by OpenAI on 2026-10-23")
            && stderr.contains("use `gpt-image-2` instead")
            && stderr.contains("set `model` in `[preprocessor.imagegen.providers.main]`"),
        "{stderr}"
    );
    // A directive's own `model` is named as the thing to change.
    book.write(
        "src/README.md",
        "# Lights\n\n```image-prompt model=\"dall-e-3\" alt=\"A lighthouse\"\nA lighthouse at dusk\n```\n",
    );
    book.write("src/SUMMARY.md", "# Summary\n\n[Introduction](README.md)\n");
    let output = build(&book).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("src/README.md:3: `dall-e-3` was retired by OpenAI on 2026-05-12")
            && stderr.contains("change the directive's `model` attribute"),
        "{stderr}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// A teammate's cache committed before the model was retired: every image is served, with no
/// request, no warning and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_a_retired_model_made_keep_serving() {
    let server = MockServer::start().await;
    let book = book(&format!("{}/v1", server.uri()), "openai", "gpt-image-1", "");
    let rows = book.plan();
    assert!(!rows.is_empty());
    for row in &rows {
        let key = row["key"].as_str().unwrap();
        let (width, height) = row["size"]
            .as_str()
            .unwrap()
            .split_once('x')
            .map(|(w, h)| (w.parse::<u32>().unwrap(), h.parse::<u32>().unwrap()))
            .unwrap();
        let master = png(width / 16, height / 16);
        let hash = blake3::hash(&master).to_hex().to_string();
        let master_path = book
            .root()
            .join(format!(".imagegen/masters/{}/{hash}.png", &hash[..2]));
        std::fs::create_dir_all(master_path.parent().unwrap()).unwrap();
        std::fs::write(&master_path, &master).unwrap();
        let record = json!({
            "format": 2, "key": key, "provider": "openai", "model": "gpt-image-1",
            "prompt": row["prompt"], "size": row["size"], "quality": "medium",
            "attempts": 1, "master": hash, "media-type": "image/png",
            "width": width / 16, "height": height / 16, "bytes": master.len(),
            "generation-ms": 9000, "cost-usd": 0.042, "created-at": "2026-09-01T10:00:00.000Z"
        });
        let record_path = book.root().join(format!(
            ".imagegen/records/{}/{key}-{}-0badc0de.json",
            &key[..2],
            &hash[..16]
        ));
        std::fs::create_dir_all(record_path.parent().unwrap()).unwrap();
        std::fs::write(&record_path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    }
    assert!(book.plan().iter().all(|r| r["status"] == "cached"));
    let output = build(&book).await;
    let stderr = ok(&output);
    assert!(
        !stderr.contains("retired") && !stderr.contains("WARN"),
        "{stderr}"
    );
    assert!(book.read("book/index.html").contains("<picture"));
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprecated_model_is_called_with_one_warning() {
    let server = MockServer::start().await;
    let image = crate::support::fixtures::png_base64(64, 48);
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash-image:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{
                "content": { "role": "model", "parts": [{ "inlineData": { "mimeType": "image/png", "data": image } }] },
                "finishReason": "STOP"
            }],
            "modelVersion": "gemini-2.5-flash-image",
            "responseId": "resp-1"
        })))
        .mount(&server)
        .await;
    let book = book(
        &format!("{}/v1beta", server.uri()),
        "gemini",
        "gemini-2.5-flash-image",
        "",
    );
    let output = build(&book).await;
    let stderr = ok(&output);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("may be shut down by Google at any time from 2026-10-02"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("`gemini-3.1-flash-image`"), "{stderr}");
    let calls = server.received_requests().await.unwrap().len();
    assert!(calls >= 4);
    // Nothing to call, nothing to say.
    let again = build(&book).await;
    assert!(!String::from_utf8_lossy(&again.stderr).contains("shut down"));
    assert_eq!(server.received_requests().await.unwrap().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_a_model_cannot_take_fail_when_the_book_is_read() {
    let server = MockServer::start().await;
    let url = format!("{}/v1", server.uri());
    for (model, settings, key, says) in [
        (
            "gpt-image-2",
            "background = \"transparant\"",
            "providers.main.background",
            "`transparant` is not a choice; use `transparent`, `opaque`, `auto`",
        ),
        (
            "gpt-image-2",
            "background = \"transparent\"",
            "providers.main.background",
            "`gpt-image-2` cannot make a transparent background",
        ),
        (
            "gpt-image-2.6-flare",
            "background = \"transparent\"\noutput-format = \"jpeg\"",
            "providers.main.background",
            "needs `output-format = \"png\"` or `\"webp\"`",
        ),
        (
            "gpt-image-2.6-flare",
            "moderation = \"strict\"",
            "providers.main.moderation",
            "use `low`, `auto`",
        ),
        (
            "gpt-image-2",
            "quality = \"xhigh\"",
            "providers.main.quality",
            "does not take quality `xhigh`",
        ),
        (
            "gpt-image-2.5-flare",
            "complexity = \"low\"",
            "providers.main.complexity",
            "takes no `complexity` (only GPT Image 2.6 models do)",
        ),
        (
            "gpt-image-2",
            "output-format = \"svg\"",
            "providers.main.output-format",
            "cannot answer in SVG",
        ),
    ] {
        let book = book(&url, "openai", model, settings);
        let output = build(&book).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{settings}");
        assert!(
            stderr.contains(&format!("`preprocessor.imagegen.{key}`")) && stderr.contains(says),
            "{settings}: {stderr}"
        );
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// A prompt longer than the model reads fails at its directive's line, before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_longer_than_the_model_reads_fails_at_its_line() {
    let server = MockServer::start().await;
    let book = book(
        &format!("{}/v1", server.uri()),
        "openai",
        "gpt-image-2.6-flare",
        "",
    );
    let long = "a lighthouse at dusk ".repeat(1_600);
    book.write(
        "src/README.md",
        &format!("# Lights\n\n```image-prompt alt=\"A lighthouse\"\n{long}\n```\n"),
    );
    book.write("src/SUMMARY.md", "# Summary\n\n[Introduction](README.md)\n");
    let output = build(&book).await;
    let stderr = failed(&output);
    assert!(
        stderr.contains("src/README.md:3:")
            && stderr.contains("`gpt-image-2.6-flare` reads at most 32000"),
        "{stderr}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// `size = "auto"`: sent as `auto`, shown as `auto` by `plan`, and the figure takes the image's
/// own size, uncropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_auto_lets_the_model_choose_and_the_figure_takes_its_size() {
    let server = MockServer::start().await;
    let image = crate::support::fixtures::png_base64(96, 40);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(wiremock::matchers::body_partial_json(
            json!({ "size": "auto", "model": "gpt-image-2.6-flare" }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "data": [{ "b64_json": image }]
        })))
        .mount(&server)
        .await;
    let book = lights(
        "main",
        "size = \"auto\"",
        &[(
            "main",
            &format!(
                "kind = \"openai\"\nmodel = \"gpt-image-2.6-flare\"\nbase-url = \"{}/v1\"",
                server.uri()
            ),
        )],
    );
    book.write(
        "src/README.md",
        "# Lights\n\n```image-prompt alt=\"A lighthouse\"\nA lighthouse at dusk\n```\n",
    );
    book.write("src/SUMMARY.md", "# Summary\n\n[Introduction](README.md)\n");
    let rows = book.plan();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["size"] == "auto"),
        "{rows:#?}"
    );
    let output = build(&book).await;
    ok(&output);
    assert!(!server.received_requests().await.unwrap().is_empty());
    let intro = book.read("book/index.html");
    assert!(intro.contains("width=\"96\" height=\"40\""), "{intro}");
}
