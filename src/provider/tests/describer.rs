//! Describers against loopback servers that speak each API: OpenAI's Responses API, Gemini's
//! `generateContent`, an OpenAI-compatible chat completion, and a `command` program. The image
//! travels base64; failures (a refusal, an answer that is not JSON, an alt that is too long, a
//! rate limit) are handled like a generation's, and the key is never in a message.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::config::Config;
use crate::description::About;
use crate::provider::Failure;
use crate::provider::describer::{Described, Describer, Picture, describe};
use crate::test_support::env::{KEY, in_env};
use crate::test_support::images::{b64, png};
use crate::test_support::servers::{Auth, authed, requests};

const ANSWER: &str = r#"{"alt": "Two harbour lights on stone piers at night, one red, one green", "description": ""}"#;

fn book(kind: &str, model: Option<&str>, base: String) -> Config {
    let mut profile = json!({ "kind": kind, "base-url": base, "api-key-env": "TEST_KEY" });
    if let Some(model) = model {
        profile["model"] = model.into();
    }
    Config::from_table(Some(&json!({
        "alt-text": "describe",
        "retries": 2,
        "providers": { "vision": profile },
        "describe": { "profile": "vision" },
    })))
    .unwrap()
}

/// Describes a small PNG with the book's describer, on a blocking thread, recording waits.
async fn run(config: Config) -> (Result<Described, Failure>, Vec<Duration>) {
    in_env(config, "TEST_KEY", |config, env| {
        let with = config.describe.clone().unwrap();
        let describer = Describer {
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
            prompt: "Two harbour lights",
            caption: Some("Harbour lights"),
            chapter: Some("Harbours and tides"),
        };
        describe(&describer, &picture, &about, env)
    })
    .await
}

fn responses_ok(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "resp_1", "object": "response", "status": "completed", "error": null,
        "incomplete_details": null, "model": "gpt-6-luna-2026-09-22",
        "output": [
            { "type": "reasoning", "id": "rs_1", "summary": [] },
            { "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
              "content": [{ "type": "output_text", "text": text, "annotations": [] }] }
        ],
        "usage": { "input_tokens": 1200, "output_tokens": 80, "total_tokens": 1280 }
    }))
}

#[tokio::test]
async fn openai_sends_the_image_as_a_data_url_and_reads_the_json_answer() {
    let server = MockServer::start().await;
    authed("POST", "/v1/responses", Auth::Bearer)
        .and(body_partial_json(json!({
            "model": "gpt-6-luna",
            "input": [{ "role": "user", "content": [
                { "type": "input_text" },
                { "type": "input_image", "image_url": format!("data:image/png;base64,{}", b64(&png(8, 8))) },
            ] }],
            "text": { "format": { "type": "json_schema", "name": "alt_text", "strict": true } },
            "reasoning": { "effort": "low" },
            "store": false,
        })))
        .respond_with(responses_ok(ANSWER))
        .expect(1)
        .mount(&server)
        .await;
    let (result, _) = run(book("openai", None, format!("{}/v1", server.uri()))).await;
    let described = result.map_err(|f| f.message).unwrap();
    assert_eq!(
        described.text.alt,
        "Two harbour lights on stone piers at night, one red, one green"
    );
    assert_eq!(described.request_id.as_deref(), Some("resp_1"));
    assert_eq!(
        described.model_version.as_deref(),
        Some("gpt-6-luna-2026-09-22")
    );
    // 1200 in at $0.10/M, 80 out at $0.50/M.
    assert!(
        (described.cost_usd - 0.00016).abs() < 1e-9,
        "{}",
        described.cost_usd
    );
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    let question = sent["input"][0]["content"][0]["text"].as_str().unwrap();
    assert!(
        question.contains("Two harbour lights")
            && question.contains("Harbours and tides")
            && question.contains("Harbour lights")
    );
    assert_eq!(
        sent["text"]["format"]["schema"]["required"],
        json!(["alt", "description"])
    );
}

