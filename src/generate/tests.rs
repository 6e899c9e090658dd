//! The work queue against a loopback provider: the concurrency limit holds, a slow image holds
//! nothing back, and fallback profiles take over only for transient failures.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use super::*;
use crate::config::Config;
use crate::plan::cache_key;
use crate::provider::tests::{b64, png};

/// Answers after a delay named in the prompt (`slow` or `fast`), recording when each request
/// arrived and how long it was held.
#[derive(Clone, Default)]
struct Timed {
    held: Arc<Mutex<Vec<(Instant, Duration)>>>,
}

impl Respond for Timed {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let slow = body["prompt"].as_str().unwrap().starts_with("slow");
        let delay = Duration::from_millis(if slow { 1500 } else { 150 });
        self.held.lock().unwrap().push((Instant::now(), delay));
        ResponseTemplate::new(200)
            .set_body_json(json!({ "data": [{ "b64_json": b64(&png(8, 8)) }] }))
            .set_delay(delay)
    }
}

fn book(table: serde_json::Value) -> Config {
    Config::from_table(Some(&table)).unwrap()
}

fn request(config: &Config, profile: &str, prompt: &str) -> Request {
    let p = &config.profiles[profile];
    Request {
        kind: p.kind,
        profile: profile.into(),
        model: p.model.clone(),
        prompt: prompt.into(),
        negative: None,
        size: crate::config::Size::default(),
        quality: None,
        seed: None,
        params: p.params.clone(),
    }
}

fn run_all(config: &Config, jobs: &[Chain]) -> Vec<(usize, Result<String, String>)> {
    let mut finished = Vec::new();
    let env = Env {
        config,
        root: Path::new("."),
        sleep: &|_| {},
        var: &|_| Some("k".into()),
        secrets: &crate::outside::Secrets::default(),
    };
    let mut progress = Progress::start(0, config.max_concurrency);
    run(
        jobs,
        config.max_concurrency,
        &env,
        None,
        &mut progress,
        |i, result| {
            finished.push((
                i,
                result
                    .map(|got| match got {
                        Got::Made(made) => made.request.profile.clone(),
                        Got::Found(request, ..) => request.profile.clone(),
                    })
                    .map_err(|f| f.message),
            ));
        },
    );
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_limit_in_flight_and_a_slow_image_holds_nothing_back() {
    let server = MockServer::start().await;
    let timed = Timed::default();
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(timed.clone())
        .mount(&server)
        .await;
    let config = book(json!({
        "max-concurrency": 3,
        "providers": { "p": { "kind": "openai-compatible", "model": "m", "base-url": format!("{}/v1", server.uri()) } }
    }));
    let jobs: Vec<Chain> = (0..10)
        .map(|i| {
            let prompt = if i == 0 {
                "slow 0".to_owned()
            } else {
                format!("fast {i}")
            };
            let r = request(&config, "p", &prompt);
            vec![(cache_key(&r), r)]
        })
        .collect();
    let finished = tokio::task::spawn_blocking(move || run_all(&config, &jobs))
        .await
        .unwrap();

    assert_eq!(finished.len(), 10);
    assert!(finished.iter().all(|(_, r)| r.is_ok()));
    // The slow image started first and finished last: the nine fast ones went past it.
    assert_eq!(finished.last().unwrap().0, 0);

    let held = timed.held.lock().unwrap().clone();
    let most = held
        .iter()
        .map(|(start, _)| {
            held.iter()
                .filter(|(s, d)| s <= start && *start < *s + *d)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 3, "the most requests held at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_take_over_transient_failures_only() {
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(|r: &wiremock::Request| String::from_utf8_lossy(&r.body).contains("outage"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": { "message": "The server is overloaded", "type": "service_unavailable_error", "code": "server_is_overloaded" }
        })))
        .mount(&down)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "Your request was rejected by the safety system.", "type": "image_generation_user_error", "code": "moderation_blocked" }
        })))
        .mount(&down)
        .await;
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{ "content": { "parts": [{ "inlineData": { "mimeType": "image/png", "data": b64(&png(8, 8)) } }] }, "finishReason": "STOP" }]
        })))
        .mount(&up)
        .await;
    let config = book(json!({
        "retries": 1,
        "provider": "a",
        "fallback": ["b"],
        "providers": {
            "a": { "kind": "openai", "base-url": format!("{}/v1", down.uri()) },
            "b": { "kind": "gemini", "base-url": format!("{}/v1beta", up.uri()) },
        }
    }));
    let jobs: Vec<Chain> = ["outage", "refused"]
        .iter()
        .map(|prompt| {
            ["a", "b"]
                .iter()
                .map(|p| {
                    let r = request(&config, p, prompt);
                    (cache_key(&r), r)
                })
                .collect()
        })
        .collect();
    let mut finished = tokio::task::spawn_blocking(move || run_all(&config, &jobs))
        .await
        .unwrap();
    finished.sort_by_key(|(i, _)| *i);
    assert_eq!(finished[0].1, Ok("b".to_owned()));
    let refused = finished[1].1.as_ref().unwrap_err();
    assert!(refused.contains("refused the prompt"), "{refused}");
    // Two attempts at the outage, one at the refusal; one image from the fallback.
    assert_eq!(down.received_requests().await.unwrap().len(), 3);
    assert_eq!(up.received_requests().await.unwrap().len(), 1);
}
