//! Loopback servers in the shape of the providers' batch APIs: OpenAI's files and batches
//! routes, and Gemini's `batchGenerateContent` with inline requests or the Files API. Each
//! answers every line at once (a drawn PNG, or an error for a prompt with "refuse" in it), and
//! says "in progress" for the first polls a test asks for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::fixtures::png;

/// How a server's batches go.
#[derive(Clone, Default)]
pub(crate) struct Script {
    /// Polls answered "in progress" before a batch is done.
    pub(crate) running_polls: usize,
    /// The batch expires having answered only this many lines.
    pub(crate) expire_after: Option<usize>,
    /// An answer for a key the batch never had, and a line that is not JSON.
    pub(crate) stray_lines: bool,
}

#[derive(Default)]
struct State {
    script: Script,
    files: HashMap<String, Vec<u8>>,
    /// Batch id → (polls so far, the finished batch's answer).
    batches: HashMap<String, (usize, Value)>,
    /// Every input line received, by batch.
    pub(crate) lines: Vec<Value>,
}

/// A loopback batch server and what it received.
#[derive(Clone)]
pub(crate) struct Batches {
    state: Arc<Mutex<State>>,
}

impl Batches {
    /// Every input line the server was sent.
    pub(crate) fn lines(&self) -> Vec<Value> {
        self.state.lock().unwrap().lines.clone()
    }

    /// How many batches were made.
    pub(crate) fn batches(&self) -> usize {
        self.state.lock().unwrap().batches.len()
    }
}

/// Mounts OpenAI's batch routes on `server`.
pub(crate) async fn openai(server: &MockServer, script: Script) -> Batches {
    mount(server, script, Api::OpenAi).await
}

/// Mounts Gemini's batch routes on `server`.
pub(crate) async fn gemini(server: &MockServer, script: Script) -> Batches {
    mount(server, script, Api::Gemini).await
}

#[derive(Clone, Copy)]
enum Api {
    OpenAi,
    Gemini,
}

async fn mount(server: &MockServer, script: Script, api: Api) -> Batches {
    let batches = Batches {
        state: Arc::new(Mutex::new(State {
            script,
            ..State::default()
        })),
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(Responder {
            batches: batches.clone(),
            api,
            uri: server.uri(),
        })
        .mount(server)
        .await;
    batches
}

struct Responder {
    batches: Batches,
    api: Api,
    uri: String,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.batches.state.lock().unwrap();
        let path = request.url.path().to_owned();
        let post = request.method.as_str() == "POST";
        match self.api {
            Api::OpenAi => openai_route(&mut state, &path, post, request),
            Api::Gemini => gemini_route(&mut state, &path, post, request, &self.uri),
        }
    }
}

fn not_found(message: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "error": { "message": message, "type": "invalid_request_error", "code": null }
    }))
}

fn openai_route(state: &mut State, path: &str, post: bool, request: &Request) -> ResponseTemplate {
    if post && path == "/v1/files" {
        let id = format!("file-in{}", state.files.len());
        state.files.insert(id.clone(), file_part(request));
        return ResponseTemplate::new(200)
            .set_body_json(json!({ "id": id, "object": "file", "purpose": "batch" }));
    }
    if post && path == "/v1/batches" {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let input = state.files[body["input_file_id"].as_str().unwrap()].clone();
        let id = format!("batch_{}", state.batches.len() + 1);
        let lines: Vec<Value> = input
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let answer = openai_answers(state, &id, &body, &lines);
        state.lines.extend(lines);
        state.batches.insert(id.clone(), (0, answer));
        return openai_batch(state, &id, true);
    }
    if let Some(id) = path.strip_prefix("/v1/batches/") {
        if !state.batches.contains_key(id) {
            return not_found(&format!("No batch found with id '{id}'."));
        }
        return openai_batch(state, id, false);
    }
    if let Some(id) = path
        .strip_prefix("/v1/files/")
        .and_then(|p| p.strip_suffix("/content"))
    {
        return match state.files.get(id) {
            Some(bytes) => ResponseTemplate::new(200).set_body_bytes(bytes.clone()),
            None => not_found("No such File object"),
        };
    }
    not_found("no such route")
}

