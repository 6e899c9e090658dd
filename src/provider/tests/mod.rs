//! Every provider kind against a loopback server that speaks its API: the exact request, then
//! real-shaped answers (success, rate limits, server errors, refusals, bad keys, timeouts,
//! garbage, truncated and oversized images).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::Size;
use crate::test_support::books::{command_book, config, request};
use crate::test_support::env::{KEY, Run, generate, offline, within};
use crate::test_support::images::{b64, png, png_header};
use crate::test_support::servers::{Auth, authed, field, profile_at, requests};

mod describer;
mod hosted;
mod judge;
mod kinds;
mod references;
mod schema;

/// Serves `answer` to every request for an OpenAI image.
async fn serve(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(path("/v1/images/generations"))
        .respond_with(answer)
        .mount(server)
        .await;
}

/// Serves `answer` to the next request for an OpenAI image only.
async fn serve_once(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(path("/v1/images/generations"))
        .respond_with(answer)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

/// Generates `prompt` with the profile `profile` and the book keys `global`.
async fn generate_with(profile: Value, global: Value, prompt: &str) -> Run {
    let config = config(profile, global);
    let request = request(&config, prompt);
    generate(config, request).await
}

/// Generates `prompt` with an `openai` profile at `server` and the book keys `global`.
async fn generate_openai(server: &MockServer, global: Value, prompt: &str) -> Run {
    generate_with(openai(server), global, prompt).await
}

fn openai(server: &MockServer) -> Value {
    profile_at("openai", server, "/v1")
}

fn openai_ok(image: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-request-id", "req_123")
        .set_body_json(json!({
            "created": 1_764_000_000,
            "data": [{ "b64_json": b64(image) }],
            "output_format": "png",
            "usage": { "input_tokens": 12, "output_tokens": 1056, "total_tokens": 1068 }
        }))
}

fn openai_error(status: u16, code: &str, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    }))
}

#[tokio::test]
async fn openai_sends_the_exact_request_and_reads_base64() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-image-2",
            "n": 1,
            "prompt": "A lighthouse\n\nAvoid: people.",
            "size": "1600x896",
            "quality": "high",
            "background": "opaque",
            "output_format": "png"
        })))
        .respond_with(openai_ok(&png(48, 32)))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = openai(&server);
    profile["quality"] = "high".into();
    profile["background"] = "opaque".into();
    profile["output-format"] = "png".into();
    let config = config(profile, json!({}));
    let mut request = request(&config, "A lighthouse");
    request.negative = Some("people".into());
    request.size = Size {
        width: 1600,
        height: 900,
    };
    let master = generate(config, request).await.master();
    assert_eq!((master.width, master.height), (48, 32));
    assert_eq!(master.format, ImageFormat::Png);
    // From the answer's usage: 12 input tokens at $5/M, 1056 output tokens at $30/M.
    assert!((master.cost_usd - 0.03174).abs() < 1e-9);
    assert_eq!(master.attempts, 1);
    assert_eq!(master.provenance.request_id.as_deref(), Some("req_123"));
    assert_eq!(master.provenance.sent_size.as_deref(), Some("1600x896"));
}

