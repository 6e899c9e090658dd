//! OpenAI's Images API, `POST {base-url}/images/generations`, and the servers that copy it.
//!
//! `openai` sends exactly what the GPT image models take (see [`body`]) and reads `b64_json`. `openai-compatible`
//! (stable-diffusion.cpp's server, LocalAI, Together, …) sends the size as asked plus the
//! negative prompt and seed, asks for base64, and parses tolerantly: `b64_json` or a `url` that
//! is downloaded at once, Ollama's `{"image": …}`, unknown fields ignored.
//!
//! A request with reference images goes to `POST {base-url}/images/edits` instead, as
//! `multipart/form-data`: the same fields as text parts, then one `image[]` file part per
//! reference (up to 16 for the GPT image models; stable-diffusion.cpp's server takes the same).

use serde_json::{Value, json};

use super::http::{Form, Http, Reply, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance, decode_base64};
use crate::config::{Profile, ProviderKind};
use crate::request::Request;

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let mut images = call_n(call)?;
    Ok(images.swap_remove(0))
}

/// Asks for `call.n` images in one request (`n`), and returns those the answer holds (at least
/// one). The answer's token cost is shared among them.
pub(super) fn call_n(call: &Call<'_>) -> Result<Vec<Generated>, Fault> {
    let request = call.request;
    let (body, sent_size) = body(request, call.profile, call.n);
    let auth = call.bearer();
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let reply = if request.references.is_empty() {
        let url = format!("{}/images/generations", call.profile.base_url);
        call.http.post_json(&url, &headers, &body)?
    } else {
        let url = format!("{}/images/edits", call.profile.base_url);
        let (content_type, form) = edit_form(&body, &request.references, request.mask.as_ref());
        call.http.post(&url, &headers, &content_type, form)?
    };
    let answers = read_all(&reply, &request.model, sent_size)?;
    let mut images = Vec::with_capacity(answers.len());
    for answer in answers.into_iter().take(call.n.max(1) as usize) {
        images.push(Generated {
            bytes: answer.image.bytes(call.http)?,
            cost_usd: answer.cost_usd,
            provenance: answer.provenance,
        });
    }
    Ok(images)
}

/// The fields of a request for `n` images, and the size as sent. A request with references
/// goes to the edits endpoint with these fields as text parts (see [`edit_form`]). Pure.
///
/// OpenAI's own API (the `openai` kind, and an `openai-compatible` profile pointed at it) gets
/// exactly what the model's reference lists: the negative prompt folded into the prompt, the
/// size fitted to the model's rules (or `auto`), no `response_format` (GPT image models always
/// answer in base64), `moderation` on generations only, `input_fidelity` on edits only, and one
/// image when it answers in SVG. Any other compatible server gets the size as asked with the
/// negative prompt, seed and steps in fields of their own, and is asked for base64.
pub(crate) fn body(request: &Request, profile: &Profile, n: u32) -> (Value, String) {
    let openai = profile.rules() == ProviderKind::OpenAi;
    let edit = !request.references.is_empty();
    let param = |key: &str| request.params.get(key).map(String::as_str);
    let svg = param("output-format") == Some("svg");
    let mut body = json!({
        "model": request.model,
        "n": if svg { 1 } else { n },
    });
    let fields = body.as_object_mut().expect("an object");
    let sent_size = if openai {
        fields.insert("prompt".into(), request.prompt_with_negative().into());
        if request.seed.is_some() {
            tracing::debug!("OpenAI image models take no seed; `seed` only names the cache entry");
        }
        if request.auto_size {
            "auto".to_owned()
        } else {
            crate::models::openai_size(&request.model, request.size).to_string()
        }
    } else {
        fields.insert("prompt".into(), request.prompt.clone().into());
        fields.insert("response_format".into(), "b64_json".into());
        if let Some(negative) = super::negative_field(request) {
            fields.insert("negative_prompt".into(), negative.into());
        }
        if let Some(seed) = super::seed_sent(request) {
            fields.insert("seed".into(), seed.into());
        }
        if let Some(steps) = param("steps") {
            fields.insert("steps".into(), steps.parse::<u64>().unwrap_or(0).into());
        }
        request.size.to_string()
    };
    fields.insert("size".into(), sent_size.clone().into());
    if let Some(quality) = &request.quality {
        fields.insert("quality".into(), quality.clone().into());
    }
    for (param_name, field, sent) in [
        ("output-format", "output_format", true),
        ("background", "background", true),
        ("complexity", "complexity", true),
        // The multipart edit form has no `moderation`; generations take no fidelity.
        ("moderation", "moderation", !edit),
        ("input-fidelity", "input_fidelity", edit),
    ] {
        if let Some(value) = param(param_name).filter(|_| sent) {
            fields.insert(field.into(), value.into());
        }
    }
    for (name, value) in &profile.extra {
        fields.insert(name.clone(), value.clone());
    }
    (body, sent_size)
}

/// The multipart body of an edit: every field of `body` as text (in order), then the images,
/// then the mask (which applies to the first image).
fn edit_form(
    body: &Value,
    references: &[crate::request::RefImage],
    mask: Option<&crate::request::RefImage>,
) -> (String, Vec<u8>) {
    let mut form = Form::default();
    for (name, value) in body.as_object().into_iter().flatten() {
        match value {
            Value::Null => {}
            Value::String(text) => form.field(name, text),
            other => form.field(name, &other.to_string()),
        }
    }
    for (i, reference) in references.iter().enumerate() {
        form.file(
            "image[]",
            &format!("reference-{}.{}", i + 1, reference.extension()),
            reference.media_type,
            &reference.bytes,
        );
    }
    if let Some(mask) = mask {
        form.file("mask", "mask.png", mask.media_type, &mask.bytes);
    }
    form.finish()
}

