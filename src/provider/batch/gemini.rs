//! Gemini's batch mode: `POST {base-url}/models/{model}:batchGenerateContent`, with the
//! requests inline when the batch is small, else a JSONL file uploaded through the Files API
//! (`/upload/v1beta/files`, resumable); polled as `GET {base-url}/batches/{id}`; answers inline
//! in the batch, or in a file read from `/download/v1beta/{file}:download?alt=media`.

use serde_json::{Value, json};

use super::{
    Answer, Batch, BatchState, Chunk, Client, Item, Results, count, malformed, once, text,
};
use crate::provider::http::Reply;
use crate::provider::{Fault, FaultKind};

/// The most requests one batch is given (as OpenAI's; Gemini documents sizes only).
pub(super) const MAX_REQUESTS: usize = 50_000;

/// The largest input file (2 GB).
pub(super) const MAX_FILE_BYTES: usize = 2_000 * 1000 * 1000;

/// Inline requests are sent only when they are this small in all (the documented limit is
/// 20 MB for the whole request) ...
const MAX_INLINE_BYTES: usize = 19 * 1000 * 1000;

/// ... and this few, and their images this small in all: inline answers come back inside the
/// batch, which is read whole (under the answer cap of 96 MB), so a batch whose images could
/// weigh more (at 4 bytes of base64 a pixel, the most a PNG takes) goes through a file.
const MAX_INLINE_REQUESTS: usize = 16;
const MAX_INLINE_PIXELS: u64 = 16 << 20;

const ENDPOINT: &str = "batchGenerateContent";

/// One line of the input file: `{"key", "request"}`, the request as a synchronous call sends
/// it. Pure.
pub(super) fn line(item: &Item<'_>) -> (&'static str, Vec<u8>) {
    let (body, _) = crate::provider::gemini::body(item.request);
    let line = json!({ "key": item.key.to_hex(), "request": body });
    (
        ENDPOINT,
        serde_json::to_vec(&line).expect("a JSON value always serialises"),
    )
}

/// Sends the chunk: inline when small, else through a file.
pub(super) fn submit(client: &Client<'_>, chunk: &Chunk, _attempt: u32) -> Result<Batch, Fault> {
    let headers = headers(client);
    let inline = chunk.jsonl.len() <= MAX_INLINE_BYTES
        && chunk.keys.len() <= MAX_INLINE_REQUESTS
        && chunk.pixels <= MAX_INLINE_PIXELS;
    let input = if inline {
        let requests: Vec<Value> = chunk
            .jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .map(|l| json!({ "request": l["request"], "metadata": { "key": l["key"] } }))
            .collect();
        json!({ "requests": { "requests": requests } })
    } else {
        json!({ "file_name": upload(client, chunk)? })
    };
    let body = json!({
        "batch": { "display_name": "mdbook-imagegen", "input_config": input }
    });
    let url = client.url(&format!("/models/{}:batchGenerateContent", chunk.model));
    let reply = client
        .http
        .post_json(&url, &as_pairs(&headers), &body)
        .map_err(once)?;
    read_batch(&reply).map_err(once)
}

/// Uploads the chunk's JSONL with the Files API's resumable protocol (start, then upload and
/// finalize in one request) and returns the file's name (`files/…`).
fn upload(client: &Client<'_>, chunk: &Chunk) -> Result<String, Fault> {
    let root = root(&client.profile.base_url);
    let length = chunk.jsonl.len().to_string();
    let mut start = headers(client);
    start.extend([
        ("x-goog-upload-protocol", "resumable".to_owned()),
        ("x-goog-upload-command", "start".to_owned()),
        ("x-goog-upload-header-content-length", length.clone()),
        (
            "x-goog-upload-header-content-type",
            "application/jsonl".to_owned(),
        ),
    ]);
    let reply = client.http.post_json(
        &format!("{root}/upload/v1beta/files"),
        &as_pairs(&start),
        &json!({ "file": { "display_name": "mdbook-imagegen batch" } }),
    )?;
    if !reply.is_success() {
        return Err(crate::provider::gemini::error(&reply));
    }
    let url = reply
        .header("x-goog-upload-url")
        .map(str::to_owned)
        .filter(|url| {
            crate::provider::http::may_follow(url, &client.profile.base_url)
                && crate::provider::http::may_send_key(url, &client.profile.base_url, None)
        })
        .ok_or_else(|| {
            Fault::new(
                FaultKind::BadImage,
                "the Files API gave no upload URL on its own server".to_owned(),
            )
        })?;
    let mut finish = headers(client);
    finish.extend([
        ("x-goog-upload-command", "upload, finalize".to_owned()),
        ("x-goog-upload-offset", "0".to_owned()),
    ]);
    let reply = client.http.post(
        &url,
        &as_pairs(&finish),
        "application/jsonl",
        chunk.jsonl.clone(),
    )?;
    if !reply.is_success() {
        return Err(crate::provider::gemini::error(&reply));
    }
    let file = reply.json()?;
    text(&file, "/file/name")
        .filter(|name| file_name(name))
        .ok_or_else(|| malformed(&reply, "a file with a name"))
}

/// The batch `id` (`batches/…`) now.
pub(super) fn get(client: &Client<'_>, id: &str) -> Result<Batch, Fault> {
    if !crate::batch::state::valid_id(crate::config::ProviderKind::Gemini, id) {
        return Err(Fault::new(
            FaultKind::Invalid,
            format!("`{id}` is not a batch id"),
        ));
    }
    let reply = client.http.get(
        &client.url(&format!("/{id}")),
        &as_pairs(&headers(client)),
        super::FILE_TIMEOUT,
    )?;
    read_batch(&reply)
}