/// The finished batch's object, its output and error files stored.
fn openai_answers(state: &mut State, id: &str, body: &Value, lines: &[Value]) -> Value {
    let (mut output, mut errors, mut done, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    let answered = state.script.expire_after.unwrap_or(usize::MAX);
    for (n, line) in lines.iter().enumerate().take(answered) {
        let custom_id = &line["custom_id"];
        let prompt = line["body"]["prompt"].as_str().unwrap_or("");
        if prompt.contains("refuse") {
            failed += 1;
            errors.push(json!({ "id": format!("batch_req_{n}"), "custom_id": custom_id, "response": {
                "status_code": 400, "request_id": format!("req_{n}"),
                "body": { "error": { "message": "Your request was rejected by the safety system.", "type": "image_generation_user_error", "code": "moderation_blocked" } }
            }, "error": null }));
        } else {
            done += 1;
            output.push(
                json!({ "id": format!("batch_req_{n}"), "custom_id": custom_id, "response": {
                "status_code": 200, "request_id": format!("req_{n}"),
                "body": { "created": 1, "data": [{ "b64_json": drawn(n) }] }
            }, "error": null }),
            );
        }
    }
    if state.script.stray_lines {
        output.push(
            json!({ "id": "batch_req_x", "custom_id": "f".repeat(64), "response": {
            "status_code": 200, "body": { "data": [{ "b64_json": drawn(99) }] } }, "error": null }),
        );
    }
    let mut file = |name: String, lines: Vec<Value>, stray: bool| {
        let mut bytes: Vec<u8> = lines
            .iter()
            .flat_map(|l| (l.to_string() + "\n").into_bytes())
            .collect();
        if stray {
            bytes.extend_from_slice(b"{not json\n");
        }
        state.files.insert(name.clone(), bytes);
        name
    };
    let stray = state.script.stray_lines;
    let output_id = file(format!("file-out-{id}"), output, stray);
    let error_id = (!errors.is_empty()).then(|| file(format!("file-err-{id}"), errors, false));
    let status = if state.script.expire_after.is_some() {
        "expired"
    } else {
        "completed"
    };
    json!({
        "id": id, "object": "batch", "endpoint": body["endpoint"], "status": status,
        "input_file_id": body["input_file_id"], "completion_window": "24h",
        "output_file_id": output_id, "error_file_id": error_id,
        "created_at": 1_765_000_000u64, "expires_at": 4_102_444_800u64,
        "request_counts": { "total": lines.len(), "completed": done, "failed": failed }
    })
}

/// The batch as a poll sees it: validating when just made, in progress for the polls the
/// script asks for, then finished.
fn openai_batch(state: &mut State, id: &str, created: bool) -> ResponseTemplate {
    let running = state.script.running_polls;
    let (polls, finished) = state.batches.get_mut(id).unwrap();
    let mut answer = finished.clone();
    if created || *polls < running {
        answer["status"] = (if created { "validating" } else { "in_progress" }).into();
        answer["output_file_id"] = Value::Null;
        answer["error_file_id"] = Value::Null;
        answer["request_counts"]["completed"] = 0.into();
        answer["request_counts"]["failed"] = 0.into();
    }
    if !created {
        *polls += 1;
    }
    ResponseTemplate::new(200).set_body_json(answer)
}

fn gemini_route(
    state: &mut State,
    path: &str,
    post: bool,
    request: &Request,
    uri: &str,
) -> ResponseTemplate {
    if post && path == "/upload/v1beta/files" {
        if request
            .headers
            .get("x-goog-upload-command")
            .map(|v| v.to_str().unwrap())
            == Some("start")
        {
            let id = format!("in{}", state.files.len());
            state.files.insert(format!("files/{id}"), Vec::new());
            return ResponseTemplate::new(200).insert_header(
                "x-goog-upload-url",
                format!("{uri}/upload/v1beta/files?upload_id={id}").as_str(),
            );
        }
        let id = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "upload_id")
            .unwrap()
            .1
            .to_string();
        state
            .files
            .insert(format!("files/{id}"), request.body.clone());
        return ResponseTemplate::new(200).set_body_json(
            json!({ "file": { "name": format!("files/{id}"), "mimeType": "application/jsonl" } }),
        );
    }
    if post && path.starts_with("/v1beta/models/") && path.ends_with(":batchGenerateContent") {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let config = &body["batch"]["input_config"];
        let id = format!("batches/b{}", state.batches.len() + 1);
        let (lines, inline): (Vec<Value>, bool) = match config["file_name"].as_str() {
            Some(file) => (
                state.files[file]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).unwrap())
                    .collect(),
                false,
            ),
            None => (
                config["requests"]["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| json!({ "key": r["metadata"]["key"], "request": r["request"] }))
                    .collect(),
                true,
            ),
        };
        let answer = gemini_answers(state, &id, &lines, inline);
        state.lines.extend(lines);
        state.batches.insert(id.clone(), (0, answer));
        return gemini_batch(state, &id, true);
    }
    if let Some(name) = path.strip_prefix("/v1beta/")
        && name.starts_with("batches/")
    {
        if !state.batches.contains_key(name) {
            return ResponseTemplate::new(404).set_body_json(json!({ "error": {
                "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND" } }));
        }
        return gemini_batch(state, name, false);
    }
    if let Some(file) = path
        .strip_prefix("/download/v1beta/")
        .and_then(|p| p.strip_suffix(":download"))
    {
        return ResponseTemplate::new(200).set_body_bytes(state.files[file].clone());
    }
    not_found("no such route")
}