/// An image as an answer carries it.
#[derive(Debug)]
pub(super) enum Image {
    Bytes(Vec<u8>),
    /// To download at once (DALL·E-style and some compatible servers).
    Url(String),
}

impl Image {
    /// The image an answer's item carries: `b64_json` (or Ollama's `image`) decoded, or a
    /// `url` to download.
    pub(super) fn of(item: &Value, body: &[u8]) -> Result<Image, Fault> {
        let b64 = item
            .get("b64_json")
            .or_else(|| item.get("image"))
            .and_then(Value::as_str);
        match (b64, item.get("url").and_then(Value::as_str)) {
            (Some(b64), _) => Ok(Image::Bytes(decode_base64(b64)?)),
            (None, Some(url)) => Ok(Image::Url(url.to_owned())),
            (None, None) => Err(Fault::new(
                FaultKind::BadImage,
                format!(
                    "the answer's image has neither `b64_json` nor `url`: {}",
                    snippet(body)
                ),
            )),
        }
    }

    /// The image's bytes, downloaded at once when it is a URL (see [`Http::download`]).
    pub(super) fn bytes(self, http: &Http) -> Result<Vec<u8>, Fault> {
        match self {
            Image::Bytes(bytes) => Ok(bytes),
            Image::Url(url) => http.download(&url),
        }
    }
}

/// What an answer says.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) image: Image,
    pub(super) cost_usd: Option<f64>,
    pub(super) provenance: Provenance,
}

/// Reads an answer: every image of `data[]` (asked for with `n`; `b64_json`, or a `url` to
/// download) or Ollama's `{"image": …}`, with the request id, revised prompt and token usage;
/// or the fault the error envelope tells of. Each image gets an equal share of the answer's
/// token cost. Pure: any bytes in, never a panic.
pub(super) fn read_all(
    reply: &Reply,
    model: &str,
    sent_size: String,
) -> Result<Vec<Answer>, Fault> {
    let request_id = reply.header("x-request-id").map(str::to_owned);
    if !reply.is_success() {
        return Err(error(reply, request_id.as_deref()));
    }
    let answer = reply.json()?;
    let items: Vec<&Value> = match answer.get("data").and_then(Value::as_array) {
        Some(data) => data
            .iter()
            .take(crate::directive::MAX_VARIANTS as usize)
            .collect(),
        None => answer
            .get("image")
            .map(|_| vec![&answer])
            .unwrap_or_default(),
    };
    if items.is_empty() {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!("the answer holds no image: {}", snippet(&reply.body)),
        ));
    }
    let cost = usage_cost(model, answer.get("usage")).map(|c| c / items.len() as f64);
    items
        .into_iter()
        .map(|item| {
            Ok(Answer {
                image: Image::of(item, &reply.body)?,
                cost_usd: cost,
                provenance: Provenance {
                    seed: None,
                    revised_prompt: item
                        .get("revised_prompt")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    model_version: None,
                    request_id: request_id.clone(),
                    sent_size: Some(sent_size.clone()),
                },
            })
        })
        .collect()
}

/// The price from `usage`, for the models billed per token.
fn usage_cost(model: &str, usage: Option<&Value>) -> Option<f64> {
    if !model.starts_with("gpt-image-2") {
        return None;
    }
    let usage = usage?;
    // A count no image takes is not believed (an answer could make the cost infinite).
    let tokens = |field: &str| {
        usage
            .get(field)
            .and_then(Value::as_f64)
            .filter(|n| (0.0..=1e8).contains(n))
    };
    let output = tokens("output_tokens")?;
    let input = tokens("input_tokens").unwrap_or(0.0);
    Some((input * 5.0 + output * 30.0) / 1_000_000.0)
}

/// Classifies an error answer from its envelope `{"error": {"message", "type", "code"}}`.
pub(super) fn error(reply: &Reply, request_id: Option<&str>) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let error = answer.get("error").unwrap_or(&answer);
    let text = |field: &str| error.get(field).and_then(Value::as_str).unwrap_or("");
    let code = text("code");
    let kind_name = text("type");
    let mut message = match error.get("message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => match answer.get("detail") {
            Some(Value::String(detail)) => detail.clone(),
            Some(detail) => detail.to_string(),
            None => snippet(&reply.body),
        },
    };
    if !code.is_empty() {
        message = format!("{message} [{code}]");
    }
    if let Some(id) = request_id {
        message = format!("{message} (request {id})");
    }
    let mut fault = reply.status_fault(message);
    if matches!(code, "moderation_blocked" | "content_policy_violation")
        || kind_name == "image_generation_user_error"
    {
        fault.kind = FaultKind::Refused;
    } else if code == "insufficient_quota" {
        fault.kind = FaultKind::Quota;
    } else if code == "organization_must_be_verified" {
        fault.message.push_str(
            "; verify the organization in OpenAI's settings before using GPT image models",
        );
    }
    match reply.header("x-should-retry") {
        Some("true") if !fault.kind.retryable() && fault.kind != FaultKind::Refused => {
            fault.kind = FaultKind::Transient;
        }
        Some("false") if fault.kind.retryable() => fault.kind = FaultKind::Invalid,
        _ => {}
    }
    fault.retry_after = fault
        .kind
        .retryable()
        .then(|| reply.retry_after())
        .flatten();
    fault
}
