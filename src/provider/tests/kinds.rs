//! Ideogram and xAI against loopback servers in their real shapes: the request each sends,
//! the image each answers with, and their errors, refusals and rate limits.

use serde_json::json;
use wiremock::matchers::body_json;
use wiremock::{MockServer, ResponseTemplate};

use super::*;
use crate::test_support::images::jpeg;
use crate::test_support::servers::{profile, serve_download};

async fn ideogram_answer(server: &MockServer, answer: ResponseTemplate) {
    authed("POST", "/v1/ideogram-v3/generate", Auth::ApiKey)
        .respond_with(answer)
        .mount(server)
        .await;
}

fn ideogram_ok(server: &MockServer, safe: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "created": "2026-12-05T10:00:00+00:00",
        "data": [{
            "url": if safe { format!("{}/ephemeral/x1.png?exp=1&sig=ab", server.uri()) } else { String::new() },
            "prompt": "A lighthouse at dusk, warm light on the rocks",
            "resolution": "1312x736",
            "is_image_safe": safe,
            "seed": 4242,
            "style_type": "GENERAL"
        }]
    }))
}

#[tokio::test]
async fn ideogram_sends_its_fields_and_downloads_the_image_without_the_key() {
    let server = MockServer::start().await;
    authed("POST", "/v1/ideogram-v3/generate", Auth::ApiKey)
        .and(body_json(json!({
            "prompt": "A lighthouse at dusk",
            "aspect_ratio": "16x9",
            "negative_prompt": "people",
            "seed": 7,
            "rendering_speed": "QUALITY",
            "magic_prompt": "OFF"
        })))
        .respond_with(ideogram_ok(&server, true))
        .expect(1)
        .mount(&server)
        .await;
    serve_download(&server, "/ephemeral/x1.png", png(131, 73)).await;
    let mut ideogram = profile("ideogram", "ideogram-v3", &server, "");
    ideogram["quality"] = "high".into();
    ideogram["extra"] = json!({ "magic_prompt": "OFF" });
    let book = config(ideogram, json!({}));
    let mut request = request(&book, "A lighthouse at dusk");
    request.negative = Some("people".into());
    request.seed = Some(7);
    request.size = Size {
        width: 1600,
        height: 900,
    };
    let master = generate(book, request).await.master();
    assert_eq!((master.width, master.height), (131, 73));
    assert_eq!(master.provenance.seed, Some(4242));
    assert_eq!(master.provenance.sent_size.as_deref(), Some("16x9"));
    // Magic prompt's rewrite is kept; Quality is $0.09.
    assert_eq!(
        master.provenance.revised_prompt.as_deref(),
        Some("A lighthouse at dusk, warm light on the rocks")
    );
    assert!((master.cost_usd - 0.09).abs() < 1e-9);
}

