//! Reference images and `n` on the wire, against loopback servers that speak each provider's
//! request shape: OpenAI's and a compatible server's edits endpoint (multipart, one `image[]`
//! part per reference), Gemini's inline data before the text, FLUX.2's numbered `input_image`
//! fields, OpenRouter's `image_url` parts, a `command` program's JSON, and OpenAI's `n`.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::request::{RefImage, Request};
use crate::test_support::books::{command_book, config as book, request};
use crate::test_support::env::{generate, in_env, offline};
use crate::test_support::images::{b64, jpeg, mask_png, png};
use crate::test_support::servers::{Auth, authed, bfl_ready, bfl_submit, parts, profile};

/// Two references: a PNG file and another directive's JPEG master.
fn references() -> Vec<RefImage> {
    [
        ("art/sketch.png", png(5, 3), "image/png"),
        ("#keeper", jpeg(6, 4), "image/jpeg"),
    ]
    .into_iter()
    .map(|(label, bytes, media_type)| RefImage {
        label: label.into(),
        hash: blake3::hash(&bytes).to_hex().to_string(),
        media_type,
        bytes: Arc::new(bytes),
        path: format!("/book/{label}").into(),
    })
    .collect()
}

fn with_references(config: &crate::config::Config) -> Request {
    let mut request = request(config, "The keeper rowing out");
    request.references = references();
    request
}

/// Generates with the references through profile `p`; returns the first request the server got.
async fn sent(config: crate::config::Config, server: &MockServer) -> wiremock::Request {
    generate(config.clone(), with_references(&config))
        .await
        .master();
    server.received_requests().await.unwrap().swap_remove(0)
}

/// [`sent`], as JSON.
async fn sent_json(config: crate::config::Config, server: &MockServer) -> Value {
    serde_json::from_slice(&sent(config, server).await.body).unwrap()
}

#[tokio::test]
async fn openai_sends_references_to_the_edits_endpoint_as_image_parts() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/edits", Auth::Bearer)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "b64_json": b64(&png(32, 32)) }],
            "usage": { "input_tokens": 900, "output_tokens": 1056, "total_tokens": 1956 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut openai = profile("openai", "gpt-image-2", &server, "/v1");
    openai["quality"] = "high".into();
    openai["moderation"] = "low".into();
    let config = book(openai, json!({}));
    let master = generate(config.clone(), with_references(&config))
        .await
        .master();
    assert_eq!((master.width, master.height), (32, 32));

    let received = server.received_requests().await.unwrap();
    let parts = parts(&received[0]);
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.0 == name)
            .map(|p| String::from_utf8(p.3.clone()).unwrap())
    };
    assert_eq!(text("model").as_deref(), Some("gpt-image-2"));
    assert_eq!(text("prompt").as_deref(), Some("The keeper rowing out"));
    assert_eq!(text("n").as_deref(), Some("1"));
    assert_eq!(text("size").as_deref(), Some("1024x1024"));
    assert_eq!(text("quality").as_deref(), Some("high"));
    // The edits endpoint takes no `moderation`.
    assert_eq!(text("moderation"), None);
    let images: Vec<_> = parts.iter().filter(|p| p.0 == "image[]").collect();
    let sent = references();
    assert_eq!(images.len(), 2);
    for ((_, file, content_type, bytes), reference) in images.into_iter().zip(&sent) {
        assert_eq!(bytes, &*reference.bytes);
        assert_eq!(content_type.as_deref(), Some(reference.media_type));
        assert!(file.as_deref().unwrap().starts_with("reference-"));
    }
}

/// An edit's mask goes as the `mask` part, after the image, with the edit's `input_fidelity`.
#[tokio::test]
async fn openai_sends_an_edits_mask_and_input_fidelity() {
    let server = MockServer::start().await;
    authed("POST", "/v1/images/edits", Auth::Bearer)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "b64_json": b64(&png(5, 3)) }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut openai = profile("openai", "gpt-image-2.6-sunburst", &server, "/v1");
    openai["input-fidelity"] = "high".into();
    let config = book(openai, json!({}));
    let mut request = request(&config, "Light the lamp");
    request.references = references()[..1].to_vec();
    let bytes = mask_png(5, 3);
    request.mask = Some(RefImage {
        label: "art/mask.png".into(),
        hash: blake3::hash(&bytes).to_hex().to_string(),
        media_type: "image/png",
        bytes: Arc::new(bytes.clone()),
        path: "/book/art/mask.png".into(),
    });
    let key_without = crate::request::cache_key(&Request {
        mask: None,
        ..request.clone()
    });
    assert_ne!(crate::request::cache_key(&request), key_without);
    generate(config, request).await.master();
    let received = server.received_requests().await.unwrap();
    let parts = parts(&received[0]);
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    let image = names.iter().position(|n| *n == "image[]").unwrap();
    let mask = names.iter().position(|n| *n == "mask").unwrap();
    assert!(image < mask, "{names:?}");
    assert_eq!(parts[mask].3, bytes);
    assert_eq!(parts[mask].2.as_deref(), Some("image/png"));
    let fidelity = parts.iter().find(|p| p.0 == "input_fidelity").unwrap();
    assert_eq!(fidelity.3, b"high");
}

