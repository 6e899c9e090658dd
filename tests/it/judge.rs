//! The judge in real builds: a loopback server speaks OpenAI's Images API (the images) and
//! Responses API (the judge). Each image a model made is judged once, the judgements are kept
//! and shown by `plan`, `list`, `stats` and the review page, variants show their best-scored
//! candidate, `gate` tries again with the failed checks as corrections, and a judge that fails
//! never loses a figure.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TestBook;
use crate::support::fixtures::{failed, ok, png_base64, walk};

const KEY: &str = "sk-proj-JUDGECHECK-7c1e99d0a2";

/// A hostile question: markup, an mdBook include and a terminal escape.
const HOSTILE: &str = "<script>alert(1)</script> {{#include /etc/passwd}} \u{1b}[2J is it red?";

const CHAPTER: &str = "# Judged\n\nA lighthouse.\n\n```image-prompt alt=\"A red lighthouse\"\nA red lighthouse beside a sign that says \"Harbour\"\n```\n\nBoats.\n";

const VARIANTS: &str =
    "\n```image-prompt alt=\"Three boats\" variants=\"3\"\nThree fishing boats in a row\n```\n";

/// A book of one chapter (`src/judged.md`) made by the `openai` profile at the server, which
/// also judges (with its default vision model), one request at a time, and `settings` besides.
fn book(server: &MockServer, chapter: &str, settings: &str) -> TestBook {
    let settings = format!(
        "max-concurrency = 1\n{settings}\n[preprocessor.imagegen.judge]\nprofile = \"openai\"\n"
    );
    let book = crate::support::books::book_with(&server.uri(), &settings);
    book.write("src/SUMMARY.md", "# Summary\n\n- [Judged](judged.md)\n");
    book.write("src/judged.md", chapter);
    book
}

/// The judge's answer: a check per `(question, yes)`, a defect per `(kind, major)`, the text
/// it read.
fn judged(
    checks: &[(&str, bool)],
    defects: &[(&str, bool)],
    seen: Option<&str>,
) -> ResponseTemplate {
    let text = json!({
        "checks": checks.iter().map(|(q, yes)| json!({"question": q, "answer": if *yes { "yes" } else { "no" }})).collect::<Vec<_>>(),
        "defects": defects.iter().map(|(kind, major)| json!({"kind": kind, "severity": if *major { "major" } else { "minor" }, "where": "left"})).collect::<Vec<_>>(),
        "text_seen": seen,
    })
    .to_string();
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "resp_j", "status": "completed", "model": "gpt-6-luna",
        "output": [{ "type": "message", "content": [{ "type": "output_text", "text": text }] }],
        "usage": { "input_tokens": 1500, "output_tokens": 700 }
    }))
}

/// Answers the judge with `answers` in turn, then with `rest` for good.
async fn judge_answers(
    server: &MockServer,
    answers: Vec<ResponseTemplate>,
    rest: ResponseTemplate,
) {
    let count = answers.len() as u8;
    for (i, answer) in answers.into_iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(answer)
            .up_to_n_times(1)
            .with_priority(1 + i as u8)
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(rest)
        .with_priority(1 + count)
        .mount(server)
        .await;
}

/// How many images the servers made, across tests: each image is a little wider than the one
/// before, so no two share their bytes.
static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `n` images for every request, each of its own width; a request whose body holds
/// `special` gets a 90-pixel-wide one.
async fn mount_images(server: &MockServer, special: Option<&str>) {
    if let Some(special) = special {
        Mock::given(method("POST"))
            .and(path("/v1/images/generations"))
            .and(body_string_contains(special))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "created": 2, "data": [{ "b64_json": png_base64(90, 60) }]
            })))
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(move |request: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let n = body["n"].as_u64().unwrap_or(1) as u32;
            let from = MADE.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            let data: Vec<Value> = (from..from + n)
                .map(|i| json!({ "b64_json": png_base64(64 + 2 * i, 48) }))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({ "created": 1, "data": data }))
        })
        .with_priority(5)
        .mount(server)
        .await;
}

