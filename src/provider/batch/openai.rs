//! OpenAI's Batch API for images (`/v1/images/generations`, `/v1/images/edits`): the JSONL
//! input file, `POST /files` (`purpose=batch`), `POST /batches`, `GET /batches/{id}`, and the
//! output and error files through `GET /files/{id}/content`.

use serde_json::{Value, json};

use super::{
    Answer, Batch, BatchState, Chunk, Client, Item, Results, count, malformed, once, text,
};
use crate::config::Profile;
use crate::provider::http::{Form, Reply};
use crate::provider::{Fault, FaultKind, Generated};

/// The most requests one input file takes.
pub(super) const MAX_REQUESTS: usize = 50_000;

/// The largest input file, in bytes (200 MB).
pub(super) const MAX_FILE_BYTES: usize = 200 * 1000 * 1000;

const GENERATIONS: &str = "/v1/images/generations";
const EDITS: &str = "/v1/images/edits";

/// One line of the input file: the key as `custom_id`, and the body a synchronous call sends.
/// An edit goes as the JSON form of `/images/edits` (a line cannot be multipart): each image
/// and the mask as a data URL. Pure.
pub(super) fn line(item: &Item<'_>, profile: &Profile) -> (&'static str, Vec<u8>) {
    let request = item.request;
    let (mut body, _) = crate::provider::openai::body(request, profile, 1);
    let endpoint = if request.references.is_empty() {
        GENERATIONS
    } else {
        let data_url = |r: &crate::request::RefImage| {
            format!(
                "data:{};base64,{}",
                r.media_type,
                crate::provider::encode_base64(&r.bytes)
            )
        };
        body["images"] = request
            .references
            .iter()
            .map(|r| json!({ "image_url": data_url(r) }))
            .collect();
        if let Some(mask) = &request.mask {
            body["mask"] = json!({ "image_url": data_url(mask) });
        }
        EDITS
    };
    let line = json!({
        "custom_id": item.key.to_hex(),
        "method": "POST",
        "url": endpoint,
        "body": body,
    });
    (
        endpoint,
        serde_json::to_vec(&line).expect("a JSON value always serialises"),
    )
}

/// Uploads the chunk's file and makes a batch of it.
pub(super) fn submit(client: &Client<'_>, chunk: &Chunk, attempt: u32) -> Result<Batch, Fault> {
    let auth = client.key.as_ref().map(crate::provider::Secret::bearer);
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let mut form = Form::default();
    form.field("purpose", "batch");
    form.file(
        "file",
        &format!("imagegen-{attempt}.jsonl"),
        "application/jsonl",
        &chunk.jsonl,
    );
    let (content_type, body) = form.finish();
    let reply = client
        .http
        .post(&client.url("/files"), &headers, &content_type, body)?;
    let file = ok(&reply)?;
    let file_id = text(&file, "/id")
        .filter(|id| crate::batch::state::plain_id(id))
        .ok_or_else(|| malformed(&reply, "a file with an id"))?;
    let create = json!({
        "input_file_id": file_id,
        "endpoint": chunk.endpoint,
        "completion_window": "24h",
        "metadata": { "made-by": "mdbook-imagegen" },
    });
    let reply = client
        .http
        .post_json(&client.url("/batches"), &headers, &create)
        .map_err(once)?;
    batch(&reply).map_err(once)
}

/// The batch `id` now.
pub(super) fn get(client: &Client<'_>, id: &str) -> Result<Batch, Fault> {
    if !crate::batch::state::plain_id(id) {
        return Err(Fault::new(
            FaultKind::Invalid,
            format!("`{id}` is not a batch id"),
        ));
    }
    let auth = client.key.as_ref().map(crate::provider::Secret::bearer);
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let reply = client.http.get(
        &client.url(&format!("/batches/{id}")),
        &headers,
        super::FILE_TIMEOUT,
    )?;
    batch(&reply)
}

/// Reads one of a batch's files (output or errors), streaming, and hands on each line's answer.
pub(super) fn read_file(
    client: &Client<'_>,
    file: &str,
    model: &str,
    each: &mut dyn FnMut(Answer),
) -> Result<(), Fault> {
    let auth = client.key.as_ref().map(crate::provider::Secret::bearer);
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let url = client.url(&format!("/files/{file}/content"));
    let read = client
        .http
        .get_lines(&url, &headers, super::MAX_LINE_BYTES, &mut |line| {
            each(answer(line, model, client));
            Ok(())
        })?;
    read.map_err(|reply| crate::provider::openai::error(&reply, None))
}