/// A mask must be a PNG with alpha, the size of the image it masks.
#[test]
fn masks_are_checked_against_their_image() {
    let image = |bytes: Vec<u8>, media_type| RefImage {
        label: "m.png".into(),
        hash: "ab".repeat(32),
        media_type,
        bytes: Arc::new(bytes),
        path: Default::default(),
    };
    let edited = image(png(5, 3), "image/png");
    let check = |mask: RefImage| crate::request::check_mask(&mask, &edited);
    assert_eq!(check(image(mask_png(5, 3), "image/png")), Ok(()));
    let message = check(image(png(5, 3), "image/png")).unwrap_err();
    assert!(message.contains("no alpha channel"), "{message}");
    let message = check(image(mask_png(6, 3), "image/png")).unwrap_err();
    assert!(
        message.contains("is 6x3, and the image it masks is 5x3"),
        "{message}"
    );
    let message = check(image(jpeg(5, 3), "image/jpeg")).unwrap_err();
    assert!(message.contains("is not a PNG"), "{message}");
    // Before the image is made (a stand-in with no bytes), only the mask itself is checked.
    let stand_in = image(Vec::new(), "image/png");
    assert_eq!(
        crate::request::check_mask(&image(mask_png(6, 3), "image/png"), &stand_in),
        Ok(())
    );
}

#[tokio::test]
async fn a_compatible_server_gets_the_same_edits_route() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "data": [{ "b64_json": b64(&png(16, 16)) }] })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = book(
        json!({ "kind": "openai-compatible", "model": "flux-kontext", "base-url": format!("{}/v1", server.uri()) }),
        json!({}),
    );
    let parts = parts(&sent(config, &server).await);
    assert_eq!(parts.iter().filter(|p| p.0 == "image[]").count(), 2);
    assert!(
        parts
            .iter()
            .any(|p| p.0 == "response_format" && p.3 == b"b64_json")
    );
}

#[tokio::test]
async fn gemini_gets_each_reference_as_inline_data_before_the_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-3.1-flash-image:generateContent",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{ "content": { "parts": [
                { "inlineData": { "mimeType": "image/png", "data": b64(&png(16, 16)) } }
            ] }, "finishReason": "STOP" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = book(
        profile("gemini", "gemini-3.1-flash-image", &server, "/v1beta"),
        json!({}),
    );
    let body = sent_json(config, &server).await;
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    let sent = references();
    assert_eq!(parts.len(), 3);
    for (part, reference) in parts.iter().zip(&sent) {
        assert_eq!(part["inline_data"]["mime_type"], reference.media_type);
        assert_eq!(part["inline_data"]["data"], b64(&reference.bytes));
    }
    assert_eq!(parts[2]["text"], "The keeper rowing out");
}

#[tokio::test]
async fn flux_2_gets_numbered_input_images() {
    let server = MockServer::start().await;
    bfl_submit(
        &server,
        "flux-2-pro",
        &format!("{}/v1/get_result", server.uri()),
    )
    .await;
    bfl_ready(&server, png(16, 16)).await;
    let config = book(profile("bfl", "flux-2-pro", &server, "/v1"), json!({}));
    let body = sent_json(config, &server).await;
    let sent = references();
    assert_eq!(body["input_image"], b64(&sent[0].bytes));
    assert_eq!(body["input_image_2"], b64(&sent[1].bytes));
    assert!(body.get("input_image_3").is_none());
}

#[tokio::test]
async fn openrouter_gets_image_url_parts_after_the_text() {
    let server = MockServer::start().await;
    let data_url = format!("data:image/png;base64,{}", b64(&png(16, 16)));
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{ "message": { "role": "assistant", "content": "",
                "images": [{ "type": "image_url", "image_url": { "url": data_url } }] },
                "finish_reason": "stop" }]
        })))
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
    let body = sent_json(config, &server).await;
    let content = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "text");
    let sent = references();
    for (part, reference) in content[1..].iter().zip(&sent) {
        assert_eq!(
            part["image_url"]["url"],
            format!(
                "data:{};base64,{}",
                reference.media_type,
                b64(&reference.bytes)
            )
        );
    }
}

#[tokio::test]
async fn openai_makes_a_directive_s_candidates_in_one_request_with_n() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                { "b64_json": b64(&png(16, 16)) },
                { "b64_json": b64(&png(16, 17)) },
                { "b64_json": b64(&png(16, 18)) }
            ],
            "usage": { "input_tokens": 30, "output_tokens": 3000, "total_tokens": 3030 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = book(profile("openai", "gpt-image-2", &server, "/v1"), json!({}));
    let request = request(&config, "The keeper");
    let (masters, _) = in_env(config, "TEST_KEY", move |_, env| {
        crate::provider::generate_n(&request, 3, env)
    })
    .await;
    let masters = masters.unwrap();
    assert_eq!(
        masters.iter().map(|m| m.height).collect::<Vec<_>>(),
        [16, 17, 18]
    );
    // The answer's token cost is shared.
    let costs: Vec<f64> = masters.iter().map(|m| m.cost_usd).collect();
    assert!(costs.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-12));
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["n"], 3);
}

#[test]
fn a_command_program_gets_each_reference_s_path_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    // Saves what it was asked, then answers with an image.
    let config = command_book(
        dir.path(),
        "cat > \"$(dirname \"$0\")/asked.json\"\ncp \"$(dirname \"$0\")/fixture.png\" \"$IMAGEGEN_OUTPUT\"\n",
        json!({ "timeout": "5s", "retries": 0 }),
    );
    let request = with_references(&config);
    offline(&config, dir.path(), |env| {
        crate::provider::generate(&request, env)
    })
    .unwrap();
    let asked: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("asked.json")).unwrap()).unwrap();
    let sent = references();
    let listed = asked["references"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for (item, reference) in listed.iter().zip(&sent) {
        assert_eq!(item["label"], reference.label.as_str());
        assert_eq!(item["hash"], reference.hash.as_str());
        assert_eq!(item["media_type"], reference.media_type);
        assert_eq!(item["path"], reference.path.to_str().unwrap());
    }
}
