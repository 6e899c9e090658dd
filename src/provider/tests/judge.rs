//! Judges against loopback servers that speak each API: OpenAI's Responses API, Gemini's
//! `generateContent`, an OpenAI-compatible chat completion, and a `command` program. The judge
//! shares the describers' wire formats; what differs is what it is asked (its instructions,
//! question and schema) and how its answer is checked. Hostile answers are refused or capped,
//! and keys never reach a message.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::config::Config;
use crate::judgement::{About, Verdict};
use crate::provider::Failure;
use crate::provider::describer::{Answered, Describer, Picture, judge};
use crate::test_support::env::{KEY, in_env};
use crate::test_support::images::{b64, png};
use crate::test_support::servers::{Auth, authed, requests};

const ANSWER: &str = r#"{"checks": [
  {"question": "Is there a lighthouse?", "answer": "yes"},
  {"question": "Is the lighthouse red?", "answer": "no"},
  {"question": "Does the sign read \"Harbour\"?", "answer": "yes"}
], "defects": [{"kind": "artifact", "severity": "minor", "where": "the sky, top left"}],
"text_seen": "HARBOUR"}"#;

fn book(kind: &str, model: Option<&str>, base: String) -> Config {
    let mut profile = json!({ "kind": kind, "base-url": base, "api-key-env": "TEST_KEY" });
    if let Some(model) = model {
        profile["model"] = model.into();
    }
    Config::from_table(Some(&json!({
        "retries": 2,
        "providers": { "vision": profile },
        "judge": { "mode": "report", "profile": "vision" },
    })))
    .unwrap()
}

/// Judges a small PNG with the book's judge, on a blocking thread.
async fn run(config: Config) -> Result<Answered<Verdict>, Failure> {
    in_env(config, "TEST_KEY", |config, env| {
        let with = config.judge.clone().unwrap().with;
        let who = Describer {
            profile_name: &with.profile,
            profile: &config.profiles[&with.profile],
            model: &with.model,
            extra: &with.extra,
            price: with.price,
        };
        let image = png(8, 8);
        let picture = Picture {
            bytes: &image,
            media_type: "image/png",
            master: "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12",
        };
        let about = About {
            prompt: "A red lighthouse by a sign that says \"Harbour\"",
            style: Some("flat ink drawing"),
            caption: Some("The harbour"),
        };
        judge(&who, &picture, &about, env)
    })
    .await
    .0
}

fn responses_ok(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "resp_j1", "object": "response", "status": "completed", "error": null,
        "model": "gpt-6-luna-2026-09-22",
        "output": [
            { "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
              "content": [{ "type": "output_text", "text": text, "annotations": [] }] }
        ],
        "usage": { "input_tokens": 1400, "output_tokens": 600, "total_tokens": 2000 }
    }))
}

#[tokio::test]
async fn openai_asks_for_the_judgement_schema_and_reads_the_checks() {
    let server = MockServer::start().await;
    authed("POST", "/v1/responses", Auth::Bearer)
        .and(body_partial_json(json!({
            "input": [{ "role": "user", "content": [
                { "type": "input_text" },
                { "type": "input_image", "image_url": format!("data:image/png;base64,{}", b64(&png(8, 8))) },
            ] }],
            "text": { "format": { "type": "json_schema", "name": "judgement", "strict": true } },
            "store": false,
        })))
        .respond_with(responses_ok(ANSWER))
        .expect(1)
        .mount(&server)
        .await;
    let judged = run(book("openai", None, format!("{}/v1", server.uri())))
        .await
        .map_err(|f| f.message)
        .unwrap();
    assert_eq!(judged.text.checks.len(), 3);
    assert!(!judged.text.checks[1].yes);
    assert_eq!(judged.text.text_seen.as_deref(), Some("HARBOUR"));
    assert_eq!(judged.request_id.as_deref(), Some("resp_j1"));
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    let question = sent["input"][0]["content"][0]["text"].as_str().unwrap();
    assert!(question.contains("A red lighthouse") && question.contains("flat ink drawing"));
    assert!(
        sent["instructions"]
            .as_str()
            .unwrap()
            .contains("atomic facts")
    );
    // OpenAI's strict mode: every property required, no others, at every level.
    let schema = &sent["text"]["format"]["schema"];
    assert_eq!(
        schema["required"],
        json!(["checks", "defects", "text_seen"])
    );
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(
        schema["properties"]["checks"]["items"]["additionalProperties"],
        json!(false)
    );
}