fn gemini_answers(state: &mut State, id: &str, lines: &[Value], inline: bool) -> Value {
    let answers: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let prompt = line["request"]["contents"][0]["parts"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|p| p["text"].as_str())
                .unwrap_or("");
            let body = if prompt.contains("refuse") {
                json!({ "response": { "candidates": [{ "finishReason": "IMAGE_SAFETY" }] } })
            } else {
                json!({ "response": { "candidates": [{ "content": { "parts": [
                    { "inlineData": { "mimeType": "image/png", "data": drawn(n) } }
                ] }, "finishReason": "STOP" }], "modelVersion": "gemini-3.1-flash-lite-image" } })
            };
            let mut answer = body;
            if inline {
                answer["metadata"] = json!({ "key": line["key"] });
            } else {
                answer["key"] = line["key"].clone();
            }
            answer
        })
        .collect();
    let count = answers.len();
    let response = if inline {
        json!({ "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                "inlinedResponses": { "inlinedResponses": answers } })
    } else {
        let name = format!("files/out-{}", id.trim_start_matches("batches/"));
        let bytes = answers
            .iter()
            .flat_map(|a| (a.to_string() + "\n").into_bytes())
            .collect();
        state.files.insert(name.clone(), bytes);
        json!({ "responsesFile": name })
    };
    json!({ "name": id, "done": true, "response": response, "metadata": {
        "state": "BATCH_STATE_SUCCEEDED",
        "batchStats": { "requestCount": count.to_string(), "successfulRequestCount": count.to_string() } } })
}

fn gemini_batch(state: &mut State, id: &str, created: bool) -> ResponseTemplate {
    let running = state.script.running_polls;
    let (polls, finished) = state.batches.get_mut(id).unwrap();
    let mut answer = finished.clone();
    if created || *polls < running {
        answer = json!({ "name": id, "metadata": {
            "state": if created { "BATCH_STATE_PENDING" } else { "BATCH_STATE_RUNNING" },
            "batchStats": answer["metadata"]["batchStats"] } });
    }
    if !created {
        *polls += 1;
    }
    ResponseTemplate::new(200).set_body_json(answer)
}

/// A small PNG, different for each `n`.
fn drawn(n: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(png(40 + n as u32 % 50, 30))
}

/// The bytes of the multipart body's file part.
fn file_part(request: &Request) -> Vec<u8> {
    let body = &request.body;
    let start = find(body, b"filename=\"").unwrap();
    let data = start + find(&body[start..], b"\r\n\r\n").unwrap() + 4;
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"');
    let end = data + find(&body[data..], format!("\r\n--{boundary}").as_bytes()).unwrap();
    body[data..end].to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