/// GPT Image 2.6: `complexity` as set, `size = "auto"` sent as `auto`, and an SVG answer
/// (`output_format = "svg"`) kept as a sanitized vector master of its own size.
#[tokio::test]
async fn gpt_image_2_6_takes_complexity_and_auto_and_answers_in_svg() {
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1536 1024" onload="alert(1)"><rect width="1536" height="1024" fill="#1d3557"/></svg>"##;
    let server = MockServer::start().await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .and(body_json(json!({
            "model": "gpt-image-2.6-flare",
            "n": 1,
            "prompt": "A lighthouse",
            "size": "auto",
            "output_format": "svg",
            "complexity": "low"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_764_000_000,
            "data": [{ "b64_json": b64(svg.as_bytes()) }],
            "usage": { "input_tokens": 12, "output_tokens": 400, "total_tokens": 412 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = openai(&server);
    profile["model"] = "gpt-image-2.6-flare".into();
    profile["output-format"] = "svg".into();
    profile["complexity"] = "low".into();
    let config = config(profile, json!({ "size": "auto" }));
    let mut request = request(&config, "A lighthouse");
    request.auto_size = true;
    // An SVG is one image a request, whatever `n` a directive's variants would ask.
    let (body, _) = openai::body(&request, &config.profiles["p"], 3);
    assert_eq!(body["n"], 1);
    let master = generate(config, request).await.master();
    assert_eq!(master.format, ImageFormat::Svg);
    assert_eq!((master.width, master.height), (1536, 1024));
    assert_eq!(master.provenance.sent_size.as_deref(), Some("auto"));
    assert!(!String::from_utf8_lossy(&master.bytes).contains("onload"));
}

#[tokio::test]
async fn openai_honours_retry_after_on_429_then_succeeds() {
    let server = MockServer::start().await;
    serve_once(
        &server,
        openai_error(
            429,
            "rate_limit_exceeded",
            "requests",
            "Rate limit reached for images per minute (IPM): Limit 5. Please try again in 12s.",
        )
        .insert_header("retry-after", "12"),
    )
    .await;
    serve(&server, openai_ok(&png(8, 8))).await;
    let run = generate_openai(&server, json!({}), "A lighthouse").await;
    assert_eq!(run.waits, [Duration::from_secs(12)]);
    assert_eq!(run.master().attempts, 2);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn retry_after_ms_wins_and_long_waits_give_up() {
    let server = MockServer::start().await;
    serve_once(
        &server,
        openai_error(429, "rate_limit_exceeded", "requests", "slow down")
            .insert_header("retry-after-ms", "250")
            .insert_header("retry-after", "1"),
    )
    .await;
    serve(
        &server,
        openai_error(429, "rate_limit_exceeded", "requests", "slow down")
            .insert_header("retry-after", "120"),
    )
    .await;
    let run = generate_openai(&server, json!({ "max-retry-wait": "60s" }), "A lighthouse").await;
    assert_eq!(run.waits, [Duration::from_millis(250)]);
    let failure = run.failure();
    assert!(failure.may_fall_back);
    assert!(
        failure
            .message
            .contains("it asks to wait 2m, more than `max-retry-wait` = 1m"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = MockServer::start().await;
    serve_once(
        &server,
        openai_error(
            500,
            "server_error",
            "server_error",
            "The server had an error",
        ),
    )
    .await;
    serve_once(
        &server,
        openai_error(
            503,
            "server_is_overloaded",
            "service_unavailable_error",
            "overloaded",
        ),
    )
    .await;
    serve(&server, openai_ok(&png(8, 8))).await;
    let run = generate_openai(&server, json!({}), "A lighthouse").await;
    assert_eq!(run.waits.len(), 2);
    assert!(
        run.waits[0] > Duration::from_millis(370) && run.waits[0] <= Duration::from_millis(500)
    );
    assert!(
        run.waits[1] > Duration::from_millis(740) && run.waits[1] <= Duration::from_millis(1000)
    );
    assert_eq!(run.master().attempts, 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    serve(&server, openai_error(502, "", "", "bad gateway")).await;
    let failure = generate_openai(&server, json!({ "retries": 2 }), "A lighthouse")
        .await
        .failure();
    assert!(failure.may_fall_back);
    assert!(
        failure.message.ends_with("(gave up after 3 attempts)"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn refusals_are_permanent_and_quote_the_provider() {
    let server = MockServer::start().await;
    serve(
        &server,
        openai_error(
            400,
            "moderation_blocked",
            "image_generation_user_error",
            "Your request was rejected by the safety system. safety_violations=[violence].",
        ),
    )
    .await;
    let run = generate_openai(&server, json!({}), "A battle").await;
    assert!(run.waits.is_empty());
    let failure = run.failure();
    assert!(!failure.may_fall_back);
    assert_eq!(
        failure.message,
        "`p` (openai gpt-image-2) refused the prompt: HTTP 400: Your request was rejected by the safety system. safety_violations=[violence]. [moderation_blocked] (reword the prompt; refused prompts are never cached and never retried)"
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn quota_exhaustion_is_not_retried() {
    let server = MockServer::start().await;
    serve(
        &server,
        openai_error(
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
    )
    .await;
    let failure = generate_openai(&server, json!({}), "A lighthouse")
        .await
        .failure();
    assert!(!failure.may_fall_back);
    assert!(
        failure.message.contains("is out of quota"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_bad_key_names_the_variable_and_never_shows_the_key() {
    let server = MockServer::start().await;
    // A server that echoes the key back in full.
    serve(
        &server,
        openai_error(
            401,
            "invalid_api_key",
            "invalid_request_error",
            &format!("Incorrect API key provided: {KEY}."),
        ),
    )
    .await;
    let failure = generate_openai(&server, json!({}), "A lighthouse")
        .await
        .failure();
    assert!(!failure.may_fall_back);
    assert!(!failure.message.contains(KEY), "{}", failure.message);
    assert!(
        failure.message.contains("[redacted]") && failure.message.contains("TEST_KEY"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_missing_key_names_the_variable_and_the_profile() {
    let config = config(json!({ "kind": "openai" }), json!({}));
    let request = request(&config, "A lighthouse");
    let failure = generate(config, request).await.failure();
    assert!(
        failure.may_fall_back,
        "a profile without its key lets the fallbacks try"
    );
    assert_eq!(
        failure.message,
        "profile `p`: needs an API key in the environment variable OPENAI_API_KEY, which is not set; export it before building (keys are read only from the environment, never from `book.toml`)"
    );
}

#[tokio::test]
async fn slow_answers_time_out() {
    let server = MockServer::start().await;
    serve(
        &server,
        openai_ok(&png(8, 8)).set_delay(Duration::from_secs(3)),
    )
    .await;
    let run = generate_openai(
        &server,
        json!({ "timeout": "300ms", "retries": 1 }),
        "A lighthouse",
    )
    .await;
    assert_eq!(run.waits.len(), 1);
    let failure = run.failure();
    assert!(
        failure
            .message
            .contains("no complete answer from http://127.0.0.1:")
            && failure.message.contains("within 300ms"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn garbage_non_images_truncation_and_giants_are_never_accepted() {
    let giant = png_header(10_000, 10_000);
    let full = b64(&png(64, 64));
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (
            ResponseTemplate::new(200)
                .set_body_string("<html>Bad gateway</html>")
                .insert_header("content-type", "text/html"),
            "is not the JSON expected: <html>Bad gateway</html>",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": [{ "b64_json": b64(b"hello, world") }] })),
            "12 bytes that are not an image",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({ "data": [{ "b64_json": &full[..full.len() / 2 / 4 * 4] }] }),
            ),
            "a damaged or truncated image",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": [{ "b64_json": &full[..full.len() - 3] }] })),
            "damaged base64 image data",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": [{ "b64_json": b64(&giant) }] })),
            "an image of 10000x10000 pixels; sides must be 1 to 8192",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({ "created": 1, "data": [] })),
            "the answer holds no image",
        ),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/v1/images/generations"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let failure = generate_with(openai(&server), json!({}), "A lighthouse")
            .await
            .failure();
        assert!(failure.message.contains(expected), "{}", failure.message);
        assert!(!failure.may_fall_back);
        assert_eq!(requests(&server).await, 1, "{expected}");
    }
}

#[tokio::test]
async fn compatible_servers_get_no_auth_and_may_answer_with_a_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(|r: &wiremock::Request| !r.headers.contains_key("authorization"))
        .and(body_json(json!({
            "model": "sd-turbo", "n": 1, "prompt": "A lighthouse", "size": "768x512",
            "response_format": "b64_json", "negative_prompt": "fog", "seed": 42, "steps": 4,
            "cfg_scale": 1.5
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "url": format!("{}/generated-images/a.png?sig=x", server.uri()) }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/generated-images/a.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(png(24, 16))
                .insert_header("content-type", "image/png"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = config(
        json!({ "kind": "openai-compatible", "model": "sd-turbo", "base-url": format!("{}/v1", server.uri()),
                "steps": 4, "extra": { "cfg_scale": 1.5 } }),
        json!({}),
    );
    let mut request = request(&config, "A lighthouse");
    request.negative = Some("fog".into());
    request.seed = Some(42);
    request.size = Size {
        width: 768,
        height: 512,
    };
    let master = generate(config, request).await.master();
    assert_eq!((master.width, master.height), (24, 16));
    assert_eq!(master.cost_usd, 0.0);
}

/// A compatible server whose answer is an image URL on itself, `/images/a.png`, which answers
/// `status` with `location`; `/images/final.png` is a 7x7 image. Its outcome.
async fn generate_via_redirect(status: u16, location: &str) -> Run {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "url": format!("{}/images/a.png", server.uri()) }]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/images/a.png"))
        .respond_with(ResponseTemplate::new(status).insert_header("location", location))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/images/final.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(png(7, 7)))
        .mount(&server)
        .await;
    let config = config(
        json!({ "kind": "openai-compatible", "model": "sd-turbo", "base-url": format!("{}/v1", server.uri()) }),
        json!({}),
    );
    let request = request(&config, "A lighthouse");
    generate(config, request).await
}

/// An image URL on the configured server that redirects: followed on the same scheme, host and
/// port; refused when it leads to another port or host (another service on the machine).
#[tokio::test]
async fn image_urls_are_redirected_only_within_their_own_server() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(png(5, 5)))
        .expect(0)
        .mount(&elsewhere)
        .await;
    for (location, expected) in [
        (format!("{}/other.png", elsewhere.uri()), None),
        ("//127.0.0.1:9/x.png".to_owned(), None),
        ("/images/final.png".to_owned(), Some(7)),
        ("final.png".to_owned(), Some(7)),
    ] {
        let outcome = generate_via_redirect(302, &location).await;
        match expected {
            Some(width) => assert_eq!(outcome.master().width, width, "{location}"),
            None => {
                let failure = outcome.failure();
                assert!(
                    failure.message.contains("redirected away from its server"),
                    "{location}: {}",
                    failure.message
                );
            }
        }
    }
    // A redirect loop on the server itself ends.
    let failure = generate_via_redirect(301, "/images/a.png").await.failure();
    assert!(
        failure.message.contains("too many redirects"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn compatible_servers_may_answer_like_ollama() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({ "image": b64(&png(8, 8)), "extra": true })),
    )
    .await;
    let config = config(
        json!({ "kind": "openai-compatible", "model": "x/z-image-turbo", "base-url": format!("{}/v1", server.uri()) }),
        json!({}),
    );
    let request = request(&config, "A lighthouse");
    assert_eq!(generate(config, request).await.master().width, 8);
}

fn gemini(server: &MockServer) -> Value {
    profile_at("gemini", server, "/v1beta")
}

fn gemini_ok(parts: Value, finish: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": finish, "index": 0 }],
        "modelVersion": "gemini-3.1-flash-image-001",
        "responseId": "resp-1",
        "usageMetadata": { "promptTokenCount": 9, "candidatesTokenCount": 1120, "thoughtsTokenCount": 200 }
    }))
}

fn gemini_error(status: u16, code: &str, message: &str, details: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "code": status, "message": message, "status": code, "details": details }
    }))
}

#[tokio::test]
async fn gemini_sends_modalities_ratio_and_seed_and_skips_thoughts() {
    let server = MockServer::start().await;
    authed(
        "POST",
        "/v1beta/models/gemini-3.1-flash-image:generateContent",
        Auth::Google,
    )
    .and(body_partial_json(json!({
        "contents": [{ "parts": [{ "text": "A lighthouse" }] }],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": { "aspectRatio": "16:9", "imageSize": "2K" },
            "seed": 7
        }
    })))
    .respond_with(gemini_ok(
        json!([
            { "text": "Planning the composition", "thought": true },
            { "inlineData": { "mimeType": "image/png", "data": b64(&png(4, 4)) }, "thought": true },
            { "text": "Here is your lighthouse." },
            { "inlineData": { "mimeType": "image/png", "data": b64(&png(32, 18)) } }
        ]),
        "STOP",
    ))
    .expect(1)
    .mount(&server)
    .await;
    let config = config(gemini(&server), json!({}));
    let mut request = request(&config, "A lighthouse");
    request.seed = Some(7);
    request.size = Size {
        width: 1920,
        height: 1080,
    };
    let master = generate(config, request).await.master();
    assert_eq!((master.width, master.height), (32, 18));
    assert_eq!(
        master.provenance.model_version.as_deref(),
        Some("gemini-3.1-flash-image-001")
    );
    assert!((master.cost_usd - 0.1008).abs() < 1e-9);
}

#[tokio::test]
async fn gemini_refusals_arrive_as_200_and_are_never_retried() {
    let cases = [
        (
            gemini_ok(json!([]), "IMAGE_SAFETY"),
            "refused the prompt: no image, finish reason IMAGE_SAFETY",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({ "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" } }),
            ),
            "refused the prompt: the prompt was blocked (PROHIBITED_CONTENT)",
        ),
        (
            gemini_ok(json!([{ "text": "I can't draw that." }]), "STOP"),
            "refused the prompt: the model answered with text instead of an image: \"I can't draw that.\"",
        ),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let run = generate_with(gemini(&server), json!({}), "A lighthouse").await;
        assert!(run.waits.is_empty());
        let failure = run.failure();
        assert!(failure.message.contains(expected), "{}", failure.message);
        assert_eq!(requests(&server).await, 1);
    }
}

#[tokio::test]
async fn gemini_no_image_is_retried_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(gemini_ok(json!([]), "NO_IMAGE"))
        .mount(&server)
        .await;
    let failure = generate_with(gemini(&server), json!({}), "A lighthouse")
        .await
        .failure();
    assert!(
        failure
            .message
            .contains("returned no image: no image, finish reason NO_IMAGE"),
        "{}",
        failure.message
    );
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn gemini_rate_limits_wait_for_retry_info() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota.",
            json!([
                { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                  "violations": [{ "quotaMetric": "generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" }] },
                { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "40s" }
            ]),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(gemini_ok(
            json!([{ "inlineData": { "mimeType": "image/png", "data": b64(&png(8, 8)) } }]),
            "STOP",
        ))
        .mount(&server)
        .await;
    let run = generate_with(gemini(&server), json!({}), "A lighthouse").await;
    assert_eq!(run.waits, [Duration::from_secs(40)]);
    run.master();
}

#[tokio::test]
async fn gemini_daily_quota_and_bad_keys_are_permanent() {
    let cases = [
        (
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded",
                json!([{ "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                     "violations": [{ "quotaId": "GenerateRequestsPerDayPerProjectPerModel" }] },
                   { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s" }]),
            ),
            "is out of quota",
        ),
        (
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                json!([{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID" }]),
            ),
            "refused the key: HTTP 400: API key not valid. Please pass a valid API key. [INVALID_ARGUMENT] (check the key in TEST_KEY",
        ),
        (
            gemini_error(
                404,
                "NOT_FOUND",
                "models/imagen-3 is not found for API version v1beta",
                json!([]),
            ),
            "rejected the request: HTTP 404: models/imagen-3 is not found",
        ),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let failure = generate_with(gemini(&server), json!({}), "A lighthouse")
            .await
            .failure();
        assert!(failure.message.contains(expected), "{}", failure.message);
        assert_eq!(requests(&server).await, 1);
    }
}

fn stability(server: &MockServer, model: &str) -> Value {
    json!({ "kind": "stability", "model": model, "base-url": server.uri(), "api-key-env": "TEST_KEY",
            "style-preset": "line-art", "cfg-scale": 4 })
}

#[tokio::test]
async fn stability_sends_a_multipart_form_and_reads_image_headers() {
    let server = MockServer::start().await;
    authed("POST", "/v2beta/stable-image/generate/sd3", Auth::Bearer)
        .and(header("accept", "image/*"))
        .and(|r: &wiremock::Request| {
            let content_type = r
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            content_type.starts_with("multipart/form-data; boundary=")
                && field(r, "prompt").as_deref() == Some("A lighthouse")
                && field(r, "negative_prompt").as_deref() == Some("fog")
                && field(r, "aspect_ratio").as_deref() == Some("3:2")
                && field(r, "seed").as_deref() == Some("99")
                && field(r, "model").as_deref() == Some("sd3.5-large")
                && field(r, "style_preset").as_deref() == Some("line-art")
                && field(r, "cfg_scale").as_deref() == Some("4")
                && field(r, "output_format").as_deref() == Some("png")
        })
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(png(30, 20))
                .insert_header("content-type", "image/png")
                .insert_header("finish-reason", "SUCCESS")
                .insert_header("seed", "99"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = config(stability(&server, "sd3.5-large"), json!({}));
    let mut request = request(&config, "A lighthouse");
    request.negative = Some("fog".into());
    request.seed = Some(99);
    request.size = Size {
        width: 1500,
        height: 1000,
    };
    let master = generate(config, request).await.master();
    assert_eq!(master.provenance.seed, Some(99));
    assert_eq!(master.cost_usd, 0.065);
}

#[tokio::test]
async fn stability_json_answers_and_refusals() {
    let server = MockServer::start().await;
    Mock::given(path("/v2beta/stable-image/generate/core"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "image": b64(&png(8, 8)), "finish_reason": "SUCCESS", "seed": 343940597
        })))
        .mount(&server)
        .await;
    let book = config(
        json!({ "kind": "stability", "base-url": server.uri(), "api-key-env": "TEST_KEY" }),
        json!({}),
    );
    let asked = request(&book, "A lighthouse");
    assert_eq!(
        generate(book, asked).await.master().provenance.seed,
        Some(343_940_597)
    );

    let cases = [
        (
            ResponseTemplate::new(200)
                .set_body_bytes(png(8, 8))
                .insert_header("content-type", "image/png")
                .insert_header("finish-reason", "CONTENT_FILTERED"),
            "refused the prompt: the image was filtered by content moderation",
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({
                "id": "ab12", "name": "content_moderation",
                "errors": ["Your request was flagged by our content moderation system."]
            })),
            "refused the prompt: HTTP 403: Your request was flagged by our content moderation system. [content_moderation] (request ab12)",
        ),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let failure = generate_with(stability(&server, "ultra"), json!({}), "A lighthouse")
            .await
            .failure();
        assert!(failure.message.contains(expected), "{}", failure.message);
        assert_eq!(requests(&server).await, 1);
    }
}

#[tokio::test]
async fn stability_rate_limits_wait_a_minute() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "id": "x", "name": "rate_limit_exceeded", "errors": ["You have exceeded the rate limit of 150 requests within a 10 second period."]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(png(8, 8))
                .insert_header("finish-reason", "SUCCESS"),
        )
        .mount(&server)
        .await;
    let run = generate_with(stability(&server, "ultra"), json!({}), "A lighthouse").await;
    assert_eq!(run.waits, [Duration::from_secs(60)]);
    run.master();
}

#[tokio::test]
async fn automatic1111_sends_txt2img_and_reads_the_seed_from_info() {
    let server = MockServer::start().await;
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me:pw")
    );
    Mock::given(method("POST"))
        .and(path("/sdapi/v1/txt2img"))
        .and(header("authorization", basic.as_str()))
        .and(body_json(json!({
            "prompt": "A lighthouse", "negative_prompt": "", "seed": -1, "width": 512, "height": 776,
            "batch_size": 1, "n_iter": 1, "save_images": false, "send_images": true,
            "override_settings": { "sd_model_checkpoint": "sdxl" },
            "steps": 30, "cfg_scale": 6.5, "sampler_name": "DPM++ 2M", "scheduler": "Karras"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [b64(&png(16, 24))],
            "parameters": {},
            "info": "{\"seed\": 1234, \"all_seeds\": [1234], \"sd_model_name\": \"sdxl\"}"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = config(
        json!({ "kind": "automatic1111", "model": "sdxl", "base-url": server.uri(), "api-key-env": "A1111_AUTH",
                "steps": 30, "cfg-scale": 6.5, "sampler": "DPM++ 2M", "scheduler": "Karras" }),
        json!({}),
    );
    let mut request = request(&config, "A lighthouse");
    request.size = Size {
        width: 512,
        height: 770,
    };
    let run = tokio::task::spawn_blocking(move || {
        let var = |name: &str| (name == "A1111_AUTH").then(|| "me:pw".to_owned());
        within(&config, Path::new("."), &var, &Secrets::default(), |env| {
            super::generate(&request, env)
        })
        .0
    })
    .await
    .unwrap();
    let master = run.unwrap();
    assert_eq!(master.provenance.seed, Some(1234));
    assert_eq!(master.cost_usd, 0.0);
}

#[tokio::test]
async fn automatic1111_validation_errors_are_listed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "detail": [{ "loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer" }]
        })))
        .mount(&server)
        .await;
    let config = config(
        json!({ "kind": "automatic1111", "model": "sdxl", "base-url": server.uri() }),
        json!({}),
    );
    let request = request(&config, "A lighthouse");
    let failure = generate(config, request).await.failure();
    assert!(
        failure
            .message
            .contains("rejected the request: HTTP 422: body.width: value is not a valid integer"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(
        json!({ "kind": "automatic1111", "model": "sdxl", "base-url": format!("http://127.0.0.1:{port}") }),
        json!({ "retries": 1 }),
    );
    let request = request(&config, "A lighthouse");
    let run = generate(config, request).await;
    assert_eq!(run.waits.len(), 1);
    let failure = run.failure();
    assert!(failure.may_fall_back);
    assert!(failure.message.contains("127.0.0.1"), "{}", failure.message);
}

mod command {
    use super::*;

    fn script(dir: &Path, body: &str) -> Config {
        command_book(dir, body, json!({ "timeout": "2s", "retries": 0 }))
    }

    fn run(dir: &Path, config: Config) -> Result<Master, Failure> {
        let request = request(&config, "A lighthouse at dusk");
        offline(&config, dir, |env| super::super::generate(&request, env))
    }

    #[test]
    fn reads_the_image_from_the_output_file_stdout_or_a_printed_path() {
        let dir = tempfile::tempdir().unwrap();
        for body in [
            // The request arrives as JSON on stdin and in the environment.
            "test \"$IMAGEGEN_PROMPT\" = 'A lighthouse at dusk' || exit 9\n\
             test \"$IMAGEGEN_SIZE\" = 1024x1024 || exit 9\n\
             grep -q '\"model\":\"my-sd\"' || exit 9\n\
             cp fixture.png \"$IMAGEGEN_OUTPUT\"\n",
            "cat fixture.png\n",
            "echo working >&2\necho fixture.png\n",
        ] {
            let master = run(dir.path(), script(dir.path(), body)).unwrap();
            assert_eq!((master.width, master.height), (20, 10), "{body}");
        }
    }

    #[test]
    fn a_program_may_answer_with_an_svg_which_is_kept_sanitized() {
        let dir = tempfile::tempdir().unwrap();
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 20"><script>alert(1)</script><rect width="40" height="20" onclick="x()"/></svg>"#;
        std::fs::write(dir.path().join("drawing.svg"), svg).unwrap();
        for body in ["cat drawing.svg\n", "cp drawing.svg \"$IMAGEGEN_OUTPUT\"\n"] {
            let master = run(dir.path(), script(dir.path(), body)).unwrap();
            assert_eq!(master.format, ImageFormat::Svg, "{body}");
            assert_eq!((master.width, master.height), (40, 20));
            assert_eq!(
                String::from_utf8(master.bytes).unwrap(),
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 20" width="40" height="20"><rect width="40" height="20"/></svg>"#
            );
        }
    }

    #[test]
    fn failures_quote_stderr_and_timeouts_stop_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let failure = run(
            dir.path(),
            script(
                dir.path(),
                "echo loading model >&2\necho 'model my-sd not found' >&2\nexit 3\n",
            ),
        )
        .unwrap_err();
        assert!(
            failure.message.contains("exited with exit status: 3")
                && failure
                    .message
                    .ends_with("its stderr ends with: loading model | model my-sd not found"),
            "{}",
            failure.message
        );
        assert!(!failure.may_fall_back);

        let started = std::time::Instant::now();
        let failure = run(dir.path(), script(dir.path(), "exec sleep 30\n")).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(failure.may_fall_back);
        assert!(
            failure.message.contains("did not finish within 2s"),
            "{}",
            failure.message
        );

        let failure = run(dir.path(), script(dir.path(), "echo done\n")).unwrap_err();
        assert!(
            failure
                .message
                .contains("printed `done`, which is neither an image nor the path of a file"),
            "{}",
            failure.message
        );
    }
}

/// A loopback OpenAI that checks every request as the real API does for the gpt-image-2 family
/// (the spec's `size` rules, the qualities and backgrounds each model takes) and answers 400
/// `invalid_request_error` naming the parameter when one is broken, else an image of the size
/// it was asked for.
struct StrictOpenAi {
    images: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl StrictOpenAi {
    fn new() -> StrictOpenAi {
        StrictOpenAi {
            images: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn invalid(param: &str, message: String) -> ResponseTemplate {
        ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": message, "type": "invalid_request_error", "param": param, "code": "invalid_value" }
        }))
    }
}

impl wiremock::Respond for StrictOpenAi {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let model = body["model"].as_str().unwrap_or_default();
        let size = body["size"].as_str().unwrap_or_default().to_owned();
        let Some((w, h)) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u64>().ok()?, h.parse::<u64>().ok()?)))
        else {
            return Self::invalid("size", format!("Invalid size '{size}'."));
        };
        let (long, short) = (w.max(h), w.min(h));
        if w % 16 != 0 || h % 16 != 0 {
            return Self::invalid(
                "size",
                format!("Invalid size '{size}'. Both edges must be multiples of 16."),
            );
        }
        if long > 3840 {
            return Self::invalid(
                "size",
                format!("Invalid size '{size}'. The longest edge must be at most 3840."),
            );
        }
        if long > 3 * short {
            return Self::invalid(
                "size",
                format!("Invalid size '{size}'. The aspect ratio must be between 1:3 and 3:1."),
            );
        }
        if !(655_360..=8_294_400).contains(&(w * h)) {
            return Self::invalid(
                "size",
                format!("Invalid size '{size}'. Total pixels must be between 655360 and 8294400."),
            );
        }
        let base = model == "gpt-image-2" || model.starts_with("gpt-image-2-");
        let quality = body["quality"].as_str().unwrap_or("auto");
        if !["low", "medium", "high", "auto", "xhigh", "max"].contains(&quality)
            || (base && ["xhigh", "max"].contains(&quality))
        {
            return Self::invalid("quality", format!("Invalid value: '{quality}'."));
        }
        if base && body["background"] == "transparent" {
            return Self::invalid(
                "background",
                "Transparent background is not supported for this model.".into(),
            );
        }
        let image = self
            .images
            .lock()
            .unwrap()
            .entry(size.clone())
            .or_insert_with(|| png(w as u32, h as u32))
            .clone();
        openai_ok(&image)
    }
}

/// Every gpt-image-2 family model, asked for every size a book may hold: each size sent obeys
/// every rule, the image comes back, and the size sent is recorded.
#[tokio::test]
async fn gpt_image_2_family_sizes_obey_the_api_rules() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/generations"))
        .respond_with(StrictOpenAi::new())
        .mount(&server)
        .await;
    let models = [
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5-sunburst",
        "gpt-image-2.5-flare",
        "gpt-image-2.6-sunburst",
        "gpt-image-2.6-flare",
    ];
    let sizes = [
        (16, 16),
        (512, 512),
        (800, 600),
        (1024, 1536),
        (4000, 3000),
        (4096, 4096),
        (4096, 256),
    ];
    let mut sent = Vec::new();
    for model in models {
        let mut profile = openai(&server);
        profile["model"] = model.into();
        profile["quality"] = "high".into();
        let config = config(profile, json!({ "retries": 0 }));
        for (width, height) in sizes {
            let mut request = request(&config, "A lighthouse");
            request.size = Size { width, height };
            let master = generate(config.clone(), request).await.master();
            let recorded = master.provenance.sent_size.clone().unwrap();
            assert_eq!(
                recorded,
                format!("{}x{}", master.width, master.height),
                "{model} {width}x{height}"
            );
            sent.push(format!("{model} {width}x{height} -> {recorded}"));
        }
    }
    assert_eq!(requests(&server).await, models.len() * sizes.len());
    // The shape is kept where the rules allow it, and the extreme one is clamped to 3:1.
    let first: Vec<&str> = sent[..sizes.len()]
        .iter()
        .map(|line| line.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "816x816",
            "816x816",
            "960x720",
            "1024x1536",
            "3312x2480",
            "2880x2880",
            "1776x592"
        ]
    );
}

/// The strict server refuses what the old mapping sent, so the sweep above proves the fix.
#[tokio::test]
async fn the_strict_server_refuses_sizes_out_of_the_rules() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/generations"))
        .respond_with(StrictOpenAi::new())
        .mount(&server)
        .await;
    for size in ["3840x3840", "4096x256", "512x512", "1000x1000"] {
        let mut profile = openai(&server);
        profile["model"] = "gpt-image-2".into();
        profile["extra"] = json!({ "size": size });
        let run = generate_with(profile, json!({ "retries": 0 }), "A lighthouse").await;
        let failure = run.failure();
        assert!(
            failure.message.contains("rejected the request"),
            "{}",
            failure.message
        );
    }
}

/// Provider answers are outside input: whatever bytes, status and headers come back, reading
/// them never panics, and a fault always says something.
mod answers {
    use super::*;
    use proptest::prelude::*;
    use ureq::http::{HeaderMap, HeaderValue};

    /// JSON shaped like the providers' answers: their keys, nested, with values of any type.
    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("data"),
            Just("b64_json"),
            Just("url"),
            Just("image"),
            Just("images"),
            Just("revised_prompt"),
            Just("usage"),
            Just("output_tokens"),
            Just("input_tokens"),
            Just("error"),
            Just("message"),
            Just("code"),
            Just("type"),
            Just("status"),
            Just("details"),
            Just("retryDelay"),
            Just("candidates"),
            Just("content"),
            Just("parts"),
            Just("inlineData"),
            Just("mimeType"),
            Just("thought"),
            Just("text"),
            Just("finishReason"),
            Just("promptFeedback"),
            Just("blockReason"),
            Just("info"),
            Just("seed"),
            Just("finish_reason"),
            Just("errors"),
            Just("name"),
            Just("detail"),
            Just("modelVersion"),
            Just("responseId"),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,40}".prop_map(Value::from),
            Just(Value::from("iVBORw0KGgo=")),
            Just(Value::from("image/png")),
            Just(Value::from("data:image/png;base64,AAAA")),
            Just(Value::from("{\"seed\": 5, \"all_seeds\": [1]}")),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(key.clone(), inner, 0..5).prop_map(|map| {
                    Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    fn reply() -> impl Strategy<Value = http::Reply> {
        let status = prop_oneof![
            Just(200u16),
            Just(400),
            Just(401),
            Just(403),
            Just(404),
            Just(429),
            Just(500),
            Just(503),
            100u16..600
        ];
        let body = prop_oneof![
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            proptest::collection::vec(any::<u8>(), 0..200),
            Just(png(2, 2)),
        ];
        let header = prop_oneof![Just(None), "\\PC{0,20}".prop_map(Some),];
        (status, body, header).prop_map(|(status, body, value)| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                for name in [
                    "retry-after",
                    "retry-after-ms",
                    "x-request-id",
                    "finish-reason",
                    "seed",
                    "content-type",
                    "x-should-retry",
                ] {
                    headers.insert(name, value.clone());
                }
            }
            http::Reply {
                status,
                headers,
                body,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn reading_any_answer_never_panics(reply in reply()) {
            let checks: [Result<(), Fault>; 7] = [
                openai::read_all(&reply, "gpt-image-2", "1024x1024".into()).map(|_| ()),
                gemini::read(&reply, Some(7), "1:1 1K".into()).map(|_| ()),
                stability::read(&reply, "1:1").map(|_| ()),
                automatic1111::read(&reply, "1024x1024".into()).map(|_| ()),
                openrouter::read(&reply).map(|_| ()),
                recraft::read(&reply).map(|_| ()),
                Err(bfl::error(&reply)),
            ];
            for result in checks {
                if let Err(fault) = result {
                    prop_assert!(!fault.message.is_empty());
                    prop_assert!(fault.retry_after.is_none_or(|w| w < Duration::from_secs(100_000 * 365 * 86_400)));
                }
            }
        }
    }
}
