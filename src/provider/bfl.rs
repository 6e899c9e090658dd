//! Black Forest Labs' FLUX API: `POST {base-url}/{model}` (the model is the route, such as
//! `flux-2-pro`) with the key in `x-key`; the answer is `{id, polling_url}`. The polling URL is
//! polled until its `status` is `Ready`, then `result.sample` is downloaded at once (it expires
//! after ten minutes).
//!
//! What a provider's answer may point us at is checked before it is followed: a polling or
//! sample URL must be https (or the configured server itself, as a loopback test server is),
//! and the key goes only to the configured host or another host of its site (BFL answers from
//! regional hosts such as `api.eu2.bfl.ai`); the sample is downloaded without it.

use serde_json::{Value, json};

use super::http::{Reply, may_send_key, snippet};
use super::poll::Step;
use super::{Call, Fault, FaultKind, Generated, Provenance};

/// The aspect ratios FLUX 3 takes instead of a width and height.
const FLUX_3_RATIOS: [&str; 15] = [
    "21:9", "2:1", "16:9", "3:2", "7:5", "4:3", "5:4", "1:1", "4:5", "3:4", "5:7", "2:3", "9:16",
    "1:2", "9:21",
];

/// The site BFL's regional hosts belong to: a polling URL under it gets the key, when the
/// configured host is under it too.
const SITE: &str = "bfl.ai";

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let headers = [
        ("x-key", call.key.map_or("", |k| k.expose())),
        ("accept", "application/json"),
    ];
    let (body, sent_size) = body(call);
    let url = format!("{}/{}", call.profile.base_url, request.model);
    let reply = call.http.post_json(&url, &headers, &body)?;
    if !reply.is_success() {
        return Err(error(&reply));
    }
    let submitted = reply.json()?;
    let id = submitted.get("id").and_then(Value::as_str).unwrap_or("");
    let Some(polling_url) = submitted.get("polling_url").and_then(Value::as_str) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!("the answer has no `polling_url`: {}", snippet(&reply.body)),
        ));
    };
    // Credits, one US cent each; the submit answer's figure is the charge.
    let cost_usd = submitted
        .get("cost")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=100_000.0).contains(c))
        .map(|credits| credits / 100.0);
    if !may_send_key(polling_url, &call.profile.base_url, Some(SITE)) {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "the answer asks to poll `{}`, which is neither https on the provider's own site nor the configured server; the key is never sent there",
                super::http::shorten(polling_url)
            ),
        ));
    }
    let ready = poll(call, polling_url, &headers)?;
    let result = ready.get("result").unwrap_or(&Value::Null);
    let Some(sample) = result.get("sample").and_then(Value::as_str) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            "the task is `Ready` but its result has no `sample` URL",
        ));
    };
    let bytes = call.http.download(sample).map_err(|mut fault| {
        if matches!(fault.kind, FaultKind::Auth | FaultKind::Invalid) {
            // A signed URL that no longer opens: it expired (after ten minutes) or was cut.
            fault.kind = FaultKind::Transient;
            fault.message.push_str(
                "; the sample URL has expired or is invalid (BFL keeps samples ten minutes), so the image is requested again",
            );
        }
        fault
    })?;
    Ok(Generated {
        bytes,
        cost_usd,
        provenance: Provenance {
            seed: result.get("seed").and_then(Value::as_u64),
            revised_prompt: None,
            model_version: None,
            request_id: (!id.is_empty()).then(|| id.to_owned()),
            sent_size,
        },
    })
}

