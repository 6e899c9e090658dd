//! Recraft's image API, `POST {base-url}/images/generations` with a bearer key: the model, the
//! prompt, a size from the model family's table, and `response_format = "b64_json"`. Recraft's
//! own `style`, `substyle`, `style_id` and `controls` go through the profile's `extra`. Vector
//! models (`…_vector`) answer with an SVG, which is sanitized like every SVG master.

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::openai::Image;
use super::{Call, Fault, FaultKind, Generated, Provenance};

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let size = crate::models::recraft_size(&request.model, request.size);
    let prompt = super::prompt_as_sent(request);
    let mut body = json!({
        "model": request.model,
        "prompt": prompt,
        "size": size.to_string(),
        "n": 1,
        "response_format": "b64_json",
    });
    let fields = body.as_object_mut().expect("an object");
    if let Some(negative) = super::negative_field(request) {
        fields.insert("negative_prompt".into(), negative.into());
    }
    call.add_extra(fields);
    let auth = call.bearer();
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let url = format!("{}/images/generations", call.profile.base_url);
    let reply = call.http.post_json(&url, &headers, &body)?;
    let (image, mut generated) = read(&reply)?;
    generated.provenance.sent_size = (size != request.size).then(|| size.to_string());
    generated.bytes = image.bytes(call.http)?;
    Ok(generated)
}

/// Reads an answer `{created, credits, data: [{image_id, b64_json | url, revised_prompt}]}`,
/// or the fault an error answer tells of. Pure: any bytes in, never a panic.
pub(super) fn read(reply: &Reply) -> Result<(Image, Generated), Fault> {
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
    let image = Image::of(item, &reply.body)?;
    // API units, a thousand to the dollar.
    let cost_usd = answer
        .get("credits")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=1_000_000.0).contains(c))
        .map(|units| units / 1000.0);
    let text = |field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
    Ok((
        image,
        Generated {
            bytes: Vec::new(),
            cost_usd,
            provenance: Provenance {
                seed: None,
                revised_prompt: text("revised_prompt"),
                model_version: None,
                request_id: text("image_id"),
                sent_size: None,
            },
        },
    ))
}

/// Classifies an error answer. Recraft answers some errors in plain text (`request
/// unauthorized`) and others in JSON (`{"code", "message"}`).
fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let field = |name: &str| {
        answer
            .get(name)
            .or_else(|| answer.get("error").and_then(|e| e.get(name)))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = field("code").unwrap_or_default();
    let mut message = field("message")
        .or_else(|| field("detail"))
        .unwrap_or_else(|| snippet(&reply.body));
    if !code.is_empty() {
        message = format!("{message} [{code}]");
    }
    let mut fault = reply.status_fault(message);
    let lower = fault.message.to_ascii_lowercase();
    if reply.status == 402 || lower.contains("not enough credits") || lower.contains("insufficient")
    {
        fault.kind = FaultKind::Quota;
    } else if lower.contains("moderation")
        || lower.contains("inappropriate")
        || lower.contains("nsfw")
    {
        fault.kind = FaultKind::Refused;
    }
    fault
}