/// One line of an output or error file: `{"custom_id", "response": {"status_code",
/// "request_id", "body"}, "error": {"code", "message"}}`, read as the synchronous answer
/// would be. A line that cannot be read names no key (and is reported as such).
fn answer(line: &[u8], model: &str, client: &Client<'_>) -> Answer {
    let Ok(value) = serde_json::from_slice::<Value>(line) else {
        return super::not_json(line);
    };
    let key = text(&value, "/custom_id").unwrap_or_default();
    let result = match (value.get("response"), value.get("error")) {
        (Some(response), _) if response.is_object() => {
            let status = count(response, "/status_code");
            let mut headers = ureq::http::HeaderMap::new();
            if let Some(id) = response.get("request_id").and_then(Value::as_str)
                && let Ok(id) = id.parse()
            {
                headers.insert("x-request-id", id);
            }
            let reply = Reply {
                status: u16::try_from(status).unwrap_or(500),
                headers,
                body: serde_json::to_vec(response.get("body").unwrap_or(&Value::Null))
                    .unwrap_or_default(),
            };
            crate::provider::openai::read_all(&reply, model, String::new()).and_then(
                |mut answers| {
                    let first = answers.swap_remove(0);
                    Ok(Generated {
                        bytes: first.image.bytes(&client.http)?,
                        cost_usd: first.cost_usd,
                        provenance: first.provenance,
                    })
                },
            )
        }
        (_, Some(error)) if error.is_object() => {
            // Raw: secrets are redacted from the message before anything else is done with it.
            let raw = |field: &str| error.get(field).and_then(Value::as_str).unwrap_or_default();
            let (code, message) = (raw("code").to_owned(), raw("message"));
            let kind = if matches!(
                code.as_str(),
                "moderation_blocked" | "content_policy_violation"
            ) {
                FaultKind::Refused
            } else {
                FaultKind::Invalid
            };
            Err(Fault::new(kind, format!("{message} [{code}]")))
        }
        _ => Err(Fault::new(
            FaultKind::BadImage,
            "the line has neither a response nor an error".to_owned(),
        )),
    };
    Answer { key, result }
}

/// A successful reply's JSON, or its fault.
fn ok(reply: &Reply) -> Result<Value, Fault> {
    if !reply.is_success() {
        return Err(crate::provider::openai::error(
            reply,
            reply.header("x-request-id"),
        ));
    }
    reply.json()
}

/// Reads a Batch object.
fn batch(reply: &Reply) -> Result<Batch, Fault> {
    let value = ok(reply)?;
    let id = text(&value, "/id")
        .filter(|id| crate::batch::state::plain_id(id))
        .ok_or_else(|| malformed(reply, "a batch with an id"))?;
    let state = match value.get("status").and_then(Value::as_str) {
        Some("validating") => BatchState::Pending,
        Some("in_progress") => BatchState::Running,
        Some("finalizing") => BatchState::Finalizing,
        Some("completed") => BatchState::Completed,
        Some("failed") => BatchState::Failed,
        Some("expired") => BatchState::Expired,
        Some("cancelling") => BatchState::Cancelling,
        Some("cancelled") => BatchState::Cancelled,
        _ => return Err(malformed(reply, "a batch with a known status")),
    };
    let file = |field: &str| text(&value, field).filter(|id| crate::batch::state::plain_id(id));
    let error = value
        .pointer("/errors/data")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .take(5)
                .map(|e| {
                    let line = e.get("line").and_then(Value::as_u64);
                    // Raw: the client redacts secrets before anything else is done with it.
                    let message = e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    match line {
                        Some(line) => format!("line {line}: {message}"),
                        None => message,
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.is_empty());
    Ok(Batch {
        id,
        state,
        total: count(&value, "/request_counts/total"),
        completed: count(&value, "/request_counts/completed"),
        failed: count(&value, "/request_counts/failed"),
        expires_at: value.get("expires_at").and_then(Value::as_u64),
        error,
        results: Results::Files {
            output: file("/output_file_id"),
            error: file("/error_file_id"),
        },
    })
}