/// The request body and the size as it was sent. FLUX.2 takes a width and height (multiples
/// of 16, at most four megapixels), FLUX.1 too (multiples of 32, 256 to 1440); FLUX1.1 [pro]
/// Ultra and Kontext take an aspect ratio; FLUX 3 an aspect ratio and a resolution tier.
fn body(call: &Call<'_>) -> (Value, Option<String>) {
    let request = call.request;
    let mut body = json!({ "prompt": super::prompt_as_sent(request) });
    let fields = body.as_object_mut().expect("an object");
    let sent_size = if let Some(ratios) = ratio_only(&request.model) {
        // FLUX1.1 [pro] Ultra and Kontext: about a megapixel, in a ratio within their range.
        let ratio = super::nearest_ratio(request.size, ratios);
        fields.insert("aspect_ratio".into(), ratio.into());
        fields.insert("output_format".into(), output_format(request).into());
        ratio.to_owned()
    } else if request.model.starts_with("flux-3") {
        let ratio = super::nearest_ratio(request.size, &FLUX_3_RATIOS);
        let pixels = f64::from(request.size.width) * f64::from(request.size.height);
        // The tier nearest in area (about 0.6, 1, 2.4, 4.2 and 16.8 megapixels): the bounds are
        // the geometric means of neighbours.
        let tier = match pixels {
            p if p <= 775_000.0 => "0.75k",
            p if p <= 1_550_000.0 => "1k",
            p if p <= 3_175_000.0 => "1.5k",
            p if p <= 8_400_000.0 => "2k",
            _ => "4k",
        };
        fields.insert("aspect_ratio".into(), ratio.into());
        fields.insert("resolution".into(), tier.into());
        format!("{ratio} {tier}")
    } else {
        let size = crate::models::bfl_size(&request.model, request.size);
        fields.insert("width".into(), size.width.into());
        fields.insert("height".into(), size.height.into());
        fields.insert("output_format".into(), output_format(request).into());
        size.to_string()
    };
    if let Some(seed) = super::seed_sent(request) {
        fields.insert("seed".into(), seed.into());
    }
    // Only the flex models take their steps and guidance.
    if request.model.contains("flex") {
        if let Some(steps) = request.params.get("steps") {
            fields.insert("steps".into(), steps.parse::<u64>().unwrap_or(50).into());
        }
        if let Some(guidance) = request.params.get("cfg-scale") {
            fields.insert(
                "guidance".into(),
                guidance.parse::<f64>().unwrap_or(4.5).into(),
            );
        }
    }
    // Reference images: `input_image`, then `input_image_2` to `input_image_8`, as base64.
    for (i, reference) in request.references.iter().enumerate() {
        let field = match i {
            0 => "input_image".to_owned(),
            n => format!("input_image_{}", n + 1),
        };
        fields.insert(field, super::encode_base64(&reference.bytes).into());
    }
    call.add_extra(fields);
    let sent_size = (sent_size != request.size.to_string()).then_some(sent_size);
    (body, sent_size)
}

/// The format asked for: `png` unless the profile sets `jpeg`.
fn output_format(request: &crate::request::Request) -> &str {
    request
        .params
        .get("output-format")
        .map_or("png", String::as_str)
}

/// The aspect ratios a model that takes no width and height is asked for: FLUX1.1 [pro] Ultra
/// takes 21:9 to 9:21, Kontext 7:3 to 3:7 (BFL's API reference, read 2026-12-05).
fn ratio_only(model: &str) -> Option<&'static [&'static str]> {
    const ULTRA: &[&str] = &[
        "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21",
    ];
    const KONTEXT: &[&str] = &[
        "7:3", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "3:7",
    ];
    if model.starts_with("flux-pro-1.1-ultra") {
        Some(ULTRA)
    } else if model.contains("kontext") {
        Some(KONTEXT)
    } else {
        None
    }
}

/// Polls until the task is `Ready` ([`super::poll::until_done`]). `Pending`, FLUX 3's
/// `Reasoning` and `Generating`, and any status this version does not know mean wait.
fn poll(call: &Call<'_>, url: &str, headers: &[(&str, &str)]) -> Result<Value, Fault> {
    super::poll::until_done(call, url, headers, "task", error, |answer| {
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match status.as_str() {
            "Ready" => Step::Done(answer),
            "Request Moderated" | "Content Moderated" => Step::Fail(moderated(&status, &answer)),
            "Task not found" => Step::Fail(Fault::new(
                FaultKind::Transient,
                "Task not found: the task expired or was lost; it is submitted again",
            )),
            "Error" | "Failed" => {
                let details = answer
                    .get("details")
                    .map(Value::to_string)
                    .unwrap_or_default();
                Step::Fail(Fault::new(
                    FaultKind::Transient,
                    format!("the task ended with status `{status}` {details}"),
                ))
            }
            _ => Step::Wait(status),
        }
    })
}

/// The refusal of a moderated task, with BFL's reasons.
fn moderated(status: &str, answer: &Value) -> Fault {
    let reasons = super::http::texts(answer.pointer("/details/Moderation Reasons"));
    let reasons = if reasons.is_empty() {
        reasons
    } else {
        format!(" ({reasons})")
    };
    let what = if status == "Request Moderated" {
        "the prompt"
    } else {
        "the image"
    };
    Fault::new(
        FaultKind::Refused,
        format!("{status}: moderation flagged {what}{reasons}"),
    )
}

/// Classifies an error answer: FastAPI's `{"detail": …}` (a text, or a list of `{loc, msg}`).
pub(super) fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let message = match answer.get("detail") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => super::http::validation_errors(items),
        _ => snippet(&reply.body),
    };
    let mut fault = reply.status_fault(message);
    if reply.status == 402 {
        fault.kind = FaultKind::Quota;
    }
    fault
}
