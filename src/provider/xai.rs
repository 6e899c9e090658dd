//! xAI's image API, `POST {base-url}/images/generations` with a bearer key: OpenAI's request
//! shape with xAI's own size fields. The size becomes an `aspect_ratio` and a `resolution`
//! (`1k`, `2k`); `quality` is sent to the models that take it (`grok-imagine-image-2…`: `low`,
//! `medium`). Reference images go to `POST {base-url}/images/edits` as JSON, each a data URL
//! (xAI takes no multipart). The answer's `usage.cost_in_usd_ticks` (ten billion to the dollar)
//! is the record's cost; a `block_reason` is a refusal.

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::openai::Image;
use super::{Call, Fault, FaultKind, Generated, Provenance};
use crate::request::Request;

/// The aspect ratios every model takes (xAI's image generation guide, read 2026-12-05).
const RATIOS: [&str; 13] = [
    "1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9", "1:2",
    "2:1",
];

/// The ratios `grok-imagine-image-2.0` adds.
const RATIOS_2: [&str; 2] = ["21:9", "5:2"];

use crate::models::{xai_is_v2 as is_v2, xai_resolution as resolution};

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let (mut body, sent_size) = body(request);
    if let Some(fields) = body.as_object_mut() {
        call.add_extra(fields);
    }
    let auth = call.bearer();
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let route = if request.references.is_empty() {
        "images/generations"
    } else {
        "images/edits"
    };
    let url = format!("{}/{route}", call.profile.base_url);
    let reply = call.http.post_json(&url, &headers, &body)?;
    let (image, mut generated) = read(&reply)?;
    generated.provenance.sent_size = Some(sent_size);
    generated.bytes = image.bytes(call.http)?;
    Ok(generated)
}

/// The request body, and the size as sent (`16:9 1k`). Pure.
pub(crate) fn body(request: &Request) -> (Value, String) {
    let mut ratios: Vec<&'static str> = RATIOS.to_vec();
    if is_v2(&request.model) {
        ratios.extend(RATIOS_2);
    }
    let ratio = super::nearest_ratio(request.size, &ratios);
    let tier = resolution(request.size);
    let mut body = json!({
        "model": request.model,
        "prompt": super::prompt_as_sent(request),
        "n": 1,
        "response_format": "b64_json",
        "aspect_ratio": ratio,
        "resolution": tier,
    });
    let fields = body.as_object_mut().expect("an object");
    if let Some(quality) = request.quality.as_deref().filter(|q| *q != "auto") {
        fields.insert("quality".into(), quality.into());
    }
    let data_url = |r: &crate::request::RefImage| {
        json!({
            "type": "image_url",
            "url": format!("data:{};base64,{}", r.media_type, super::encode_base64(&r.bytes)),
        })
    };
    match request.references.as_slice() {
        [] => {}
        [one] if !is_v2(&request.model) => {
            fields.insert("image".into(), data_url(one));
        }
        many => {
            fields.insert("images".into(), many.iter().map(data_url).collect());
        }
    }
    (body, format!("{ratio} {tier}"))
}

/// Reads an answer `{data: [{b64_json | url, mime_type, revised_prompt}], usage, model,
/// block_reason}`, or the fault an error answer tells of. Pure: any bytes in, never a panic.
pub(crate) fn read(reply: &Reply) -> Result<(Image, Generated), Fault> {
    if !reply.is_success() {
        return Err(error(reply));
    }
    let answer = reply.json()?;
    if let Some(reason) = answer
        .get("block_reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
    {
        return Err(Fault::new(
            FaultKind::Refused,
            format!("xAI blocked the request: {reason}"),
        ));
    }
    let Some(item) = answer.get("data").and_then(|d| d.get(0)) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!("the answer holds no image: {}", snippet(&reply.body)),
        ));
    };
    let image = Image::of(item, &reply.body)?;
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned)
    };
    Ok((
        image,
        Generated {
            bytes: Vec::new(),
            cost_usd: cost(&answer),
            provenance: Provenance {
                seed: None,
                revised_prompt: text(item.get("revised_prompt")),
                model_version: text(answer.get("model")),
                request_id: reply.header("x-request-id").map(str::to_owned),
                sent_size: None,
            },
        },
    ))
}

/// The charge an answer reports: `usage.cost_in_usd_ticks`, ten billion to the dollar. A count
/// no image costs is not believed.
fn cost(answer: &Value) -> Option<f64> {
    answer
        .pointer("/usage/cost_in_usd_ticks")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && (0.0..=1e13).contains(t))
        .map(|ticks| ticks / 1e10)
}

/// Classifies an error answer `{"code", "error"}`: a wrong key is a 400 that says so, a
/// moderation rejection is a refusal, running out of credits is quota.
fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let message = answer
        .get("error")
        .and_then(|e| {
            e.as_str()
                .or_else(|| e.get("message").and_then(Value::as_str))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| snippet(&reply.body));
    let mut fault = reply.status_fault(message);
    let lower = fault.message.to_ascii_lowercase();
    if lower.contains("api key") {
        fault.kind = FaultKind::Auth;
    } else if lower.contains("moderation") || lower.contains("content policy") {
        fault.kind = FaultKind::Refused;
    } else if lower.contains("credits") || lower.contains("spending limit") {
        fault.kind = FaultKind::Quota;
    }
    fault.retry_after = fault
        .kind
        .retryable()
        .then(|| reply.retry_after())
        .flatten();
    fault
}
