//! Google's Gemini API: `POST {base-url}/models/{model}:generateContent` with the image response
//! modality.
//!
//! The size becomes the closest listed aspect ratio and an image size tier (`1K`, `2K`, `4K`);
//! the seed goes in `generationConfig`. The image is the first `inlineData` part that is not a
//! thought. Refusals arrive as HTTP 200 with a safety finish reason or a blocked prompt, and
//! rate limits carry their wait in the body (`RetryInfo`), not in a header.

use serde_json::{Value, json};

use super::http::{Reply, go_duration, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance, decode_base64, nearest_ratio};

const RATIOS: [&str; 10] = [
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];

/// Finish reasons that mean the model would not draw this prompt.
pub(super) const REFUSALS: [&str; 8] = [
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "SAFETY",
    "PROHIBITED_CONTENT",
    "RECITATION",
    "BLOCKLIST",
    "SPII",
];

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let (body, sent_size) = body(request);
    let mut headers = Vec::new();
    if let Some(key) = call.key {
        headers.push(("x-goog-api-key", key.expose()));
    }
    let url = format!(
        "{}/models/{}:generateContent",
        call.profile.base_url, request.model
    );
    let reply = call.http.post_json(&url, &headers, &body)?;
    read(&reply, request.seed, sent_size)
}

/// The `generateContent` body of a request, and the size as sent (ratio and tier). Pure.
pub(super) fn body(request: &crate::request::Request) -> (Value, String) {
    let mut image_config = json!({ "aspectRatio": nearest_ratio(request.size, &RATIOS) });
    if !request.model.starts_with("gemini-2") {
        let side = request.size.width.max(request.size.height);
        let tier = match side {
            0..=1024 => "1K",
            1025..=2048 => "2K",
            _ => "4K",
        };
        image_config["imageSize"] = tier.into();
    }
    let sent_size = match (
        image_config["aspectRatio"].as_str(),
        image_config["imageSize"].as_str(),
    ) {
        (Some(ratio), Some(tier)) => format!("{ratio} {tier}"),
        (Some(ratio), None) => ratio.to_owned(),
        _ => request.size.to_string(),
    };
    let mut generation = json!({
        "responseModalities": ["IMAGE"],
        "imageConfig": image_config,
    });
    if let Some(seed) = super::seed_sent(request) {
        // The API takes a 32-bit seed.
        generation["seed"] = (seed % (1 << 31)).into();
    }
    // Reference images go first, as inline data, then the prompt (Google's advice for images
    // with text; Gemini 3 image models take up to 14).
    let mut parts: Vec<Value> = request
        .references
        .iter()
        .map(|r| json!({ "inline_data": { "mime_type": r.media_type, "data": super::encode_base64(&r.bytes) } }))
        .collect();
    parts.push(json!({ "text": super::prompt_as_sent(request) }));
    let body = json!({
        "contents": [{ "role": "user", "parts": parts }],
        "generationConfig": generation,
    });
    (body, sent_size)
}

/// Reads an answer: the first inline image part that is not a thought, or the fault it tells
/// of (an error envelope, a refusal in a 200, a text-only answer). Pure: any bytes in, never a
/// panic.
// Long by design: Gemini's answer shapes (error envelope, prompt feedback, finish reasons,
// parts) are checked in the order the API documents them, each with its own message.
pub(super) fn read(
    reply: &Reply,
    seed: Option<u64>,
    sent_size: String,
) -> Result<Generated, Fault> {
    let answer = answer_of(reply)?;
    read_answer(&answer, seed, sent_size)
}

/// Reads a `GenerateContentResponse` (a 200's body, or a batch's answer to one request): see
/// [`read`]. Pure.
pub(super) fn read_answer(
    answer: &Value,
    seed: Option<u64>,
    sent_size: String,
) -> Result<Generated, Fault> {
    blocked(answer)?;
    let Some(candidate) = answer.pointer("/candidates/0") else {
        return Err(Fault::new(
            FaultKind::Empty,
            format!(
                "the answer has no candidates: {}",
                snippet(answer.to_string().as_bytes())
            ),
        ));
    };
    let finish = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .unwrap_or("");
    let parts = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let image = parts.iter().find_map(|part| {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let data = part.get("inlineData")?;
        let mime = data.get("mimeType").and_then(Value::as_str)?;
        mime.starts_with("image/")
            .then(|| data.get("data").and_then(Value::as_str))
            .flatten()
    });
    let text: Vec<&str> = parts
        .iter()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let Some(data) = image else {
        let said = if text.is_empty() {
            String::new()
        } else {
            format!(": \"{}\"", snippet(text.join(" ").as_bytes()))
        };
        if REFUSALS.contains(&finish) {
            return Err(Fault::new(
                FaultKind::Refused,
                format!("no image, finish reason {finish}{said}"),
            ));
        }
        if !text.is_empty() {
            return Err(Fault::new(
                FaultKind::Refused,
                format!("the model answered with text instead of an image{said}"),
            ));
        }
        return Err(Fault::new(
            FaultKind::Empty,
            format!(
                "no image, finish reason {}",
                if finish.is_empty() { "none" } else { finish }
            ),
        ));
    };
    Ok(Generated {
        bytes: decode_base64(data)?,
        cost_usd: None,
        provenance: Provenance {
            seed,
            revised_prompt: None,
            model_version: text_of(answer, "modelVersion"),
            request_id: text_of(answer, "responseId"),
            sent_size: Some(sent_size),
        },
    })
}

/// The refusal of a blocked prompt (`promptFeedback.blockReason`), which comes in a 200.
fn blocked(answer: &Value) -> Result<(), Fault> {
    match answer
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
    {
        Some(reason) => Err(Fault::new(
            FaultKind::Refused,
            format!("the prompt was blocked ({reason})"),
        )),
        None => Ok(()),
    }
}

/// A text field of an answer (`modelVersion`, `responseId`).
pub(super) fn text_of(answer: &Value, field: &str) -> Option<String> {
    answer.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// A successful answer's JSON, or the fault it tells of: an error envelope, or a blocked
/// prompt (a refusal in a 200).
pub(super) fn answer_of(reply: &Reply) -> Result<Value, Fault> {
    if !reply.is_success() {
        return Err(error(reply));
    }
    let answer = reply.json()?;
    blocked(&answer)?;
    Ok(answer)
}

/// Classifies an error answer from the google.rpc envelope
/// `{"error": {"code", "message", "status", "details"}}`.
pub(super) fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let error = answer.get("error");
    let status = error
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| snippet(&reply.body), str::to_owned);
    if !status.is_empty() {
        message = format!("{message} [{status}]");
    }
    let details = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut fault = reply.status_fault(message);
    let reasons = details
        .iter()
        .filter_map(|d| d.get("reason").and_then(Value::as_str));
    if reasons.into_iter().any(|r| r == "API_KEY_INVALID") {
        fault.kind = FaultKind::Auth;
    }
    if reply.status == 429 {
        let daily = details
            .iter()
            .filter_map(|d| d.get("violations").and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
            .any(|id| id.contains("PerDay"));
        if daily {
            fault.kind = FaultKind::Quota;
            fault.retry_after = None;
        } else if let Some(wait) = details
            .iter()
            .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
            .find_map(go_duration)
        {
            fault.retry_after = Some(wait);
        }
    }
    fault
}
