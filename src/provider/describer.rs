//! Vision models (or programs) that read a generated image and answer with JSON: describers
//! (alt text and long description, see [`crate::description`]) and judges (checks against the
//! prompt, see [`crate::judgement`]). One wire format per kind, the task's instructions,
//! question and schema sent in it.
//!
//! - `openai`: the Responses API, `POST {base-url}/responses`, the image as an `input_image`
//!   data URL, the answer held to a JSON schema by `text.format`.
//! - `gemini`: `generateContent` with the image as `inline_data`, `responseMimeType` JSON and
//!   `responseJsonSchema`.
//! - `openai-compatible`: chat completions with an `image_url` data URL and `response_format`
//!   `json_schema` (Ollama, LocalAI, vLLM, llama.cpp's server).
//! - `command`: a program, with the request as JSON on stdin and the image in a file.
//!
//! Failures are the generation's: the same retries, the same redaction, the same messages.

use std::time::Instant;

use base64::Engine as _;
use serde_json::{Value, json};

use super::http::{Http, Reply, snippet};
use super::{Env, Failure, Fault, FaultKind, Task, Who, command, gemini, openai, resolve_key};
use crate::config::{Profile, ProviderKind};
use crate::description::{self, About, Text};
use crate::judgement;
use crate::vocab::DescribeWire;

/// The most a `command` describer may print.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// The most tokens a describer may answer with (reasoning included).
const MAX_OUTPUT_TOKENS: u32 = 4000;

/// A describer: the profile `[describe]` names, the model it uses, and the describe settings
/// (its own `extra` and `price`: the profile's are for its images).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Describer<'a> {
    pub(crate) profile_name: &'a str,
    pub(crate) profile: &'a Profile,
    pub(crate) model: &'a str,
    pub(crate) extra: &'a serde_json::Map<String, Value>,
    pub(crate) price: Option<f64>,
}

/// The image as it is sent: a web file of it (JPEG, PNG or WebP) and its hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Picture<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) media_type: &'a str,
    /// The master's hash, for `command` programs.
    pub(crate) master: &'a str,
}

/// What a vision model is asked: the task, its instructions, the text beside the image, the
/// JSON schema of the answer and the schema's name, and what a program is told besides
/// (`prompt`, `caption`, …).
pub(crate) struct Asking<'a> {
    pub(crate) task: Task,
    pub(crate) instructions: &'a str,
    pub(crate) question: String,
    pub(crate) schema: Value,
    pub(crate) schema_name: &'a str,
    pub(crate) about: Value,
}

/// A checked answer and what it took.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answered<T> {
    pub(crate) text: T,
    pub(crate) cost_usd: f64,
    pub(crate) model_version: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) attempts: u32,
}

/// One answer, before its text is checked.
pub(super) struct Answer {
    text: String,
    cost_usd: Option<f64>,
    model_version: Option<String>,
    request_id: Option<String>,
}

/// A checked description and what it took.
pub(crate) type Described = Answered<Text>;

/// Asks the describer for the image's alt text and description, retrying what is worth
/// retrying; an answer that is not the JSON asked for (or whose alt is too long) is asked for
/// once more, then fails like an image that never came.
pub(crate) fn describe(
    describer: &Describer<'_>,
    picture: &Picture<'_>,
    about: &About<'_>,
    env: &Env<'_>,
) -> Result<Described, Failure> {
    let asking = Asking {
        task: Task::Description,
        instructions: description::INSTRUCTIONS,
        question: description::question(about),
        schema: description::schema(),
        schema_name: "alt_text",
        about: json!({
            "prompt": about.prompt,
            "caption": about.caption,
            "chapter": about.chapter,
        }),
    };
    ask(describer, picture, &asking, env, |text| {
        description::read_answer(text, env.secrets).map_err(|u| u.message)
    })
}

/// Asks the judge to check the image against its prompt: its questions, answers, defects and
/// the text it reads, checked by [`judgement::read_answer`] (the score is computed by the
/// caller, from the answer and the prompt).
pub(crate) fn judge(
    judge: &Describer<'_>,
    picture: &Picture<'_>,
    about: &judgement::About<'_>,
    env: &Env<'_>,
) -> Result<Answered<judgement::Verdict>, Failure> {
    let asking = Asking {
        task: Task::Judgement,
        instructions: judgement::INSTRUCTIONS,
        question: judgement::question(about),
        schema: judgement::schema(),
        schema_name: "judgement",
        about: json!({
            "prompt": about.prompt,
            "style": about.style,
            "caption": about.caption,
        }),
    };
    ask(judge, picture, &asking, env, |text| {
        judgement::read_answer(text, env.secrets)
    })
}

