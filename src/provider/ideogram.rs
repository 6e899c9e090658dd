//! Ideogram's API, `POST {base-url}/v1/ideogram-v3/generate` with the key in the `Api-Key`
//! header and a JSON body: the prompt, the negative prompt and the seed in fields of their own,
//! the size as the closest `aspect_ratio` (`16x9`), and the quality as a `rendering_speed`.
//! The answer's image is a URL, downloaded at once (it expires after a day); an image Ideogram
//! withheld as unsafe (`is_image_safe: false`) is a refusal.
//!
//! The vector model, `ideogram-vector-1`, answers only asynchronously: `POST {base-url}/v2/svg/
//! generate/ideogram-vector-1` returns a `generation_id`, `GET {base-url}/v2/generations/{id}`
//! is polled until the generation is done, and its SVG is downloaded and sanitized like every
//! SVG master.

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::poll::Step;
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

/// Ideogram's vector model, which makes SVG masters.
pub(crate) const VECTOR_MODEL: &str = "ideogram-vector-1";

/// The aspect ratios the vector model takes, as written on the wire.
const VECTOR_RATIOS: [&str; 15] = [
    "1:3", "1:2", "9:16", "10:16", "2:3", "3:4", "4:5", "1:1", "5:4", "4:3", "3:2", "16:10",
    "16:9", "2:1", "3:1",
];

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    if call.request.model == VECTOR_MODEL {
        return vector(call);
    }
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

/// An SVG from the vector model: submit, poll until done, download.
fn vector(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let (mut body, sent_size) = vector_body(request);
    if let Some(fields) = body.as_object_mut() {
        call.add_extra(fields);
    }
    let headers = [("api-key", call.key.map_or("", |k| k.expose()))];
    let base = &call.profile.base_url;
    let url = format!("{base}/v2/svg/generate/{VECTOR_MODEL}");
    let reply = call.http.post_json(&url, &headers, &body)?;
    if !reply.is_success() {
        return Err(error(&reply));
    }
    let submitted = reply.json()?;
    let Some(id) = submitted
        .get("generation_id")
        .and_then(Value::as_str)
        .filter(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        })
    else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "the answer has no usable `generation_id`: {}",
                snippet(&reply.body)
            ),
        ));
    };
    let done = poll(call, &format!("{base}/v2/generations/{id}"), &headers)?;
    let (url, mut generated) = read_done(&done)?;
    generated.provenance.sent_size = Some(sent_size);
    generated.provenance.request_id = Some(id.to_owned());
    generated.bytes = call.http.download(&url)?;
    Ok(generated)
}

/// The vector model's request body, and the size as sent (`16:9`). Pure.
pub(crate) fn vector_body(request: &Request) -> (Value, String) {
    let ratio = super::nearest_ratio(request.size, &VECTOR_RATIOS);
    let mut body = json!({ "prompt": super::prompt_as_sent(request), "aspect_ratio": ratio });
    let fields = body.as_object_mut().expect("an object");
    if let Some(quality) = request
        .quality
        .as_deref()
        .filter(|q| ["low", "medium", "high"].contains(q))
    {
        fields.insert("quality".into(), quality.into());
    }
    if let Some(seed) = super::seed_sent(request) {
        fields.insert("seed".into(), (seed % (MAX_SEED + 1)).into());
    }
    (body, ratio.to_owned())
}

/// Polls a generation until it is done ([`super::poll::until_done`]): an answer with `data`,
/// or the status `completed`; `failed` fails the attempt (a failed generation is not billed).
fn poll(call: &Call<'_>, url: &str, headers: &[(&str, &str)]) -> Result<Value, Fault> {
    super::poll::until_done(call, url, headers, "generation", error, |answer| {
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if answer.get("data").is_some_and(Value::is_array) || status == "completed" {
            Step::Done(answer)
        } else if matches!(status.as_str(), "failed" | "error" | "cancelled") {
            Step::Fail(Fault::new(
                FaultKind::Transient,
                format!("the generation ended with status `{status}`"),
            ))
        } else {
            Step::Wait(status)
        }
    })
}

/// Reads a finished vector generation: the URL of its SVG (`data[0].url`, or `url`).
fn read_done(answer: &Value) -> Result<(String, Generated), Fault> {
    let item = answer.get("data").and_then(|d| d.get(0)).unwrap_or(answer);
    let url = url_of(item, "the finished generation")?;
    let cost_usd = answer
        .get("usage_cost_usd_micros")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=1e9).contains(c))
        .map(|micros| micros / 1e6);
    Ok((
        url,
        Generated {
            bytes: Vec::new(),
            cost_usd,
            provenance: Provenance {
                seed: item.get("seed").and_then(Value::as_u64),
                ..Provenance::default()
            },
        },
    ))
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
    let url = url_of(item, &format!("the answer ({})", snippet(&reply.body)))?;
    Ok((
        url,
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

/// The URL of an answer's image; an image Ideogram withheld as unsafe is a refusal. `what`
/// names the answer in the message when there is no URL.
fn url_of(item: &Value, what: &str) -> Result<String, Fault> {
    if item.get("is_image_safe").and_then(Value::as_bool) == Some(false) {
        return Err(Fault::new(
            FaultKind::Refused,
            "Ideogram withheld the image as unsafe (the request is billed)",
        ));
    }
    item.get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Fault::new(FaultKind::BadImage, format!("{what} has no image `url`")))
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
