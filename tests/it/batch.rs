//! `batch submit`, `status` and `collect` against loopback servers in the shape of OpenAI's and
//! Gemini's batch APIs: submitted on one checkout and collected on a clone, half the price,
//! a build that neither pays twice nor waits, refusals, expiry and stray lines reported with
//! their directive, bad batch files named, and the budget checked before anything is sent.

use std::process::Output;

use serde_json::Value;
use wiremock::MockServer;

use crate::support::TestBook;
use crate::support::batches::{self, Script};
use crate::support::books::{book_with, lights};
use crate::support::fixtures::{assert_no_key_of, failed, ok};

const KEY: &str = "sk-proj-BATCHLEAK-7c1e55a0";

fn key() -> [(&'static str, &'static str); 2] {
    [("OPENAI_API_KEY", KEY), ("GEMINI_API_KEY", KEY)]
}

async fn run(book: &TestBook, args: &[&str]) -> Output {
    book.imagegen_with(args, &key()).await
}

/// The batch files of a book.
fn batch_files(book: &TestBook) -> Vec<std::path::PathBuf> {
    let dir = book.root().join(".imagegen/batches");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn sync_calls(server_requests: &[wiremock::Request]) -> usize {
    server_requests
        .iter()
        .filter(|r| {
            r.url.path().starts_with("/v1/images/") || r.url.path().ends_with(":generateContent")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_batch_submitted_here_is_collected_on_a_clone_at_half_price() {
    let server = MockServer::start().await;
    let api = batches::openai(
        &server,
        Script {
            running_polls: 2,
            ..Script::default()
        },
    )
    .await;
    let book = book_with(&server.uri(), "");
    let plan = book.plan();
    let wanted: Vec<&str> = plan.iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(wanted.len() >= 3, "{plan:?}");
    // `plan` prices each image at the batch price beside the synchronous one.
    for row in &plan {
        let (cost, batch) = (
            row["cost"].as_f64().unwrap(),
            row["batch_cost"].as_f64().unwrap(),
        );
        assert!((batch - cost / 2.0).abs() < 1e-9, "{row}");
    }

    let submitted = run(&book, &["batch", "submit"]).await;
    let said = ok(&submitted);
    let stdout = String::from_utf8_lossy(&submitted.stdout);
    assert!(
        stdout.contains(&format!("sent {} images in 1 batch", wanted.len())),
        "{stdout}{said}"
    );
    let lines = api.lines();
    let mut sent: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    let mut asked = wanted.clone();
    sent.sort();
    asked.sort();
    assert_eq!(
        sent, asked,
        "each line's custom_id is its image's cache key"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["url"] == "/v1/images/generations" && l["body"]["model"] == "gpt-image-2")
    );
    let files = batch_files(&book);
    assert_eq!(files.len(), 1);
    let state: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(state["id"], "batch_1");
    assert!(
        state["lines"][0]["place"]
            .as_str()
            .unwrap()
            .starts_with("src/"),
        "{state}"
    );

    // `plan` agrees with the build: those images are in a batch, not to generate.
    let planned = book.plan();
    assert_eq!(
        planned.iter().filter(|r| r["status"] == "in-batch").count(),
        wanted.len()
    );
    for row in planned.iter().filter(|r| r["key"].is_string()) {
        assert_eq!(row["status"], "in-batch", "{row}");
        assert!(
            row["message"].as_str().unwrap().contains("batch collect"),
            "{row}"
        );
    }
    // Submitting again sends nothing: every key is in a pending batch.
    let again = run(&book, &["batch", "submit"]).await;
    ok(&again);
    assert_eq!(api.batches(), 1);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to send"));

    // A build while the batch runs does not generate its images (on-error = fail: it fails,
    // naming the batch and what to run).
    let building = book.build_with(&key()).await;
    let error = failed(&building);
    assert!(
        error.contains("openai batch batch_1") && error.contains("batch collect"),
        "{error}"
    );
    assert_eq!(sync_calls(&server.received_requests().await.unwrap()), 0);

    let status = run(&book, &["batch", "status"]).await;
    ok(&status);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("batch_1") && shown.contains("in progress"),
        "{shown}"
    );

    // A teammate who pulls collects: waits for the batch, stores every image at half price.
    let clone = book.committed_clone();
    // Its budget and `offline` are for generating: what was paid for is stored whatever they say.
    clone.edit("book.toml", |toml| {
        toml.replace(
            "retries = 0",
            "retries = 0\nmax-images-per-build = 1\noffline = true",
        )
    });
    let collected = run(&clone, &["batch", "collect", "--wait", "--poll", "10ms"]).await;
    let said = ok(&collected);
    let stdout = String::from_utf8_lossy(&collected.stdout);
    assert!(
        stdout.contains(&format!("stored {} images", wanted.len())),
        "{stdout}{said}"
    );
    assert!(
        batch_files(&clone).is_empty(),
        "a collected batch's file is removed"
    );
    let records = clone.records();
    assert_eq!(records.len(), wanted.len());
    for record in &records {
        assert_eq!(record["batch"], "batch_1");
        let cost = record["cost-usd"].as_f64().unwrap();
        let row = plan.iter().find(|r| r["key"] == record["key"]).unwrap();
        assert!(
            (cost - row["batch_cost"].as_f64().unwrap()).abs() < 1e-9,
            "{record}"
        );
    }
    // The clone builds with no provider call at all.
    let before = server.received_requests().await.unwrap().len();
    let built = clone.build_with(&key()).await;
    ok(&built);
    assert_eq!(server.received_requests().await.unwrap().len(), before);
    assert_no_key_of(
        KEY,
        clone.root(),
        &[&submitted, &collected, &built, &status],
    );
    assert_no_key_of(KEY, book.root(), &[&building]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_batch_yields_what_finished_and_reports_refusals_and_stray_lines() {
    let server = MockServer::start().await;
    let script = Script {
        expire_after: Some(3),
        stray_lines: true,
        ..Script::default()
    };
    let api = batches::openai(&server, script).await;
    let book = book_with(&server.uri(), "");
    book.edit("src/README.md", |text| {
        text.replace("calm sea below", "calm sea below, refuse")
    });
    let plan = book.plan();
    let total = plan.iter().filter(|r| r["key"].is_string()).count();
    ok(&run(&book, &["batch", "submit"]).await);
    let collected = run(&book, &["batch", "collect"]).await;
    let stderr = String::from_utf8_lossy(&collected.stderr).to_string();
    assert!(!collected.status.success(), "failed lines fail the command");
    let stdout = String::from_utf8_lossy(&collected.stdout);
    // Three lines answered, one of them refused; the rest never answered before expiry.
    assert!(stdout.contains("stored 2 images"), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{} failed", total - 2)),
        "{stdout}"
    );
    assert!(
        stderr.contains("src/README.md:6") && stderr.contains("rejected by the safety system"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no answer before the batch expired"),
        "{stderr}"
    );
    assert!(
        stderr.contains("never asked for") && stderr.contains("names no key"),
        "{stderr}"
    );
    assert!(batch_files(&book).is_empty());
    // The next submit sends exactly what failed.
    ok(&run(&book, &["batch", "submit"]).await);
    assert_eq!(api.batches(), 2);
    assert_eq!(api.lines().len(), total + (total - 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_batches_go_inline_when_small_and_through_a_file_when_not() {
    let server = MockServer::start().await;
    let api = batches::gemini(
        &server,
        Script {
            running_polls: 1,
            ..Script::default()
        },
    )
    .await;
    let profile = format!(
        "kind = \"gemini\"\nmodel = \"gemini-3.1-flash-lite-image\"\nbase-url = \"{}/v1beta\"",
        server.uri()
    );
    let book = lights("gemini", "", &[("gemini", &profile)]);
    let many: String = (0..18)
        .map(|n| {
            format!(
                "\n```image-prompt alt=\"Buoy {n}\"\nA red buoy number {n} on a grey sea\n```\n"
            )
        })
        .collect();
    book.edit("src/reference.md", |text| text + &many);
    let wanted = book.plan().iter().filter(|r| r["key"].is_string()).count();
    ok(&run(&book, &["batch", "submit"]).await);
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.url.path() == "/upload/v1beta/files"),
        "the big batch went as a file"
    );
    assert_eq!(api.lines().len(), wanted);
    let collected = run(&book, &["batch", "collect", "--wait", "--poll", "10ms"]).await;
    let stdout = String::from_utf8_lossy(&collected.stdout).to_string();
    ok(&collected);
    assert!(
        stdout.contains(&format!("stored {wanted} images")),
        "{stdout}"
    );
    assert!(
        book.records()
            .iter()
            .all(|r| r["batch"].as_str().unwrap().starts_with("batches/"))
    );

    // A small book goes inline.
    let small = lights("gemini", "", &[("gemini", &profile)]);
    let before = server.received_requests().await.unwrap().len();
    ok(&run(&small, &["batch", "submit"]).await);
    let requests = server.received_requests().await.unwrap();
    assert!(
        !requests[before..]
            .iter()
            .any(|r| r.url.path() == "/upload/v1beta/files")
    );
    ok(&run(&small, &["batch", "collect", "--wait", "--poll", "10ms"]).await);
    let built = small.build_with(&key()).await;
    ok(&built);
    assert_eq!(sync_calls(&server.received_requests().await.unwrap()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_and_the_model_table_are_checked_before_anything_is_sent() {
    let server = MockServer::start().await;
    let api = batches::openai(&server, Script::default()).await;
    let book = book_with(&server.uri(), "");
    let over = run(&book, &["batch", "submit", "--max-cost", "0.01"]).await;
    let error = failed(&over);
    assert!(
        error.contains("at the batch price") && error.contains("nothing was sent"),
        "{error}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    // A model the table does not know is left out, with the fix; `batch = true` sends it.
    let unknown = "kind = \"openai\"\nmodel = \"gpt-image-2.6-sunburst\"\nquality = \"medium\"";
    let with_url = |extra: &str| format!("{unknown}\nbase-url = \"{}/v1\"\n{extra}", server.uri());
    let book = lights("openai", "", &[("openai", &with_url(""))]);
    let left = run(&book, &["batch", "submit"]).await;
    let said = ok(&left);
    assert!(
        said.contains("left out") && said.contains("batch = true"),
        "{said}"
    );
    assert_eq!(api.batches(), 0);
    let book = lights("openai", "", &[("openai", &with_url("batch = true"))]);
    ok(&run(&book, &["batch", "submit"]).await);
    assert_eq!(api.batches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batch_files_and_unknown_batches_are_named_and_nothing_is_lost() {
    let server = MockServer::start().await;
    batches::openai(&server, Script::default()).await;
    let book = book_with(&server.uri(), "");
    ok(&run(&book, &["batch", "submit"]).await);
    let file = batch_files(&book).remove(0);
    let good = std::fs::read_to_string(&file).unwrap();

    // A profile the book no longer defines.
    std::fs::write(
        &file,
        good.replace("\"profile\": \"openai\"", "\"profile\": \"gone\""),
    )
    .unwrap();
    let error = failed(&run(&book, &["batch", "collect"]).await);
    assert!(
        error.contains("openai-batch_1.json") && error.contains("profile `gone`"),
        "{error}"
    );

    // A batch the provider does not know.
    let renamed = file.with_file_name("openai-batch_77.json");
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&renamed, good.replace("batch_1", "batch_77")).unwrap();
    let error = failed(&run(&book, &["batch", "collect"]).await);
    assert!(
        error.contains("batch_77") && error.contains("delete that file"),
        "{error}"
    );
    assert!(
        renamed.exists(),
        "nothing is removed when a batch cannot be read"
    );

    // A malformed file.
    std::fs::write(&renamed, "{\"format\": 1, \"id\": \"../../x\"").unwrap();
    let error = failed(&run(&book, &["batch", "status"]).await);
    assert!(
        error.contains("openai-batch_77.json") && error.contains("cannot be read"),
        "{error}"
    );
    // A build ignores it, with a warning, and nothing pending holds it back.
    let built = book.build_with(&[]).await;
    let said = String::from_utf8_lossy(&built.stderr);
    assert!(
        said.contains("ignoring") && said.contains("openai-batch_77.json"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_batch_sends_only_the_replacements_and_collect_replaces_them() {
    let server = MockServer::start().await;
    let api = batches::openai(&server, Script::default()).await;
    let book = book_with(&server.uri(), "");
    ok(&run(&book, &["batch", "submit"]).await);
    ok(&run(&book, &["batch", "collect"]).await);
    let first = book.records();
    let plan = book.plan();
    let readme: Vec<Value> = plan
        .iter()
        .filter(|r| r["file"] == "src/README.md")
        .map(|r| r["key"].clone())
        .collect();
    ok(&run(&book, &["regenerate", "src/README.md", "--batch"]).await);
    assert_eq!(api.batches(), 2);
    let second_lines = &api.lines()[first.len()..];
    assert_eq!(second_lines.len(), readme.len());
    let state: Value =
        serde_json::from_slice(&std::fs::read(&batch_files(&book)[0]).unwrap()).unwrap();
    assert_eq!(state["lines"][0]["again"], true);
    ok(&run(&book, &["batch", "collect"]).await);
    let after = book.records();
    // The replacement's record wins its key; the old one is retired (gc removes its master).
    assert_eq!(after.len(), first.len());
    let replaced = after.iter().find(|r| r["key"] == readme[0]).unwrap();
    assert_eq!(replaced["batch"], "batch_2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_leaves_out_an_image_another_machine_is_generating() {
    let server = MockServer::start().await;
    let api = batches::openai(&server, Script::default()).await;
    let shared = tempfile::tempdir().unwrap();
    let storage = format!(
        "\n[preprocessor.imagegen.storage]\nscheme = \"fs\"\nroot = \"{}\"\n",
        shared.path().display()
    );
    let book = book_with(&server.uri(), "");
    book.edit("book.toml", |toml| format!("{toml}{storage}"));
    let plan = book.plan();
    let keys: Vec<&str> = plan.iter().filter_map(|r| r["key"].as_str()).collect();
    let claimed = keys[0];
    let dir = shared.path().join("claims");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(claimed),
        format!(
            "{{\"key\": \"{claimed}\", \"host\": \"ci-7\", \"pid\": 4242, \"id\": \"00ff\", \"claimed_at\": \"2026-01-01T00:00:00Z\", \"expires_at\": \"2999-01-01T00:00:00Z\", \"ttl_seconds\": 180, \"renewals\": 0}}"
        ),
    )
    .unwrap();
    let submitted = run(&book, &["batch", "submit"]).await;
    let said = ok(&submitted);
    assert!(said.contains("another machine is generating it"), "{said}");
    let sent: Vec<Value> = api.lines();
    assert_eq!(sent.len(), keys.len() - 1);
    assert!(sent.iter().all(|l| l["custom_id"] != claimed));
}