/// Asks a vision model `asking`, retrying what is worth retrying; an answer `read` refuses is
/// asked for once more, then fails like an image that never came.
pub(crate) fn ask<T>(
    describer: &Describer<'_>,
    picture: &Picture<'_>,
    asking: &Asking<'_>,
    env: &Env<'_>,
    read: impl Fn(&str) -> Result<T, String>,
) -> Result<Answered<T>, Failure> {
    let profile = describer.profile;
    let who = Who {
        profile: describer.profile_name,
        kind: profile.kind,
        model: describer.model,
        task: asking.task,
    };
    let key = resolve_key(profile, env.var).map_err(|message| Failure {
        message: format!("profile `{}`: {message}", describer.profile_name),
        may_fall_back: false,
    })?;
    let timeout = profile.timeout.unwrap_or(env.config.retry.timeout);
    let http = Http::new(&profile.base_url, timeout);
    let started = Instant::now();
    let fixed = describer.price;
    let (answer, text, attempts) = super::retrying(&who, profile, env, |attempt| {
        let call = Ask {
            describer,
            picture,
            asking,
            key: key.as_ref(),
            http: &http,
            env,
            timeout,
        };
        let answer = match profile.kind.spec().describe.map(|d| d.wire) {
            Some(DescribeWire::Responses) => responses(&call),
            Some(DescribeWire::Gemini) => gemini_call(&call),
            Some(DescribeWire::Chat) => chat(&call),
            Some(DescribeWire::Program) => program(&call),
            None => Err(Fault::new(
                FaultKind::Invalid,
                format!("a `{}` profile cannot read images", profile.kind.as_str()),
            )),
        }?;
        let text = read(&answer.text).map_err(|message| Fault::new(FaultKind::Empty, message))?;
        Ok((answer, text, attempt))
    })?;
    tracing::debug!(
        "{} of {} in {:.2?}",
        asking.schema_name,
        &picture.master[..12],
        started.elapsed()
    );
    let short = |v: Option<String>| v.map(|v| env.secrets.clean(&v, crate::outside::ID_CHARS));
    Ok(Answered {
        text,
        cost_usd: fixed
            .or(answer.cost_usd.filter(|c| c.is_finite() && *c >= 0.0))
            .unwrap_or(0.0),
        model_version: short(answer.model_version),
        request_id: short(answer.request_id),
        attempts,
    })
}

/// Everything one request needs.
struct Ask<'a> {
    describer: &'a Describer<'a>,
    picture: &'a Picture<'a>,
    asking: &'a Asking<'a>,
    key: Option<&'a super::Secret>,
    http: &'a Http,
    env: &'a Env<'a>,
    timeout: std::time::Duration,
}

impl Ask<'_> {
    fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.picture.media_type,
            base64::engine::general_purpose::STANDARD.encode(self.picture.bytes)
        )
    }

    fn bearer(&self) -> Option<String> {
        self.key.map(super::Secret::bearer)
    }

    fn add_extra(&self, body: &mut Value) {
        if let Some(fields) = body.as_object_mut() {
            for (name, value) in self.describer.extra {
                fields.insert(name.clone(), value.clone());
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.describer.profile.base_url)
    }
}

/// OpenAI's Responses API.
fn responses(ask: &Ask<'_>) -> Result<Answer, Fault> {
    let model = ask.describer.model;
    let mut body = json!({
        "model": model,
        "instructions": ask.asking.instructions,
        "input": [{
            "role": "user",
            "content": [
                { "type": "input_text", "text": ask.asking.question },
                { "type": "input_image", "image_url": ask.data_url(), "detail": "auto" },
            ],
        }],
        "text": { "format": {
            "type": "json_schema",
            "name": ask.asking.schema_name,
            "schema": ask.asking.schema,
            "strict": true,
        } },
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "store": false,
    });
    if is_reasoning(model) {
        // Describing needs little thought: low effort (which every reasoning model takes)
        // keeps it fast and cheap. Other models refuse the field.
        body["reasoning"] = json!({ "effort": "low" });
    }
    ask.add_extra(&mut body);
    let auth = ask.bearer();
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let reply = ask.http.post_json(&ask.url("responses"), &headers, &body)?;
    read_responses(&reply, model)
}