/// Reads an answers file, streaming: one `{"key", "response" | "error"}` per line.
pub(super) fn read_file(
    client: &Client<'_>,
    name: &str,
    each: &mut dyn FnMut(Answer),
) -> Result<(), Fault> {
    let url = format!(
        "{}/download/v1beta/{name}:download?alt=media",
        root(&client.profile.base_url)
    );
    let read = client.http.get_lines(
        &url,
        &as_pairs(&headers(client)),
        super::MAX_LINE_BYTES,
        &mut |line| {
            each(match serde_json::from_slice::<Value>(line) {
                Ok(value) => answer(&value, false),
                Err(_) => super::not_json(line),
            });
            Ok(())
        },
    )?;
    read.map_err(|reply| crate::provider::gemini::error(&reply))
}

/// One answer: inline (`{"response" | "error", "metadata": {"key"}}`) or a file's line
/// (`{"key", "response" | "error"}`), read as a synchronous answer would be.
pub(super) fn answer(value: &Value, inline: bool) -> Answer {
    let key = if inline {
        text(value, "/metadata/key")
    } else {
        text(value, "/key")
    }
    .unwrap_or_default();
    let result = match (value.get("response"), value.get("error")) {
        (Some(response), _) if response.is_object() => {
            crate::provider::gemini::read_answer(response, None, String::new())
        }
        (_, Some(error)) if error.is_object() => {
            let status = count(error, "/code");
            let reply = Reply {
                status: u16::try_from(status)
                    .ok()
                    .filter(|s| (400..600).contains(s))
                    .unwrap_or(400),
                headers: Default::default(),
                body: serde_json::to_vec(&json!({ "error": error })).unwrap_or_default(),
            };
            Err(crate::provider::gemini::error(&reply))
        }
        _ => Err(Fault::new(
            FaultKind::BadImage,
            "the answer has neither a response nor an error".to_owned(),
        )),
    };
    Answer { key, result }
}

/// Reads a batch (the long-running operation, or the batch itself), tolerant of both field
/// spellings of its state and of where its answers are.
pub(super) fn read_batch(reply: &Reply) -> Result<Batch, Fault> {
    if !reply.is_success() {
        return Err(crate::provider::gemini::error(reply));
    }
    let value = reply.json()?;
    let id = text(&value, "/name")
        .filter(|id| crate::batch::state::valid_id(crate::config::ProviderKind::Gemini, id))
        .ok_or_else(|| malformed(reply, "a batch named `batches/…`"))?;
    let meta = value.get("metadata").unwrap_or(&value);
    let state_name = text(meta, "/state").unwrap_or_default();
    let state = match state_name
        .trim_start_matches("BATCH_STATE_")
        .trim_start_matches("JOB_STATE_")
    {
        "PENDING" | "QUEUED" | "UNSPECIFIED" => BatchState::Pending,
        "RUNNING" => BatchState::Running,
        "SUCCEEDED" => BatchState::Completed,
        "FAILED" => BatchState::Failed,
        "CANCELLED" => BatchState::Cancelled,
        "CANCELLING" => BatchState::Cancelling,
        "EXPIRED" => BatchState::Expired,
        _ => return Err(malformed(reply, "a batch with a known state")),
    };
    let output = [
        "/response/inlinedResponses/inlinedResponses",
        "/response/output/inlinedResponses/inlinedResponses",
        "/metadata/output/inlinedResponses/inlinedResponses",
    ]
    .iter()
    .find_map(|p| value.pointer(p).and_then(Value::as_array));
    let file = [
        "/response/responsesFile",
        "/response/output/responsesFile",
        "/metadata/output/responsesFile",
        "/dest/fileName",
    ]
    .iter()
    .find_map(|p| text(&value, p))
    .filter(|name| file_name(name));
    let results = match (output, file) {
        (Some(answers), _) => Results::Inline(answers.clone()),
        (None, Some(name)) => Results::File(name),
        (None, None) => Results::None,
    };
    let stats = |field: &str| count(meta, &format!("/batchStats/{field}"));
    Ok(Batch {
        id,
        state,
        total: stats("requestCount"),
        completed: stats("successfulRequestCount"),
        failed: stats("failedRequestCount"),
        expires_at: None,
        // Raw: the client redacts secrets before anything else is done with it.
        error: value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        results,
    })
}

/// Whether `name` is a Files API name (`files/…`) that may go into a URL.
fn file_name(name: &str) -> bool {
    name.strip_prefix("files/")
        .is_some_and(crate::batch::state::plain_id)
}

/// Where the upload and download routes live: the base URL without its version (`/v1beta`).
fn root(base_url: &str) -> &str {
    base_url
        .strip_suffix("/v1beta")
        .or_else(|| base_url.strip_suffix("/v1"))
        .unwrap_or(base_url)
}

fn headers(client: &Client<'_>) -> Vec<(&'static str, String)> {
    client
        .key
        .iter()
        .map(|k| ("x-goog-api-key", k.expose().to_owned()))
        .collect()
}

fn as_pairs<'h>(headers: &'h [(&'static str, String)]) -> Vec<(&'static str, &'h str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}
