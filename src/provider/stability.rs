//! Stability AI's v2beta stable-image API: `POST {base-url}/v2beta/stable-image/generate/{core|
//! ultra|sd3}` as `multipart/form-data`, with `accept: image/*`.
//!
//! The model picks the endpoint (`core`, `ultra`, or an `sd3…` model sent in the `model` field).
//! The answer is the image itself, with `finish-reason` and `seed` headers; a `CONTENT_FILTERED`
//! finish is a refusal (the image is blurred) and is never cached.

use serde_json::Value;

use super::http::{Form, Reply, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance, decode_base64, nearest_ratio};

const RATIOS: [&str; 9] = [
    "16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21",
];

/// The wait after a 429: Stability blocks a client for 60 seconds and sends no hint.
const RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let (endpoint, model_field) = match request.model.as_str() {
        "core" | "ultra" => (request.model.as_str(), None),
        model if model.starts_with("sd3") => ("sd3", Some(model)),
        other => {
            return Err(Fault::new(
                FaultKind::Invalid,
                format!(
                    "unknown Stability model `{other}`; use `core`, `ultra`, `sd3.5-large`, `sd3.5-large-turbo` or `sd3.5-medium`"
                ),
            ));
        }
    };
    let mut form = Form::default();
    form.field("prompt", &request.prompt);
    let aspect_ratio = nearest_ratio(request.size, &RATIOS);
    form.field("aspect_ratio", aspect_ratio);
    if let Some(negative) = super::negative_field(request) {
        form.field("negative_prompt", negative);
    }
    if let Some(seed) = super::seed_sent(request) {
        form.field("seed", &(seed % 4_294_967_295).to_string());
    }
    form.field(
        "output_format",
        request
            .params
            .get("output-format")
            .map_or("png", String::as_str),
    );
    if let Some(preset) = request.params.get("style-preset") {
        form.field("style_preset", preset);
    }
    if let Some(model) = model_field {
        form.field("model", model);
        if let Some(cfg) = request.params.get("cfg-scale") {
            form.field("cfg_scale", cfg);
        }
    }
    let (content_type, body) = form.finish();

    let auth = call.bearer();
    let mut headers = vec![("accept", "image/*")];
    headers.extend(auth.iter().map(|a| ("authorization", a.as_str())));
    let url = format!(
        "{}/v2beta/stable-image/generate/{endpoint}",
        call.profile.base_url
    );
    let reply = call.http.post(&url, &headers, &content_type, body)?;
    read(&reply, aspect_ratio)
}

/// Reads an answer: the image itself with `finish-reason` and `seed` headers, or JSON with the
/// same, or the fault it tells of. Pure: any bytes in, never a panic.
pub(super) fn read(reply: &Reply, aspect_ratio: &str) -> Result<Generated, Fault> {
    if !reply.is_success() {
        return Err(error(reply));
    }
    let is_json = reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    let (bytes, finish, seed) = if is_json {
        let answer = reply.json()?;
        let image = answer.get("image").and_then(Value::as_str).ok_or_else(|| {
            Fault::new(
                FaultKind::BadImage,
                format!("the answer holds no image: {}", snippet(&reply.body)),
            )
        })?;
        (
            decode_base64(image)?,
            answer
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            answer.get("seed").and_then(Value::as_u64),
        )
    } else {
        (
            reply.body.clone(),
            reply.header("finish-reason").map(str::to_owned),
            reply.header("seed").and_then(|s| s.trim().parse().ok()),
        )
    };
    if finish.as_deref() == Some("CONTENT_FILTERED") {
        return Err(Fault::new(
            FaultKind::Refused,
            "the image was filtered by content moderation (finish reason CONTENT_FILTERED)",
        ));
    }
    Ok(Generated {
        bytes,
        cost_usd: None,
        provenance: Provenance {
            seed,
            revised_prompt: None,
            model_version: None,
            request_id: None,
            sent_size: Some(aspect_ratio.to_owned()),
        },
    })
}

/// Classifies an error answer `{"id", "name", "errors": [...]}`.
fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let name = answer.get("name").and_then(Value::as_str).unwrap_or("");
    let errors: Vec<&str> = answer
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut message = if errors.is_empty() {
        snippet(&reply.body)
    } else {
        errors.join("; ")
    };
    if !name.is_empty() {
        message = format!("{message} [{name}]");
    }
    if let Some(id) = answer.get("id").and_then(Value::as_str) {
        message = format!("{message} (request {id})");
    }
    let mut fault = reply.status_fault(message);
    if name == "content_moderation" {
        fault.kind = FaultKind::Refused;
    } else if reply.status == 402 || name == "payment_required" {
        fault.kind = FaultKind::Quota;
    } else if reply.status == 429 && fault.retry_after.is_none() {
        fault.retry_after = Some(RATE_LIMIT_WAIT);
    }
    fault
}