#[tokio::test]
async fn hostile_answers_are_refused_capped_and_cleaned() {
    // Not the schema (an unknown defect kind): asked once more, then a failure.
    let server = MockServer::start().await;
    let bad = r#"{"checks": [{"question": "q", "answer": "yes"}], "defects": [{"kind": "<script>", "severity": "major", "where": ""}], "text_seen": null}"#;
    Mock::given(path("/v1/responses"))
        .respond_with(responses_ok(bad))
        .mount(&server)
        .await;
    let failure = run(book("openai", None, format!("{}/v1", server.uri())))
        .await
        .unwrap_err();
    assert!(
        failure.message.contains("returned no judgement"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 2);

    // Too many checks, long and dirty texts, a key: kept to 40, cut, cleaned, redacted.
    let checks: Vec<Value> = (0..90)
        .map(|i| json!({"question": format!("Is {i} there? {KEY} \u{1b}[31m{}", "x".repeat(500)), "answer": "yes"}))
        .collect();
    let text = json!({"checks": checks, "defects": [], "text_seen": format!("<img src=x onerror=alert(1)> {KEY}")}).to_string();
    let server = MockServer::start().await;
    Mock::given(path("/v1/responses"))
        .respond_with(responses_ok(&text))
        .mount(&server)
        .await;
    let judged = run(book("openai", None, format!("{}/v1", server.uri())))
        .await
        .unwrap();
    assert_eq!(judged.text.checks.len(), 40);
    for check in &judged.text.checks {
        assert!(check.question.chars().count() <= 300);
        assert!(!check.question.contains(KEY) && !check.question.contains('\u{1b}'));
    }
    let seen = judged.text.text_seen.unwrap();
    assert!(!seen.contains(KEY), "{seen}");

    // A refusal is never retried, and says it was the judge.
    let server = MockServer::start().await;
    Mock::given(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_2", "status": "completed", "output": [
                { "type": "message", "content": [{ "type": "refusal", "refusal": "No." }] }
            ]
        })))
        .mount(&server)
        .await;
    let failure = run(book("openai", None, format!("{}/v1", server.uri())))
        .await
        .unwrap_err();
    assert!(
        failure.message.contains("refused to judge the image"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn gemini_judges_with_a_response_schema() {
    let server = MockServer::start().await;
    authed(
        "POST",
        "/v1beta/models/gemini-3.5-flash-lite:generateContent",
        Auth::Google,
    )
    .and(body_partial_json(json!({
        "contents": [{ "role": "user", "parts": [
            { "inline_data": { "mime_type": "image/png", "data": b64(&png(8, 8)) } },
            {},
        ] }],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": { "required": ["checks", "defects", "text_seen"] },
        },
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "candidates": [{ "content": { "role": "model", "parts": [{ "text": ANSWER }] }, "finishReason": "STOP" }],
        "usageMetadata": { "promptTokenCount": 1000, "candidatesTokenCount": 400 },
        "modelVersion": "gemini-3.5-flash-lite", "responseId": "g-j1"
    })))
    .expect(1)
    .mount(&server)
    .await;
    let judged = run(book("gemini", None, format!("{}/v1beta", server.uri())))
        .await
        .map_err(|f| f.message)
        .unwrap();
    assert_eq!(judged.text.checks.len(), 3);
    assert!(judged.cost_usd > 0.0);
}

#[tokio::test]
async fn openai_compatible_servers_judge_through_chat_completions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({
            "model": "qwen3-vl:8b",
            "response_format": { "type": "json_schema", "json_schema": { "name": "judgement" } },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-j1", "model": "qwen3-vl:8b",
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": format!("```json\n{ANSWER}\n```") } }],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let judged = run(book(
        "openai-compatible",
        Some("qwen3-vl:8b"),
        format!("{}/v1", server.uri()),
    ))
    .await
    .map_err(|f| f.message)
    .unwrap();
    assert_eq!(judged.text.defects.len(), 1);
    assert_eq!(judged.cost_usd, 0.0);
}

#[cfg(unix)]
#[tokio::test]
async fn a_command_judges_with_the_task_and_prompt_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("judge.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nrequest=$(cat)\n[ \"$IMAGEGEN_TASK\" = judge ] || exit 3\nprintf '%s' \"$request\" | grep -q '\"task\":\"judge\"' || exit 4\nprintf '%s' \"$request\" | grep -q 'flat ink drawing' || exit 5\nprintf '{\"checks\": [{\"question\": \"Is there a lighthouse?\", \"answer\": \"yes\"}], \"defects\": [], \"text_seen\": null}'\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let config = Config::from_table(Some(&json!({
        "providers": { "vision": { "kind": "command", "model": "local-judge", "command": [script] } },
        "judge": { "mode": "gate", "profile": "vision" },
    })))
    .unwrap();
    let judged = run(config).await.map_err(|f| f.message).unwrap();
    assert_eq!(judged.text.checks.len(), 1);
}