#[tokio::test]
async fn ideogram_refusals_quota_and_in_flight_limits_have_their_kinds() {
    for (answer, kind, says) in [
        (
            ResponseTemplate::new(422).set_body_json(json!({
                "error": "Prompt provided failed safety check due to the inclusion of prohibited content."
            })),
            FaultKind::Refused,
            "failed safety check",
        ),
        (
            ResponseTemplate::new(402).set_body_json(json!({
                "error": "Not enough credits.", "reject_reason": "insufficient_funds"
            })),
            FaultKind::Quota,
            "[insufficient_funds]",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({ "error": "Invalid API key." })),
            FaultKind::Auth,
            "Invalid API key",
        ),
    ] {
        let server = MockServer::start().await;
        ideogram_answer(&server, answer).await;
        let book = config(profile("ideogram", "ideogram-v3", &server, ""), json!({}));
        let failure = generate(book.clone(), request(&book, "x")).await.failure();
        assert!(failure.message.contains(says), "{}", failure.message);
        assert_eq!(failure.may_fall_back, kind == FaultKind::RateLimited);
        // Never retried.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
    // An image withheld as unsafe is a refusal, never downloaded or cached.
    let server = MockServer::start().await;
    ideogram_answer(&server, ideogram_ok(&server, false)).await;
    let book = config(profile("ideogram", "ideogram-v3", &server, ""), json!({}));
    let failure = generate(book.clone(), request(&book, "x")).await.failure();
    assert!(
        failure.message.contains("refused the prompt"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("withheld the image as unsafe"));
    // Too many images in flight: waited out and retried.
    let server = MockServer::start().await;
    authed("POST", "/v1/ideogram-v3/generate", Auth::ApiKey)
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": "Too many requests in flight.", "reject_reason": "inflight_limit"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    ideogram_answer(&server, ideogram_ok(&server, true)).await;
    serve_download(&server, "/ephemeral/x1.png", png(16, 9)).await;
    let book = config(profile("ideogram", "ideogram-v3", &server, ""), json!({}));
    let run = generate(book.clone(), request(&book, "x")).await;
    assert_eq!(run.waits.len(), 1);
    run.master();
}

/// The vector model: submitted, polled until done (a pending answer and a busy poll in
/// between), its SVG downloaded without the key and sanitized.
#[tokio::test]
async fn ideogram_vector_submits_polls_and_keeps_a_sanitized_svg() {
    let server = MockServer::start().await;
    authed("POST", "/v2/svg/generate/ideogram-vector-1", Auth::ApiKey)
        .and(body_json(json!({
            "prompt": "A lighthouse icon\n\nAvoid: text.", "aspect_ratio": "1:1", "quality": "low", "seed": 3
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "generation_id": "gen_42", "status": "pending", "created": "2026-12-05T10:00:00Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    for answer in [
        ResponseTemplate::new(200)
            .set_body_json(json!({ "generation_id": "gen_42", "status": "pending" })),
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(json!({ "error": "Too many polls." })),
    ] {
        authed("GET", "/v2/generations/gen_42", Auth::ApiKey)
            .respond_with(answer)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    authed("GET", "/v2/generations/gen_42", Auth::ApiKey)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "generation_id": "gen_42",
            "status": "completed",
            "usage_cost_usd_micros": 130_000,
            "data": [{
                "object_type": "svg.generation",
                "url": format!("{}/assets/gen_42.svg?sig=x", server.uri()),
                "asset_id": "asset_1", "mime_type": "image/svg+xml", "width": 1024, "height": 1024
            }]
        })))
        .mount(&server)
        .await;
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1024 1024"><script>alert(1)</script><circle cx="512" cy="512" r="400"/></svg>"#;
    serve_download(&server, "/assets/gen_42.svg", svg.as_bytes().to_vec()).await;
    let mut ideogram = profile("ideogram", "ideogram-vector-1", &server, "");
    ideogram["quality"] = "low".into();
    let book = config(ideogram, json!({}));
    let mut request = request(&book, "A lighthouse icon");
    request.seed = Some(3);
    // No negative field on the vector route: it is told in the prompt.
    request.negative = Some("text".into());
    let run = generate(book, request).await;
    assert_eq!(run.waits.len(), 3, "{:?}", run.waits);
    let master = run.master();
    assert_eq!(master.format, ImageFormat::Svg);
    assert!(!String::from_utf8_lossy(&master.bytes).contains("script"));
    assert_eq!(master.provenance.request_id.as_deref(), Some("gen_42"));
    assert!((master.cost_usd - 0.13).abs() < 1e-9);
}

fn xai_ok(image: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": [{ "b64_json": b64(image), "mime_type": "image/jpeg", "revised_prompt": "A tall lighthouse at dusk" }],
        "usage": { "cost_in_usd_ticks": 400_000_000 },
        "model": "grok-imagine-image-2.0",
        "block_reason": null
    }))
}

#[tokio::test]
async fn xai_sends_ratio_resolution_and_quality_and_reads_the_cost_in_ticks() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .and(body_json(json!({
            "model": "grok-imagine-image-2.0",
            "prompt": "A lighthouse\n\nAvoid: people.",
            "n": 1,
            "response_format": "b64_json",
            "aspect_ratio": "16:9",
            "resolution": "2k",
            "quality": "low"
        })))
        .respond_with(xai_ok(&jpeg(64, 36)))
        .expect(1)
        .mount(&server)
        .await;
    let mut xai = profile("xai", "grok-imagine-image-2.0", &server, "/v1");
    xai["quality"] = "low".into();
    let book = config(xai, json!({}));
    let mut request = request(&book, "A lighthouse");
    request.negative = Some("people".into());
    request.size = Size {
        width: 2048,
        height: 1152,
    };
    let master = generate(book, request).await.master();
    assert_eq!(master.format, ImageFormat::Jpeg);
    assert!((master.cost_usd - 0.04).abs() < 1e-9, "{}", master.cost_usd);
    assert_eq!(master.provenance.sent_size.as_deref(), Some("16:9 2k"));
    assert_eq!(
        master.provenance.model_version.as_deref(),
        Some("grok-imagine-image-2.0")
    );
}