/// Whether an OpenAI model reasons (and so takes `reasoning.effort`): the GPT-5 and GPT-6
/// families but their `-chat` models, and the o-series.
fn is_reasoning(model: &str) -> bool {
    let family = model.starts_with("gpt-5") || model.starts_with("gpt-6");
    let o_series = ["o1", "o3", "o4"]
        .iter()
        .any(|o| model == *o || model.starts_with(&format!("{o}-")));
    (family && !model.contains("-chat")) || o_series
}

/// Reads a Responses API answer: the `output_text` of its message, a refusal, or why there is
/// none. Pure: any bytes in, never a panic.
pub(super) fn read_responses(reply: &Reply, model: &str) -> Result<Answer, Fault> {
    let request_id = reply.header("x-request-id").map(str::to_owned);
    if !reply.is_success() {
        return Err(openai::error(reply, request_id.as_deref()));
    }
    let answer = reply.json()?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(Fault::new(
            FaultKind::Transient,
            format!("the response failed: {}", snippet(message.as_bytes())),
        ));
    }
    let texts = |kind: &str, field: &str| -> Vec<String> {
        answer
            .get("output")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
            .filter_map(|item| item.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some(kind))
            .filter_map(|part| part.get(field).and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    if let Some(refusal) = texts("refusal", "refusal").first() {
        return Err(Fault::new(FaultKind::Refused, refusal.clone()));
    }
    let status = answer.get("status").and_then(Value::as_str).unwrap_or("");
    let text = texts("output_text", "text").concat();
    if status == "incomplete" || text.trim().is_empty() {
        let reason = answer
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str)
            .unwrap_or("no text");
        if reason == "content_filter" {
            return Err(Fault::new(FaultKind::Refused, "the answer was filtered"));
        }
        return Err(Fault::new(
            FaultKind::Empty,
            format!(
                "the answer is incomplete ({reason}): {}",
                snippet(&reply.body)
            ),
        ));
    }
    let usage = answer.get("usage");
    let tokens = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_f64);
    let cost = crate::price::tokens_cost(model, tokens("input_tokens"), tokens("output_tokens"));
    Ok(openai_answer(&answer, text, cost, request_id))
}

/// Gemini's `generateContent`.
fn gemini_call(ask: &Ask<'_>) -> Result<Answer, Fault> {
    let model = ask.describer.model;
    let data = base64::engine::general_purpose::STANDARD.encode(ask.picture.bytes);
    let mut body = json!({
        "systemInstruction": { "parts": [{ "text": ask.asking.instructions }] },
        "contents": [{
            "role": "user",
            "parts": [
                { "inline_data": { "mime_type": ask.picture.media_type, "data": data } },
                { "text": ask.asking.question },
            ],
        }],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": ask.asking.schema,
            "maxOutputTokens": MAX_OUTPUT_TOKENS,
        },
    });
    if model.starts_with("gemini-3") && model.contains("flash") {
        // Flash models think a little by default; `minimal` is theirs alone (Pro models take
        // only `low` and `high`, and keep their default).
        body["generationConfig"]["thinkingConfig"] = json!({ "thinkingLevel": "minimal" });
    }
    ask.add_extra(&mut body);
    let mut headers = Vec::new();
    if let Some(key) = ask.key {
        headers.push(("x-goog-api-key", key.expose()));
    }
    let url = ask.url(&format!("models/{model}:generateContent"));
    let reply = ask.http.post_json(&url, &headers, &body)?;
    read_gemini(&reply, model)
}

/// Reads a Gemini answer: the text of its first candidate, a block or safety stop, or why there
/// is none. Pure.
pub(super) fn read_gemini(reply: &Reply, model: &str) -> Result<Answer, Fault> {
    let answer = gemini::answer_of(reply)?;
    let candidate = answer.pointer("/candidates/0");
    let finish = candidate
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if gemini::REFUSALS.contains(&finish) {
        return Err(Fault::new(
            FaultKind::Refused,
            format!("the answer was stopped ({finish})"),
        ));
    }
    let text: String = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|part| part.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect();
    if text.trim().is_empty() {
        return Err(Fault::new(
            FaultKind::Empty,
            format!(
                "the answer has no text ({}): {}",
                if finish.is_empty() {
                    "no finish reason"
                } else {
                    finish
                },
                snippet(&reply.body)
            ),
        ));
    }
    let usage = answer.get("usageMetadata");
    let tokens = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_f64);
    // Thinking is billed as output.
    let output = match (tokens("candidatesTokenCount"), tokens("thoughtsTokenCount")) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    Ok(Answer {
        text,
        cost_usd: crate::price::tokens_cost(model, tokens("promptTokenCount"), output),
        model_version: gemini::text_of(&answer, "modelVersion"),
        request_id: gemini::text_of(&answer, "responseId"),
    })
}