async fn build(book: &TestBook) -> Output {
    book.build_with(&[("OPENAI_API_KEY", KEY)]).await
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

/// Every kept record by cache key: its master and its JSON.
fn records(book: &TestBook) -> BTreeMap<String, Value> {
    walk(&book.root().join(".imagegen/records"))
        .into_iter()
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r))
        .collect()
}

/// Whether the chapter's page shows an image derived from `master`.
fn shows(book: &TestBook, master: &str) -> bool {
    book.read("book/judged.html").contains(&master[..16])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_judges_each_image_once_ranks_variants_and_a_warm_build_asks_nothing() {
    let server = MockServer::start().await;
    mount_images(&server, None).await;
    let pass = judged(&[("Is there a lighthouse?", true)], &[], None);
    judge_answers(
        &server,
        vec![
            // The lighthouse: the sign reads wrong, and one check fails.
            judged(
                &[("Is there a lighthouse?", true), (HOSTILE, false)],
                &[("artifact", false)],
                Some("HRABUOR"),
            ),
            judged(
                &[("Are there boats?", true), ("Are there three?", false)],
                &[],
                None,
            ),
            judged(
                &[("Are there boats?", true), ("Are there three?", true)],
                &[],
                None,
            ),
            judged(
                &[("Are there boats?", false), ("Are there three?", false)],
                &[],
                None,
            ),
        ],
        pass,
    )
    .await;
    let book = book(&server, &format!("{CHAPTER}{VARIANTS}"), "");
    book.write(
        "book.toml",
        &book.read("book.toml").replace(
            "[preprocessor.imagegen.judge]",
            "[preprocessor.imagegen.judge]\nmode = \"report\"",
        ),
    );
    // Before: every image is to judge, priced at the judge's token prices.
    let planned = book.plan();
    assert!(
        planned.iter().all(|r| r["verdict"] == "judge"),
        "{planned:?}"
    );
    assert!(planned[0]["judge_cost"].as_f64().unwrap() > 0.0);

    let first = build(&book).await;
    let stderr = ok(&first);
    assert_eq!(
        calls(&server, "/v1/responses").await,
        4,
        "one per image: {stderr}"
    );
    assert!(
        stderr.contains("imagegen: judged 4 images with `openai`"),
        "{stderr}"
    );
    let judgements = walk(&book.root().join(".imagegen/judgements"));
    assert_eq!(judgements.len(), 4);
    // The lighthouse: half its checks, and the sign's text read back wrong (a major defect).
    let records = records(&book);
    let scores: BTreeMap<String, f64> = judgements
        .iter()
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .map(|j| {
            (
                j["master"].as_str().unwrap().to_owned(),
                j["score"].as_f64().unwrap(),
            )
        })
        .collect();
    let planned = book.plan();
    let lighthouse = &planned[0];
    assert_eq!(lighthouse["verdict"], "review", "{lighthouse}");
    assert_eq!(
        lighthouse["score"], 0.25,
        "0.5 yes, less 0.25 for the misread sign"
    );
    // The boats show their best-scored candidate, and `plan` agrees with the build.
    let boats = &planned[1];
    let candidates: Vec<&str> = boats["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let master = |key: &str| records[key]["master"].as_str().unwrap().to_owned();
    let best = candidates
        .iter()
        .max_by(|a, b| scores[&master(a)].total_cmp(&scores[&master(b)]))
        .unwrap();
    assert_eq!(scores[&master(best)], 1.0);
    assert_eq!(boats["key"].as_str(), Some(*best), "{boats}");
    assert_eq!(boats["verdict"], "pass");
    assert!(shows(&book, &master(best)));
    for other in candidates.iter().filter(|c| *c != best) {
        assert!(
            !shows(&book, &master(other)),
            "{other} {} {}",
            master(other),
            book.read("book/judged.html")
        );
    }
    // The judge's words are never in the book's pages.
    let page = book.read("book/judged.html");
    assert!(
        !page.contains("alert(1)") && !page.contains("is it red"),
        "{page}"
    );

    // A warm build asks nothing, and says nothing about judging.
    let second = build(&book).await;
    assert!(!ok(&second).contains("judged"));
    assert_eq!(calls(&server, "/v1/responses").await, 4);

    // `list`, `stats` and the review page show the scores; the review page puts the figure to
    // review first, with its failed check and defects, escaped.
    let listed: Vec<Value> =
        serde_json::from_slice(&book.imagegen(&["list", "--json"]).stdout).unwrap();
    assert_eq!(listed.iter().filter(|i| i["score"].is_number()).count(), 4);
    let stats: Value = serde_json::from_slice(&book.imagegen(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["judgements"][0]["judgements"], 4, "{stats}");
    assert_eq!(stats["judgements"][0]["review"], 3, "{stats}");
    let out = book.root().join("review.html");
    let review = book.imagegen(&["review", "--out", out.to_str().unwrap()]);
    ok(&review);
    let html = book.read("review.html");
    let first_article = &html[html.find("<article").unwrap()..];
    assert!(
        first_article.starts_with("<article class=\"cached review\""),
        "{first_article:.300}"
    );
    assert!(
        html.contains("failed checks") && html.contains("major text"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    assert!(!html.contains("{{#include") && !html.contains('\u{1b}'));
    // `verify` finds nothing wrong; `gc` keeps every judgement of a kept image.
    ok(&book.imagegen(&["verify"]));
    ok(&book.imagegen(&["gc"]));
    assert_eq!(walk(&book.root().join(".imagegen/judgements")).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_tries_again_with_the_failed_checks_and_shows_the_best() {
    let server = MockServer::start().await;
    let corrections = "Make sure the answer to each of these is yes: Is the lighthouse red?";
    mount_images(&server, Some(corrections)).await;
    judge_answers(
        &server,
        vec![judged(
            &[
                ("Is there a lighthouse?", true),
                ("Is the lighthouse red?", false),
            ],
            &[],
            Some("Harbour"),
        )],
        judged(
            &[
                ("Is there a lighthouse?", true),
                ("Is the lighthouse red?", true),
            ],
            &[],
            Some("HARBOUR"),
        ),
    )
    .await;
    let book = book(&server, CHAPTER, "");
    book.write(
        "book.toml",
        &book.read("book.toml").replace(
            "[preprocessor.imagegen.judge]",
            "[preprocessor.imagegen.judge]\nmode = \"gate\"\nretries = 2",
        ),
    );
    // The worst case is priced: the judgement, and two new attempts each made and judged.
    let planned = book.plan();
    let image = planned[0]["cost"].as_f64().unwrap();
    let judge = planned[0]["judge_cost"].as_f64().unwrap();
    assert!(judge > 2.0 * image, "{}", planned[0]);

    let first = build(&book).await;
    ok(&first);
    assert_eq!(calls(&server, "/v1/images/generations").await, 2);
    assert_eq!(calls(&server, "/v1/responses").await, 2);
    let requests = server.received_requests().await.unwrap();
    let retry: Value = requests
        .iter()
        .filter(|r| r.url.path() == "/v1/images/generations")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .nth(1)
        .unwrap();
    assert!(
        retry["prompt"].as_str().unwrap().ends_with(corrections),
        "{retry}"
    );
    // The new attempt passed: the figure shows it, and keeps the first.
    let records = records(&book);
    assert_eq!(records.len(), 2);
    let (retry_key, retried) = records
        .iter()
        .find(|(_, r)| r["retry"] == 1)
        .expect("a record of the new attempt");
    assert_eq!(retried["width"], 90);
    assert!(shows(&book, retried["master"].as_str().unwrap()));
    let planned = book.plan();
    assert_eq!(planned[0]["key"].as_str(), Some(retry_key.as_str()));
    assert_eq!(planned[0]["status"], "cached");
    assert_eq!(planned[0]["verdict"], "pass");

    // A warm build makes and asks nothing; `gc` keeps both images.
    ok(&build(&book).await);
    assert_eq!(calls(&server, "/v1/images/generations").await, 2);
    assert_eq!(calls(&server, "/v1/responses").await, 2);
    ok(&book.imagegen(&["gc"]));
    assert_eq!(self::records(&book).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_stays_within_the_budget() {
    let server = MockServer::start().await;
    mount_images(&server, None).await;
    let low = judged(&[("Is there a lighthouse?", false)], &[], None);
    judge_answers(&server, vec![], low).await;
    let book = book(&server, CHAPTER, "max-images-per-build = 1");
    book.write(
        "book.toml",
        &book.read("book.toml").replace(
            "[preprocessor.imagegen.judge]",
            "[preprocessor.imagegen.judge]\nmode = \"gate\"\nretries = 3",
        ),
    );
    let output = build(&book).await;
    ok(&output);
    assert_eq!(calls(&server, "/v1/images/generations").await, 1);
    assert_eq!(records(&book).len(), 1);
    assert!(book.read("book/judged.html").contains("<figure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_judge_never_loses_a_figure() {
    let server = MockServer::start().await;
    mount_images(&server, None).await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": format!("bad request for key {KEY}"), "type": "invalid_request_error" }
        })))
        .mount(&server)
        .await;
    let with_mode = |book: &TestBook, rest: &str| {
        book.write(
            "book.toml",
            &book.read("book.toml").replace(
                "[preprocessor.imagegen.judge]",
                &format!("[preprocessor.imagegen.judge]\nmode = \"report\"{rest}"),
            ),
        );
    };
    // `on-error = "fail"` (the default): the build fails, naming the directive.
    let book = book(&server, CHAPTER, "");
    with_mode(&book, "");
    let output = build(&book).await;
    let stderr = failed(&output);
    assert!(stderr.contains("src/judged.md:5"), "{stderr}");
    assert!(stderr.contains("the judge failed"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
    // The image was kept all the same: the next build pays for no image.
    let images = calls(&server, "/v1/images/generations").await;
    assert_eq!(images, 1);

    // `on-error = "placeholder"`: the figure shows its image and the build warns.
    let book = self::book(&server, CHAPTER, "on-error = \"placeholder\"");
    with_mode(&book, "");
    let output = build(&book).await;
    let stderr = ok(&output);
    assert!(stderr.contains("the image is not judged"), "{stderr}");
    assert!(book.read("book/judged.html").contains("<picture"));
    // Offline, nothing is asked.
    let before = calls(&server, "/v1/responses").await;
    book.edit("book.toml", |t| {
        t.replace("on-error", "offline = true\non-error")
    });
    ok(&build(&book).await);
    assert_eq!(calls(&server, "/v1/responses").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_leaves_a_committed_pick_alone() {
    let server = MockServer::start().await;
    mount_images(&server, None).await;
    let low = judged(&[("Are there boats?", false)], &[], None);
    judge_answers(&server, vec![], low).await;
    let chapter =
        "# Judged\n\n```image-prompt alt=\"Boats\" variants=\"2\"\nTwo fishing boats\n```\n";
    let book = book(&server, chapter, "");
    let mode = |mode: &str| {
        book.edit("book.toml", |t| {
            let t = t.replace("mode = \"report\"\n", "");
            t.replace(
                "[preprocessor.imagegen.judge]",
                &format!("[preprocessor.imagegen.judge]\nmode = \"{mode}\""),
            )
        });
    };
    mode("report");
    ok(&build(&book).await);
    let made = calls(&server, "/v1/images/generations").await;
    ok(&book.imagegen(&["pick", "src/judged.md:3", "2"]));
    mode("gate");
    ok(&build(&book).await);
    assert_eq!(
        calls(&server, "/v1/images/generations").await,
        made,
        "a picked figure gets no new attempt"
    );
    let planned = book.plan();
    assert_eq!(planned[0]["picked"], 2, "{}", planned[0]);
}