#[tokio::test]
async fn xai_edits_go_as_json_data_urls() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/edits", Auth::Bearer)
        .respond_with(xai_ok(&jpeg(16, 16)))
        .expect(1)
        .mount(&server)
        .await;
    let book = config(
        profile("xai", "grok-imagine-image-2.0", &server, "/v1"),
        json!({}),
    );
    let mut request = request(&book, "Light the lamp");
    let bytes = png(4, 4);
    request.references = vec![crate::request::RefImage {
        label: "a.png".into(),
        hash: blake3::hash(&bytes).to_hex().to_string(),
        media_type: "image/png",
        bytes: std::sync::Arc::new(bytes.clone()),
        path: Default::default(),
    }];
    generate(book, request).await.master();
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(received[0].headers["content-type"], "application/json");
    assert_eq!(
        body["images"][0]["url"],
        format!("data:image/png;base64,{}", b64(&bytes))
    );
    assert_eq!(body["images"][0]["type"], "image_url");
}

#[tokio::test]
async fn xai_errors_moderation_and_blocks_have_their_kinds() {
    let cases = [
        (
            ResponseTemplate::new(400).set_body_json(json!({
                "code": "Client specified an invalid argument",
                "error": "Incorrect API key provided: xa***XX. You can obtain an API key from https://console.x.ai."
            })),
            "refused the key",
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({
                "code": "Client specified an invalid argument",
                "error": "Generated image rejected by content moderation.",
                "usage": { "cost_in_usd_ticks": 500_000_000 }
            })),
            "refused the prompt",
        ),
        (
            ResponseTemplate::new(429).set_body_json(json!({ "code": 429, "error": "You ran out of credits." })),
            "is out of quota",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({
                "data": [], "block_reason": "The prompt violates the usage policy."
            })),
            "refused the prompt",
        ),
    ];
    for (answer, says) in cases {
        let server = MockServer::start().await;
        authed("POST", "/v1/images/generations", Auth::Bearer)
            .respond_with(answer)
            .mount(&server)
            .await;
        let book = config(
            profile("xai", "grok-imagine-image-2.0", &server, "/v1"),
            json!({}),
        );
        let failure = generate(book.clone(), request(&book, "x")).await.failure();
        assert!(
            failure.message.contains(says),
            "{says}: {}",
            failure.message
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
    // A rate limit with a wait is honoured.
    let server = MockServer::start().await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(
                    json!({ "code": "Too many requests", "error": "Rate limit reached." }),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    authed("POST", "/v1/images/generations", Auth::Bearer)
        .respond_with(xai_ok(&jpeg(8, 8)))
        .mount(&server)
        .await;
    let book = config(
        profile("xai", "grok-imagine-image", &server, "/v1"),
        json!({}),
    );
    let run = generate(book.clone(), request(&book, "x")).await;
    assert_eq!(run.waits, vec![Duration::from_secs(2)]);
    run.master();
}

/// What each kind takes is checked when the book is loaded.
#[test]
fn ideogram_and_xai_settings_are_checked_at_load() {
    let load = |profile: Value| {
        crate::config::Config::from_table(Some(&json!({ "providers": { "p": profile } })))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(load(json!({ "kind": "ideogram" })).is_ok());
    let error = load(json!({ "kind": "ideogram", "model": "ideogram-v9" })).unwrap_err();
    assert!(error.contains("providers.p.model"), "{error}");
    // A directive's `model` names the route too: it is checked the same way.
    let none = Default::default();
    let check = |model| crate::models::check_options(ProviderKind::Ideogram, model, None, &none);
    assert_eq!(check("../v1/edit").map_err(|(key, _)| key), Err("model"));
    assert_eq!(check("ideogram-vector-1"), Ok(()));
    let error = load(json!({ "kind": "ideogram", "quality": "max" })).unwrap_err();
    assert!(error.contains("Ideogram has no quality `max`"), "{error}");
    assert!(load(json!({ "kind": "xai", "quality": "medium" })).is_ok());
    let error = load(json!({ "kind": "xai", "quality": "high" })).unwrap_err();
    assert!(
        error.contains("takes quality `low`, `medium` or `auto`"),
        "{error}"
    );
    let error = load(json!({ "kind": "xai", "model": "grok-imagine-image", "quality": "low" }))
        .unwrap_err();
    assert!(error.contains("takes no quality"), "{error}");
}
