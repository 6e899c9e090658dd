//! Ideogram's API, `POST {base-url}/v1/ideogram-v3/generate` with the key in the `Api-Key`
//! header and a JSON body: the prompt, the negative prompt and the seed in fields of their own,
//! the size as the closest `aspect_ratio` (`16x9`), and the quality as a `rendering_speed`.
//! The answer's image is a URL, downloaded at once (it expires after a day); an image Ideogram
//! withheld as unsafe (`is_image_safe: false`) is a refusal.

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance};
use crate::request::Request;

/// The aspect ratios Ideogram 3.0 takes, written `W:H` here and `WxH` on the wire (the
/// official OpenAPI spec, read 2026-12-05).
const RATIOS: [&str; 15] = [
    "1:3", "3:1", "1:2", "2:1", "9:16", "16:9", "10:16", "16:10", "2:3", "3:2", "3:4", "4:3",
    "4:5", "5:4", "1:1",
];

/// The largest seed Ideogram takes.
const MAX_SEED: u64 = 2_147_483_647;

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let (mut body, sent_size) = body(request);
    if let Some(fields) = body.as_object_mut() {
        call.add_extra(fields);
    }
    let headers = [("api-key", call.key.map_or("", |k| k.expose()))];
    let url = format!(
        "{}/v1/{}/generate",
        call.profile.base_url, call.request.model
    );
    let reply = call.http.post_json(&url, &headers, &body)?;
    let (url, mut generated) = read(&reply)?;
    generated.provenance.sent_size = Some(sent_size);
    if generated.provenance.revised_prompt.as_deref() == Some(request.prompt.as_str()) {
        generated.provenance.revised_prompt = None;
    }
    generated.bytes = call.http.download(&url)?;
    Ok(generated)
}

/// The request body, and the size as sent (`16x9`). Pure.
pub(crate) fn body(request: &Request) -> (Value, String) {
    let ratio = super::nearest_ratio(request.size, &RATIOS).replace(':', "x");
    let mut body = json!({
        "prompt": request.prompt,
        "aspect_ratio": ratio,
    });
    let fields = body.as_object_mut().expect("an object");
    if let Some(negative) = super::negative_field(request) {
        fields.insert("negative_prompt".into(), negative.into());
    }
    if let Some(seed) = super::seed_sent(request) {
        fields.insert("seed".into(), (seed % (MAX_SEED + 1)).into());
    }
    if let Some(speed) = crate::models::ideogram_speed(request.quality.as_deref()) {
        fields.insert("rendering_speed".into(), speed.into());
    }
    (body, ratio)
}

/// Reads an answer `{created, data: [{url, prompt, resolution, is_image_safe, seed}]}`: the
/// URL of the image, with what Ideogram said of it; or the fault an error answer tells of.
/// Pure: any bytes in, never a panic.
pub(crate) fn read(reply: &Reply) -> Result<(String, Generated), Fault> {
    if !reply.is_success() {
        return Err(error(reply));
    }
    let answer = reply.json()?;
    let Some(item) = answer.get("data").and_then(|d| d.get(0)) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!("the answer holds no image: {}", snippet(&reply.body)),
        ));
    };
    if item.get("is_image_safe").and_then(Value::as_bool) == Some(false) {
        return Err(Fault::new(
            FaultKind::Refused,
            "Ideogram withheld the image as unsafe (the request is billed)",
        ));
    }
    let Some(url) = item
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!("the answer's image has no `url`: {}", snippet(&reply.body)),
        ));
    };
    Ok((
        url.to_owned(),
        Generated {
            bytes: Vec::new(),
            cost_usd: None,
            provenance: Provenance {
                seed: item.get("seed").and_then(Value::as_u64),
                // With magic prompt on, the prompt Ideogram drew from.
                revised_prompt: item
                    .get("prompt")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                model_version: None,
                request_id: None,
                sent_size: None,
            },
        },
    ))
}

/// Classifies an error answer `{"error", "reject_reason"}`: 422 is a prompt that failed the
/// safety check, 402 is out of credit or over the daily limit, 429 is too many images in
/// flight (retried after a backoff, since Ideogram gives no wait).
fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let text = |field: &str| answer.get(field).and_then(Value::as_str);
    let mut message = text("error")
        .or_else(|| text("detail"))
        .map_or_else(|| snippet(&reply.body), str::to_owned);
    if let Some(reason) = text("reject_reason") {
        message = format!("{message} [{reason}]");
    }
    let mut fault = reply.status_fault(message);
    match reply.status {
        422 => fault.kind = FaultKind::Refused,
        402 => fault.kind = FaultKind::Quota,
        _ => {}
    }
    fault
}
