use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::request::RefImage;
use crate::test_support::books::bare_request;
use crate::test_support::images::{b64, png};

fn key(n: u8) -> CacheKey {
    CacheKey([n; 32])
}

fn reference() -> RefImage {
    RefImage {
        label: "a.png".into(),
        hash: "ab".repeat(32),
        media_type: "image/png",
        bytes: Arc::new(png(4, 4)),
        path: Default::default(),
    }
}

#[test]
fn openai_lines_carry_the_key_and_the_synchronous_body_edits_as_data_urls() {
    let profile = Profile::new(ProviderKind::OpenAi, "gpt-image-2");
    let plain = bare_request(
        ProviderKind::OpenAi,
        "p",
        "gpt-image-2",
        "a lighthouse",
        (1024, 1024),
    );
    let mut edit = plain.clone();
    edit.references = vec![reference()];
    edit.mask = Some(reference());
    let items = [
        Item {
            key: key(1),
            request: &plain,
        },
        Item {
            key: key(2),
            request: &edit,
        },
        Item {
            key: key(3),
            request: &plain,
        },
    ];
    let chunks = chunks(&profile, &items);
    assert_eq!(chunks.len(), 2, "one batch per endpoint");
    assert_eq!(chunks[0].endpoint, "/v1/images/generations");
    assert_eq!(chunks[0].keys, vec![key(1), key(3)]);
    let lines: Vec<serde_json::Value> = chunks[0]
        .jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines[0]["custom_id"], key(1).to_hex());
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["url"], "/v1/images/generations");
    assert_eq!(
        lines[0]["body"],
        crate::provider::openai::body(&plain, &profile, 1).0
    );
    let edit_line: serde_json::Value =
        serde_json::from_slice(chunks[1].jsonl.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(edit_line["url"], "/v1/images/edits");
    let image = edit_line["body"]["images"][0]["image_url"]
        .as_str()
        .unwrap();
    assert!(image.starts_with("data:image/png;base64,"), "{image}");
    assert!(edit_line["body"]["mask"]["image_url"].is_string());
}

#[test]
fn batches_split_at_the_providers_limits() {
    let profile = Profile::new(ProviderKind::OpenAi, "gpt-image-2");
    let long = bare_request(
        ProviderKind::OpenAi,
        "p",
        "gpt-image-2",
        &"x".repeat(30_000),
        (1024, 1024),
    );
    let items: Vec<Item<'_>> = (0..7000u32)
        .map(|n| Item {
            key: CacheKey(blake3::hash(&n.to_le_bytes()).into()),
            request: &long,
        })
        .collect();
    let chunks = chunks(&profile, &items);
    assert_eq!(chunks.len(), 2, "200 MB a file");
    assert!(
        chunks
            .iter()
            .all(|c| c.jsonl.len() <= openai::MAX_FILE_BYTES)
    );
    assert_eq!(chunks.iter().map(|c| c.keys.len()).sum::<usize>(), 7000);
    let mut other = long.clone();
    other.model = "gpt-image-1.5".into();
    let two = [
        Item {
            key: key(1),
            request: &long,
        },
        Item {
            key: key(2),
            request: &other,
        },
    ];
    assert_eq!(super::chunks(&profile, &two).len(), 2, "one model a batch");
}

#[test]
fn gemini_lines_are_keyed_requests_and_answers_read_as_synchronous_ones() {
    let request = bare_request(
        ProviderKind::Gemini,
        "g",
        "gemini-3.1-flash-lite-image",
        "a buoy",
        (1024, 768),
    );
    let (endpoint, line) = gemini::line(&Item {
        key: key(4),
        request: &request,
    });
    assert_eq!(endpoint, "batchGenerateContent");
    let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(line["key"], key(4).to_hex());
    assert_eq!(line["request"], crate::provider::gemini::body(&request).0);

    let image = json!({ "response": { "candidates": [{ "content": { "parts": [
        { "inlineData": { "mimeType": "image/png", "data": b64(&png(8, 8)) } } ] } }] },
        "metadata": { "key": "k1" } });
    let answer = gemini::answer(&image, true);
    assert_eq!(answer.key, "k1");
    assert_eq!(answer.result.unwrap().bytes, png(8, 8));
    let refused =
        json!({ "key": "k2", "response": { "candidates": [{ "finishReason": "IMAGE_SAFETY" }] } });
    let answer = gemini::answer(&refused, false);
    assert_eq!(answer.key, "k2");
    assert_eq!(answer.result.unwrap_err().kind, FaultKind::Refused);
    let error = json!({ "key": "k3", "error": { "code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED" } });
    assert_eq!(
        gemini::answer(&error, false).result.unwrap_err().kind,
        FaultKind::RateLimited
    );
    let neither = gemini::answer(&json!({ "key": "k4" }), false);
    assert_eq!(neither.result.unwrap_err().kind, FaultKind::BadImage);
}

#[test]
fn states_read_from_both_spellings_and_unfinished_batches_are_not_finished() {
    for (name, state) in [
        ("BATCH_STATE_RUNNING", BatchState::Running),
        ("JOB_STATE_SUCCEEDED", BatchState::Completed),
        ("BATCH_STATE_EXPIRED", BatchState::Expired),
    ] {
        assert_eq!(gemini_state(name), state, "{name}");
    }
    assert!(!BatchState::Finalizing.finished());
    assert!(BatchState::Expired.finished() && BatchState::Cancelled.finished());
}

fn gemini_state(name: &str) -> BatchState {
    let reply = Reply {
        status: 200,
        headers: Default::default(),
        body: json!({ "name": "batches/x1", "metadata": { "state": name } })
            .to_string()
            .into_bytes(),
    };
    gemini_batch(&reply).unwrap().state
}

fn gemini_batch(reply: &Reply) -> Result<Batch, Fault> {
    gemini::read_batch(reply)
}
