//! Loopback servers in the shape of each provider's API: profiles that point at them, mocks
//! that check the key, downloads that must not carry it, BFL's submit and poll, and readers for
//! what the servers received.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use super::env::KEY;

/// A profile of `kind` at `server` (under `base`) whose key is in `TEST_KEY`, on the kind's
/// default model.
pub(crate) fn profile_at(kind: &str, server: &MockServer, base: &str) -> Value {
    json!({ "kind": kind, "base-url": format!("{}{base}", server.uri()), "api-key-env": "TEST_KEY" })
}

/// [`profile_at`] on `model`.
pub(crate) fn profile(kind: &str, model: &str, server: &MockServer, base: &str) -> Value {
    let mut profile = profile_at(kind, server, base);
    profile["model"] = model.into();
    profile
}

/// How a provider's API takes the key.
pub(crate) enum Auth {
    /// `authorization: Bearer <key>` (OpenAI and the compatible APIs, Stability, Recraft).
    Bearer,
    /// `x-goog-api-key: <key>` (Gemini).
    Google,
    /// `x-key: <key>` (BFL).
    XKey,
    /// `api-key: <key>` (Ideogram).
    ApiKey,
}

/// A mock for `verb` requests to `route` that carry [`KEY`] as `auth` says.
pub(crate) fn authed(verb: &str, route: &str, auth: Auth) -> MockBuilder {
    let given = Mock::given(method(verb)).and(path(route));
    match auth {
        Auth::Bearer => given.and(header("authorization", format!("Bearer {KEY}").as_str())),
        Auth::Google => given.and(header("x-goog-api-key", KEY)),
        Auth::XKey => given.and(header("x-key", KEY)),
        Auth::ApiKey => given.and(header("api-key", KEY)),
    }
}

/// Whether a request carries no key in any header a provider uses.
pub(crate) fn no_key(request: &wiremock::Request) -> bool {
    !request.headers.contains_key("x-key")
        && !request.headers.contains_key("authorization")
        && !request.headers.contains_key("api-key")
}

/// Serves `bytes` at `route` exactly once, to a request without the key (a download from a
/// provider's delivery URL).
pub(crate) async fn serve_download(server: &MockServer, route: &str, bytes: Vec<u8>) {
    Mock::given(method("GET"))
        .and(path(route))
        .and(no_key)
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
        .expect(1)
        .mount(server)
        .await;
}

/// How many requests `server` got.
pub(crate) async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// How many requests `server` got that submitted a task (not polls, not downloads).
pub(crate) async fn posts(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

/// BFL's answer to a poll: the task's `status`, `result` and `details`.
pub(crate) fn bfl_status(status: &str, result: Value, details: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "task-1", "status": status, "result": result, "progress": null, "details": details, "preview": null
    }))
}

/// Mounts BFL's submit answer for `model`, polling at `polling_url`.
pub(crate) async fn bfl_submit(server: &MockServer, model: &str, polling_url: &str) {
    authed("POST", &format!("/v1/{model}"), Auth::XKey)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "task-1", "polling_url": polling_url, "cost": 3.5, "input_mp": 0.0, "output_mp": 0.79
        })))
        .mount(server)
        .await;
}

/// Mounts a poll that answers `Ready` with a sample at `/s.png`, and that sample.
pub(crate) async fn bfl_ready(server: &MockServer, image: Vec<u8>) {
    Mock::given(method("GET"))
        .and(path("/v1/get_result"))
        .respond_with(bfl_status(
            "Ready",
            json!({ "sample": format!("{}/s.png", server.uri()) }),
            Value::Null,
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/s.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(image))
        .mount(server)
        .await;
}

/// One part of a multipart body: name, file name, content type, bytes.
pub(crate) type Part = (String, Option<String>, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body.
pub(crate) fn parts(request: &wiremock::Request) -> Vec<Part> {
    let content_type = request.headers["content-type"].to_str().unwrap().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart body");
    let delimiter = format!("--{boundary}");
    let body = &request.body;
    let mut out = Vec::new();
    let positions: Vec<usize> = (0..body.len())
        .filter(|&i| body[i..].starts_with(delimiter.as_bytes()))
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len() + 2..pair[1] - 2];
        let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(part[..split].to_vec()).unwrap();
        let value = part[split + 4..].to_vec();
        let field = |name: &str| {
            head.split("; ")
                .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.split('"').next().unwrap().to_owned())
        };
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_owned);
        out.push((
            field("name").unwrap(),
            field("filename"),
            content_type,
            value,
        ));
    }
    assert!(body.ends_with(format!("{delimiter}--\r\n").as_bytes()));
    out
}

/// The value of the multipart field `name` in `request`'s body, as text.
pub(crate) fn field(request: &wiremock::Request, name: &str) -> Option<String> {
    parts(request)
        .into_iter()
        .find(|part| part.0 == name)
        .map(|part| String::from_utf8(part.3).unwrap())
}