#[tokio::test]
async fn openai_refusals_and_bad_answers_fail_like_generations() {
    // A refusal: never retried.
    let server = MockServer::start().await;
    Mock::given(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_2", "status": "completed", "output": [
                { "type": "message", "content": [{ "type": "refusal", "refusal": "I can't help with that." }] }
            ]
        })))
        .mount(&server)
        .await;
    let (result, _) = run(book("openai", None, format!("{}/v1", server.uri()))).await;
    let failure = result.unwrap_err();
    assert!(
        failure
            .message
            .contains("refused to describe the image: I can't help with that."),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains("write the directive's `alt` yourself"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 1);

    // Not JSON, then an alt too long: asked once more, then a failure naming the problem.
    for (text, wanted) in [
        (
            "Sure! Here is the alt text: two lights.",
            "not the JSON asked for",
        ),
        (
            &*format!(r#"{{"alt": "{}", "description": ""}}"#, "x".repeat(140)),
            "140 characters, more than 125",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/v1/responses"))
            .respond_with(responses_ok(text))
            .mount(&server)
            .await;
        let (result, _) = run(book("openai", None, format!("{}/v1", server.uri()))).await;
        let failure = result.unwrap_err();
        assert!(
            failure.message.contains("returned no description"),
            "{}",
            failure.message
        );
        assert!(failure.message.contains(wanted), "{}", failure.message);
        assert_eq!(requests(&server).await, 2, "{text}");
    }
}

#[tokio::test]
async fn openai_rate_limits_are_waited_out_and_keys_never_leak() {
    // A rate limit is waited out as the server asks, then the answer is read.
    let server = MockServer::start().await;
    Mock::given(path("/v1/responses"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "1500")
                .set_body_json(json!({ "error": { "message": format!("Rate limit reached for key {KEY}"), "type": "requests", "code": "rate_limit_exceeded" } })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/responses"))
        .respond_with(responses_ok(ANSWER))
        .mount(&server)
        .await;
    let (result, waits) = run(book("openai", None, format!("{}/v1", server.uri()))).await;
    assert_eq!(result.unwrap().attempts, 2);
    assert_eq!(waits, vec![Duration::from_millis(1500)]);

    // A rejected key: the message names the variable and never holds the key.
    let server = MockServer::start().await;
    Mock::given(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({ "error": { "message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error", "code": "invalid_api_key" } })))
        .mount(&server)
        .await;
    let (result, _) = run(book("openai", None, format!("{}/v1", server.uri()))).await;
    let failure = result.unwrap_err();
    assert!(!failure.message.contains(KEY), "{}", failure.message);
    assert!(failure.message.contains("TEST_KEY"), "{}", failure.message);
}

#[tokio::test]
async fn gemini_sends_inline_data_with_a_json_schema_and_reads_the_text() {
    let server = MockServer::start().await;
    authed("POST", "/v1beta/models/gemini-3.5-flash-lite:generateContent", Auth::Google)
        .and(body_partial_json(json!({
            "contents": [{ "role": "user", "parts": [
                { "inline_data": { "mime_type": "image/png", "data": b64(&png(8, 8)) } },
                {},
            ] }],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": { "type": "object" },
                "thinkingConfig": { "thinkingLevel": "minimal" },
            },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{ "content": { "role": "model", "parts": [{ "text": ANSWER }] }, "finishReason": "STOP" }],
            "usageMetadata": { "promptTokenCount": 1000, "candidatesTokenCount": 60, "thoughtsTokenCount": 40 },
            "modelVersion": "gemini-3.5-flash-lite", "responseId": "g-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (result, _) = run(book("gemini", None, format!("{}/v1beta", server.uri()))).await;
    let described = result.map_err(|f| f.message).unwrap();
    assert!(described.text.alt.starts_with("Two harbour lights"));
    // 1000 in at $0.30/M, 100 out (thinking included) at $2.50/M.
    assert!(
        (described.cost_usd - 0.00055).abs() < 1e-9,
        "{}",
        described.cost_usd
    );

    // A safety stop is a refusal; a blocked prompt too.
    for answer in [
        json!({ "candidates": [{ "finishReason": "SAFETY" }] }),
        json!({ "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" } }),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/v1beta/models/gemini-3.5-flash-lite:generateContent"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&server)
            .await;
        let (result, _) = run(book("gemini", None, format!("{}/v1beta", server.uri()))).await;
        assert!(result.unwrap_err().message.contains("refused to describe"));
        assert_eq!(requests(&server).await, 1);
    }
}

#[tokio::test]
async fn openai_compatible_servers_get_a_chat_completion_with_an_image_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({
            "model": "qwen3-vl:8b",
            "messages": [
                { "role": "system" },
                { "role": "user", "content": [
                    { "type": "text" },
                    { "type": "image_url", "image_url": { "url": format!("data:image/png;base64,{}", b64(&png(8, 8))) } },
                ] },
            ],
            "response_format": { "type": "json_schema", "json_schema": { "name": "alt_text" } },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "model": "qwen3-vl:8b",
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": format!("```json\n{ANSWER}\n```") } }],
            "usage": { "prompt_tokens": 900, "completion_tokens": 50 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (result, _) = run(book(
        "openai-compatible",
        Some("qwen3-vl:8b"),
        format!("{}/v1", server.uri()),
    ))
    .await;
    let described = result.map_err(|f| f.message).unwrap();
    assert!(described.text.alt.starts_with("Two harbour lights"));
    assert_eq!(described.cost_usd, 0.0);

    // A refusal in the message, and a filtered answer, are refusals.
    for message in [
        json!({ "finish_reason": "stop", "message": { "role": "assistant", "content": null, "refusal": "No." } }),
        json!({ "finish_reason": "content_filter", "message": { "role": "assistant", "content": "" } }),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "choices": [message] })))
            .mount(&server)
            .await;
        let (result, _) = run(book(
            "openai-compatible",
            Some("llava"),
            format!("{}/v1", server.uri()),
        ))
        .await;
        assert!(result.unwrap_err().message.contains("refused to describe"));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_command_reads_the_request_and_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("describe.sh");
    // Checks the image file it was given is the PNG, then answers.
    std::fs::write(
        &script,
        "#!/bin/sh\nrequest=$(cat)\nimage=$(printf '%s' \"$request\" | sed 's/.*\"image\":\"\\([^\"]*\\)\".*/\\1/')\n[ \"$IMAGEGEN_TASK\" = describe ] || exit 3\nhead -c 4 \"$image\" | grep -q PNG || exit 4\nprintf '{\"alt\": \"A tiny test image\", \"description\": \"Eight by eight pixels.\"}'\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let config = Config::from_table(Some(&json!({
        "alt-text": "describe",
        "providers": { "vision": { "kind": "command", "model": "local-script", "command": [script] } },
        "describe": { "profile": "vision" },
    })))
    .unwrap();
    let (result, _) = run(config).await;
    let described = result.map_err(|f| f.message).unwrap();
    assert_eq!(described.text.alt, "A tiny test image");
    assert_eq!(described.text.description, "Eight by eight pixels.");
}
