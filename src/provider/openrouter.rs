//! OpenRouter: one key for many providers' image models, through chat completions. `POST
//! {base-url}/chat/completions` with the model, the prompt as a user message, `modalities` and
//! `image_config` (an aspect ratio, and a size tier for Google's models); the image comes back
//! as a data URL in `choices[0].message.images[]`, the price in `usage.cost` (US dollars).
//!
//! Models that make only images (FLUX, Recraft, Seedream, …) are asked for `["image"]`; the
//! models that also write (Google's, OpenAI's) for `["image", "text"]`. A profile's `extra`
//! overrides either, and adds any field the model takes.

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance, decode_base64, nearest_ratio};

/// The aspect ratios every image model on OpenRouter takes.
const RATIOS: [&str; 10] = [
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];

/// The largest cost an answer is believed for one image, in US dollars.
const MAX_COST: f64 = 100.0;

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let model = request.model.as_str();
    let writes_too = model.starts_with("google/") || model.starts_with("openai/");
    let modalities: &[&str] = if writes_too {
        &["image", "text"]
    } else {
        &["image"]
    };
    let ratio = nearest_ratio(request.size, &RATIOS);
    let mut image_config = json!({ "aspect_ratio": ratio });
    let mut sent_size = ratio.to_owned();
    if model.starts_with("google/") {
        let tier = match request.size.width.max(request.size.height) {
            0..=1024 => "1K",
            1025..=2048 => "2K",
            _ => "4K",
        };
        image_config["image_size"] = tier.into();
        sent_size = format!("{ratio} {tier}");
    }
    // Reference images go with the prompt as `image_url` parts (data URLs).
    let content = if request.references.is_empty() {
        json!(super::prompt_as_sent(request))
    } else {
        let mut parts = vec![json!({ "type": "text", "text": super::prompt_as_sent(request) })];
        parts.extend(request.references.iter().map(|r| {
            json!({
                "type": "image_url",
                "image_url": { "url": format!("data:{};base64,{}", r.media_type, super::encode_base64(&r.bytes)) },
            })
        }));
        json!(parts)
    };
    let mut body = json!({
        "model": model,
        "messages": [{ "role": "user", "content": content }],
        "modalities": modalities,
        "image_config": image_config,
    });
    let fields = body.as_object_mut().expect("an object");
    if let Some(seed) = super::seed_sent(request) {
        fields.insert("seed".into(), seed.into());
    }
    call.add_extra(fields);
    let auth = call.bearer();
    let mut headers = vec![("x-title", "mdbook-imagegen")];
    headers.extend(auth.iter().map(|a| ("authorization", a.as_str())));
    let url = format!("{}/chat/completions", call.profile.base_url);
    let reply = call.http.post_json(&url, &headers, &body)?;
    let mut generated = read(&reply)?;
    generated.provenance.sent_size = Some(sent_size);
    Ok(generated)
}

/// Reads an answer: the first image of the first choice, the cost, the id and the model that
/// answered; or the fault an error tells of, which may come with a 200 when the model failed
/// after the request was accepted. Pure: any bytes in, never a panic.
pub(super) fn read(reply: &Reply) -> Result<Generated, Fault> {
    if !reply.is_success() {
        return Err(error(reply, reply.status));
    }
    let answer = reply.json()?;
    if answer.get("error").is_some_and(|e| !e.is_null()) {
        let code = answer
            .pointer("/error/code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(502);
        return Err(error(reply, code));
    }
    let choice = answer.pointer("/choices/0").unwrap_or(&Value::Null);
    let url = choice
        .pointer("/message/images")
        .and_then(Value::as_array)
        .and_then(|images| {
            images.iter().find_map(|image| {
                image
                    .pointer("/image_url/url")
                    .or_else(|| image.get("url"))
                    .and_then(Value::as_str)
            })
        });
    let Some(url) = url else {
        return Err(no_image(choice));
    };
    if !url.starts_with("data:") {
        return Err(Fault::new(
            FaultKind::BadImage,
            "the answer's image is not a data URL; only inline images are accepted",
        ));
    }
    let bytes = decode_base64(url)?;
    let cost_usd = answer
        .pointer("/usage/cost")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=MAX_COST).contains(c));
    let text = |pointer: &str| {
        answer
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(Generated {
        bytes,
        cost_usd,
        provenance: Provenance {
            seed: None,
            revised_prompt: None,
            model_version: text("/model"),
            request_id: text("/id"),
            sent_size: None,
        },
    })
}

/// The fault of an answer without an image: a refusal when its finish reason says so
/// (`content_filter`, Google's `IMAGE_SAFETY`, …), else an empty answer (retried once), quoting
/// what the model wrote instead.
fn no_image(choice: &Value) -> Fault {
    let finish = [
        choice.get("finish_reason"),
        choice.get("native_finish_reason"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .collect::<Vec<_>>()
    .join(" ");
    let said = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let upper = finish.to_ascii_uppercase();
    let refused = [
        "CONTENT_FILTER",
        "SAFETY",
        "PROHIBITED",
        "BLOCKLIST",
        "RECITATION",
    ]
    .iter()
    .any(|r| upper.contains(r));
    let kind = if refused {
        FaultKind::Refused
    } else {
        FaultKind::Empty
    };
    let finish = if finish.is_empty() {
        String::new()
    } else {
        format!(" (finish: {finish})")
    };
    Fault::new(kind, format!("the answer holds no image{finish}{said}"))
}

/// Classifies an error `{"error": {"code", "message", "metadata"}}` by its code (the HTTP
/// status, also inside a 200 when the model failed late): 402 is credit, 403 with moderation
/// reasons a refusal.
fn error(reply: &Reply, code: u16) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let error = answer.get("error").unwrap_or(&answer);
    let mut message = error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| snippet(&reply.body), str::to_owned);
    let metadata = error.get("metadata").unwrap_or(&Value::Null);
    let reasons = super::http::texts(metadata.get("reasons"));
    if !reasons.is_empty() {
        message = format!("{message} (flagged: {reasons})");
    }
    if let Some(provider) = metadata.get("provider_name").and_then(Value::as_str) {
        message = format!("{message} [from {provider}]");
    }
    let mut fault = Reply {
        status: code,
        headers: reply.headers.clone(),
        body: Vec::new(),
    }
    .status_fault(message);
    match code {
        402 => fault.kind = FaultKind::Quota,
        403 if !reasons.is_empty() || metadata.get("flagged_input").is_some() => {
            fault.kind = FaultKind::Refused;
        }
        _ => {}
    }
    fault
}
