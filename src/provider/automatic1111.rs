//! The AUTOMATIC1111 / Forge / SD.Next web UI API, `POST {base-url}/sdapi/v1/txt2img` (also
//! served by stable-diffusion.cpp's server).
//!
//! The model is the checkpoint, sent as `override_settings.sd_model_checkpoint`. The answer's
//! `info` is JSON inside a string; the seed actually used is read from it. A key, when set, is
//! `user:password` for the server's `--api-auth` (HTTP Basic).

use serde_json::{Value, json};

use super::http::{Reply, snippet};
use super::{Call, Fault, FaultKind, Generated, Provenance, decode_base64};

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let round = |side: u32| (side.div_ceil(8) * 8).max(64);
    let mut body = json!({
        "prompt": request.prompt,
        "negative_prompt": super::negative_field(request).unwrap_or_default(),
        "seed": super::seed_sent(request).map_or(-1, |s| (s % (1 << 32)) as i64),
        "width": round(request.size.width),
        "height": round(request.size.height),
        "batch_size": 1,
        "n_iter": 1,
        "save_images": false,
        "send_images": true,
        "override_settings": { "sd_model_checkpoint": request.model },
    });
    let fields = body.as_object_mut().expect("an object");
    for (param, field) in [
        ("steps", "steps"),
        ("cfg-scale", "cfg_scale"),
        ("sampler", "sampler_name"),
        ("scheduler", "scheduler"),
    ] {
        if let Some(value) = request.params.get(param) {
            let value = match param {
                "steps" => value.parse::<u64>().map_or(Value::Null, Value::from),
                "cfg-scale" => value.parse::<f64>().map_or(Value::Null, Value::from),
                _ => value.clone().into(),
            };
            fields.insert(field.into(), value);
        }
    }
    call.add_extra(fields);

    let auth = call.key.map(|key| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(key.expose())
        )
    });
    let mut headers = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let url = format!("{}/sdapi/v1/txt2img", call.profile.base_url);
    let reply = call.http.post_json(&url, &headers, &body)?;
    let sent_size = format!(
        "{}x{}",
        round(request.size.width),
        round(request.size.height)
    );
    read(&reply, sent_size)
}

/// Reads an answer: the first image, and the seed from `info` (JSON inside a string), or the
/// fault it tells of. Pure: any bytes in, never a panic.
pub(super) fn read(reply: &Reply, sent_size: String) -> Result<Generated, Fault> {
    if !reply.is_success() {
        return Err(error(reply));
    }
    let answer = reply.json()?;
    let image = answer
        .pointer("/images/0")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Fault::new(
                FaultKind::BadImage,
                format!("the answer holds no image: {}", snippet(&reply.body)),
            )
        })?;
    // `info` is a JSON document inside a string.
    let info: Value = answer
        .get("info")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let seed = info
        .get("seed")
        .and_then(Value::as_u64)
        .or_else(|| info.pointer("/all_seeds/0").and_then(Value::as_u64));
    Ok(Generated {
        bytes: decode_base64(image)?,
        cost_usd: None,
        provenance: Provenance {
            seed,
            revised_prompt: None,
            model_version: info
                .get("sd_model_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            request_id: None,
            sent_size: Some(sent_size),
        },
    })
}

/// Classifies an error answer: FastAPI's 422 `{"detail": [{"loc", "msg"}]}` or the web UI's
/// `{"error", "detail", "errors"}`.
fn error(reply: &Reply) -> Fault {
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let message = match answer.get("detail") {
        Some(Value::Array(items)) => super::http::validation_errors(items),
        Some(Value::String(detail)) => {
            let error = answer.get("error").and_then(Value::as_str).unwrap_or("");
            let errors = answer.get("errors").and_then(Value::as_str).unwrap_or("");
            [error, detail.as_str(), errors]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ")
        }
        _ => snippet(&reply.body),
    };
    let mut fault = reply.status_fault(message);
    if reply.status == 401 {
        fault
            .message
            .push_str("; the server wants `--api-auth` credentials as `user:password` in the key");
    }
    fault
}