/// The agreement of a real judge's verdicts with hand labels, on drawn fixtures whose truth is
/// known: a colour, a count, a relation and a word, each drawn right and wrong. Runs only with
/// `IMAGEGEN_LIVE_JUDGE=openai` (and `OPENAI_API_KEY`) or `=gemini` (and `GEMINI_API_KEY`), as
/// `IMAGEGEN_LIVE_JUDGE=gemini cargo test --lib live_judge -- --nocapture`; it prints each
/// verdict and the share that agrees with the labels. Tests never reach a provider otherwise.
#[test]
fn live_judge_agrees_with_hand_labels() {
    let Ok(kind) = std::env::var("IMAGEGEN_LIVE_JUDGE") else {
        return;
    };
    let config = Config::from_table(Some(&json!({
        "providers": { "vision": { "kind": kind } },
        "judge": { "mode": "report", "profile": "vision" },
    })))
    .unwrap();
    let with = config.judge.clone().unwrap().with;
    let who = Describer {
        profile_name: &with.profile,
        profile: &config.profiles[&with.profile],
        model: &with.model,
        extra: &with.extra,
        price: with.price,
    };
    let var = |name: &str| std::env::var(name).ok();
    let secrets = crate::outside::Secrets::of_book(config.key_vars(), &var);
    let sleep = |wait| std::thread::sleep(wait);
    let env = crate::provider::Env {
        config: &config,
        root: std::path::Path::new("."),
        sleep: &sleep,
        var: &var,
        secrets: &secrets,
    };
    let mut agree = 0;
    let fixtures = live::fixtures();
    for (prompt, image, pass) in &fixtures {
        let picture = Picture {
            bytes: image,
            media_type: "image/png",
            master: "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12",
        };
        let about = About {
            prompt,
            style: None,
            caption: None,
        };
        let answer = judge(&who, &picture, &about, &env)
            .map_err(|f| f.message)
            .unwrap();
        let mut defects = answer.text.defects.clone();
        defects.extend(crate::judgement::text_defects(prompt, &answer.text));
        let score = crate::judgement::score(&answer.text.checks, &defects);
        let verdict = score >= 0.8;
        agree += usize::from(verdict == *pass);
        eprintln!("{score:.2} {verdict:5} (label {pass:5})  {prompt}");
    }
    eprintln!(
        "{} of {} verdicts agree with the labels ({:.0} %), judge {}",
        agree,
        fixtures.len(),
        100.0 * agree as f64 / fixtures.len() as f64,
        with.model
    );
}

/// Drawn fixtures for the live agreement measurement.
mod live {
    use image::{Rgb, RgbImage};

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const RED: Rgb<u8> = Rgb([210, 30, 30]);
    const BLUE: Rgb<u8> = Rgb([30, 60, 210]);
    const GREEN: Rgb<u8> = Rgb([30, 160, 60]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    fn canvas() -> RgbImage {
        RgbImage::from_pixel(512, 512, WHITE)
    }

    fn square(image: &mut RgbImage, (x, y): (u32, u32), side: u32, colour: Rgb<u8>) {
        for py in y..y + side {
            for px in x..x + side {
                image.put_pixel(px, py, colour);
            }
        }
    }

    fn circle(image: &mut RgbImage, (cx, cy): (i64, i64), r: i64, colour: Rgb<u8>) {
        for py in cy - r..=cy + r {
            for px in cx - r..=cx + r {
                if (px - cx).pow(2) + (py - cy).pow(2) <= r * r {
                    image.put_pixel(px as u32, py as u32, colour);
                }
            }
        }
    }

    fn word(image: &mut RgbImage, text: &str) {
        use font8x8::UnicodeFonts as _;
        let scale = 7;
        let x0 = (512 - text.len() as u32 * 8 * scale) / 2;
        for (i, c) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(c).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        let x = x0 + (i as u32 * 8 + col) * scale;
                        square(image, (x, 228 + row as u32 * scale), scale, BLACK);
                    }
                }
            }
        }
    }

    fn png(image: RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    }

    /// (prompt, image, whether a person labels it a pass).
    pub(super) fn fixtures() -> Vec<(&'static str, Vec<u8>, bool)> {
        let squared = |colour| {
            let mut image = canvas();
            square(&mut image, (192, 192), 128, colour);
            png(image)
        };
        let circles = |n: i64| {
            let mut image = canvas();
            for i in 0..n {
                circle(&mut image, (96 + i * 160, 256), 56, BLACK);
            }
            png(image)
        };
        let stacked = |top, bottom| {
            let mut image = canvas();
            let mut draw = |colour, y: i64| {
                if colour == GREEN {
                    circle(&mut image, (256, y + 64), 64, GREEN);
                } else {
                    square(&mut image, (192, y as u32), 128, RED);
                }
            };
            draw(top, 40);
            draw(bottom, 300);
            png(image)
        };
        let written = |text| {
            let mut image = canvas();
            word(&mut image, text);
            png(image)
        };
        let colour = "A red square in the middle of a white background";
        let count = "Three black circles in a row on a white background";
        let relation = "A green circle above a red square, on white";
        let text = "A white sign with the word \"HARBOUR\" in black letters";
        vec![
            (colour, squared(RED), true),
            (colour, squared(BLUE), false),
            (count, circles(3), true),
            (count, circles(2), false),
            (relation, stacked(GREEN, RED), true),
            (relation, stacked(RED, GREEN), false),
            (text, written("HARBOUR"), true),
            (text, written("HRABOUR"), false),
        ]
    }

    #[test]
    fn the_fixtures_are_images() {
        for (_, bytes, _) in fixtures() {
            assert!(image::load_from_memory(&bytes).is_ok());
        }
    }
}