/// Chat completions with an image, as OpenAI-compatible servers take it.
fn chat(ask: &Ask<'_>) -> Result<Answer, Fault> {
    let model = ask.describer.model;
    let mut body = json!({
        "model": model,
        "messages": [
            { "role": "system", "content": ask.asking.instructions },
            { "role": "user", "content": [
                { "type": "text", "text": ask.asking.question },
                { "type": "image_url", "image_url": { "url": ask.data_url() } },
            ] },
        ],
        "response_format": { "type": "json_schema", "json_schema": {
            "name": ask.asking.schema_name,
            "schema": ask.asking.schema,
            "strict": true,
        } },
        "stream": false,
    });
    // OpenAI's own chat completions refuse `max_tokens` for its newer models; other servers
    // may know only `max_tokens`.
    let cap = if ask.describer.profile.rules() == ProviderKind::OpenAi {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[cap] = MAX_OUTPUT_TOKENS.into();
    ask.add_extra(&mut body);
    let auth = ask.bearer();
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let reply = ask
        .http
        .post_json(&ask.url("chat/completions"), &headers, &body)?;
    read_chat(&reply, model)
}

/// Reads a chat completion: the message's content, its refusal, or why there is none. Pure.
pub(super) fn read_chat(reply: &Reply, model: &str) -> Result<Answer, Fault> {
    let request_id = reply.header("x-request-id").map(str::to_owned);
    if !reply.is_success() {
        return Err(openai::error(reply, request_id.as_deref()));
    }
    let answer = reply.json()?;
    let choice = answer.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    if let Some(refusal) = message
        .and_then(|m| m.get("refusal"))
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
    {
        return Err(Fault::new(FaultKind::Refused, refusal.to_owned()));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if finish == "content_filter" {
        return Err(Fault::new(FaultKind::Refused, "the answer was filtered"));
    }
    let text = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if text.trim().is_empty() {
        return Err(Fault::new(
            FaultKind::Empty,
            format!("the answer has no text: {}", snippet(&reply.body)),
        ));
    }
    let usage = answer.get("usage");
    let tokens = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_f64);
    let cost =
        crate::price::tokens_cost(model, tokens("prompt_tokens"), tokens("completion_tokens"));
    Ok(openai_answer(&answer, text.to_owned(), cost, request_id))
}

/// An answer in OpenAI's shape: the answering model and the response's id (else the
/// `x-request-id` header's) beside the text.
fn openai_answer(
    answer: &Value,
    text: String,
    cost_usd: Option<f64>,
    request_id: Option<String>,
) -> Answer {
    let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
    Answer {
        text,
        cost_usd,
        model_version: field("model"),
        request_id: field("id").or(request_id),
    }
}

/// A `command` program: the request as JSON on stdin (the task, the image's path and hash, the
/// prompt and what else the task gives, the instructions and schema), the answer as JSON on
/// stdout.
fn program(ask: &Ask<'_>) -> Result<Answer, Fault> {
    let scratch = command::scratch()?;
    let extension = crate::vocab::extension_of(ask.picture.media_type);
    let image = scratch.path().join(format!("image.{extension}"));
    std::fs::write(&image, ask.picture.bytes).map_err(|e| {
        Fault::new(
            FaultKind::Transient,
            format!("cannot write the image for the program: {e}"),
        )
    })?;
    let task = match ask.asking.task {
        Task::Judgement => "judge",
        _ => "describe",
    };
    let mut input = json!({
        "task": task,
        "image": image,
        "media_type": ask.picture.media_type,
        "master": ask.picture.master,
        "model": ask.describer.model,
    });
    if let (Some(fields), Some(about)) = (input.as_object_mut(), ask.asking.about.as_object()) {
        fields.extend(about.clone());
        fields.insert("instructions".into(), json!(ask.asking.instructions));
        fields.insert("schema".into(), ask.asking.schema.clone());
    }
    let stdout = command::run(
        &ask.describer.profile.command,
        ask.env.root,
        &[("IMAGEGEN_TASK", task)],
        &input.to_string(),
        ask.timeout,
        MAX_ANSWER_BYTES,
    )?;
    Ok(Answer {
        text: String::from_utf8_lossy(&stdout).into_owned(),
        cost_usd: None,
        model_version: None,
        request_id: None,
    })
}
