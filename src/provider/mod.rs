//! Providers: what turns a request into image bytes.
//!
//! The set is closed and dispatched with `match`: every wire format lives in its own file and
//! returns either the image or a [`Fault`] that says what kind of failure it was. This module
//! owns what is common to all of them: the API key, retries with backoff, and the checks that
//! keep anything that is not a sane, complete image out of the cache.

mod answer;
mod automatic1111;
pub(crate) mod batch;
mod bfl;
mod command;
pub(crate) mod describer;
mod gemini;
pub(crate) mod http;
mod ideogram;
mod openai;
mod openrouter;
pub(crate) mod placeholder;
mod poll;
mod recraft;
mod stability;
mod wire;
mod xai;

pub(crate) use answer::{accept, decode_base64, inspect};
pub(crate) use wire::{nearest_ratio, negative_field, prompt_as_sent, seed_sent};

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Config, Profile, ProviderKind};
use crate::outside::{self, Secrets};
use crate::price;
use crate::request::Request;

/// What a provider returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Generated {
    /// The encoded image, exactly as generated.
    pub(crate) bytes: Vec<u8>,
    /// The price the provider's answer itself implies (token usage), when it tells.
    pub(crate) cost_usd: Option<f64>,
    /// What the provider said about how it made the image.
    pub(crate) provenance: Provenance,
}

/// Facts a provider returns beside the image, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Provenance {
    /// The seed the provider used, when it says.
    pub(crate) seed: Option<u64>,
    /// The prompt as the provider rewrote it, when it did.
    pub(crate) revised_prompt: Option<String>,
    /// The exact model version that answered.
    pub(crate) model_version: Option<String>,
    /// The provider's id for the request, for support tickets.
    pub(crate) request_id: Option<String>,
    /// The size as the provider was asked for it, when it differs in form from the requested
    /// one (a size fitted to the model's rules, an aspect ratio and tier).
    pub(crate) sent_size: Option<String>,
}

/// A generated image after its checks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Master {
    pub(crate) bytes: Vec<u8>,
    pub(crate) format: ImageFormat,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) cost_usd: f64,
    pub(crate) elapsed: Duration,
    pub(crate) provenance: Provenance,
    /// How many requests it took.
    pub(crate) attempts: u32,
    /// The provider's batch it was made in, when it was (`mdbook-imagegen batch`).
    pub(crate) batch: Option<String>,
}

/// The image formats a master may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    /// A vector image, kept only after [`crate::svg::sanitize`].
    Svg,
}

impl ImageFormat {
    /// The file extension, without a dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Webp => "webp",
            ImageFormat::Svg => "svg",
        }
    }

    /// The media type.
    pub(crate) fn media_type(self) -> &'static str {
        crate::vocab::media_type_of(self.extension())
    }
}

/// Why a request failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The provider refused the prompt (moderation, safety). Never retried, never cached.
    Refused,
    /// The key is missing, wrong or not allowed to do this.
    Auth,
    /// The request itself is wrong (bad size, unknown model, …).
    Invalid,
    /// The account is out of credit or daily quota.
    Quota,
    /// The answer is not a usable image.
    BadImage,
    /// Too many requests; retried after the wait the provider asks for.
    RateLimited,
    /// A timeout, a dropped connection or a server error; retried with backoff.
    Transient,
    /// The provider answered without an image for no stated reason; retried once.
    Empty,
}

impl FaultKind {
    fn retryable(self) -> bool {
        matches!(
            self,
            FaultKind::RateLimited | FaultKind::Transient | FaultKind::Empty
        )
    }
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) kind: FaultKind,
    /// What happened, in the provider's words where it gave any.
    pub(crate) message: String,
    /// How long the provider asked us to wait before trying again.
    pub(crate) retry_after: Option<Duration>,
}

impl Fault {
    pub(crate) fn new(kind: FaultKind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Why an image could not be generated, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What went wrong and what to do, in the provider's words where it gave any.
    pub(crate) message: String,
    /// Whether a fallback profile may be tried: the failure was transient (retries ran out), or
    /// this profile could not be used at all (no key). Never after a refusal, a rejected key or
    /// an exhausted quota.
    pub(crate) may_fall_back: bool,
}

/// An API key. It is only ever written into a request header: its `Debug` hides it, and every
/// message that leaves this module has it removed.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <key>`, for an `authorization` header.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl Provenance {
    /// What a provider said about an image, fit to be kept in a committed record: secrets
    /// redacted, one line, capped.
    fn cleaned(self, secrets: &Secrets) -> Provenance {
        let short = |value: Option<String>, max| value.map(|v| secrets.clean(&v, max));
        Provenance {
            seed: self.seed,
            revised_prompt: short(self.revised_prompt, outside::KEPT_CHARS),
            model_version: short(self.model_version, outside::ID_CHARS),
            request_id: short(self.request_id, outside::ID_CHARS),
            sent_size: short(self.sent_size, outside::ID_CHARS),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Everything one provider call needs.
pub(crate) struct Call<'a> {
    pub(crate) request: &'a Request,
    pub(crate) profile: &'a Profile,
    pub(crate) key: Option<&'a Secret>,
    pub(crate) http: &'a http::Http,
    /// The book's root, where `command` programs run.
    pub(crate) root: &'a Path,
    pub(crate) timeout: Duration,
    /// How a provider that polls waits between polls (tests pass their own).
    pub(crate) sleep: &'a (dyn Fn(Duration) + Sync),
    /// How many images to ask for in one request (`n`, where the kind takes it; else 1).
    pub(crate) n: u32,
}

impl Call<'_> {
    /// `Bearer <key>`, for an `authorization` header, when the profile has a key.
    pub(crate) fn bearer(&self) -> Option<String> {
        self.key.map(Secret::bearer)
    }

    /// Adds the profile's `extra` fields to a JSON body, last, so that they win.
    pub(crate) fn add_extra(&self, fields: &mut serde_json::Map<String, serde_json::Value>) {
        for (name, value) in &self.profile.extra {
            fields.insert(name.clone(), value.clone());
        }
    }
}

/// How the generation of one build behaves: its settings, where it runs, and how it waits (tests
/// replace the sleep to check waits without taking them).
pub(crate) struct Env<'a> {
    pub(crate) config: &'a Config,
    pub(crate) root: &'a Path,
    pub(crate) sleep: &'a (dyn Fn(Duration) + Sync),
    /// Reads an environment variable (tests pass their own keys).
    pub(crate) var: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// Every secret of the build, redacted from whatever a provider says.
    pub(crate) secrets: &'a Secrets,
}

/// Runs `work` with what providers need from this machine: the real sleep, the process
/// environment, and every secret the book's profiles name (to redact).
pub(crate) fn with_machine_env<T>(
    config: &Config,
    root: &Path,
    work: impl FnOnce(&Env<'_>) -> T,
) -> T {
    let sleep = |wait| std::thread::sleep(wait);
    let var = |name: &str| std::env::var(name).ok();
    let secrets = Secrets::of_book(config.key_vars(), &var);
    work(&Env {
        config,
        root,
        sleep: &sleep,
        var: &var,
        secrets: &secrets,
    })
}

/// The largest side of a master we accept.
pub(crate) const MAX_SIDE: u32 = 8192;

/// The most memory decoding one master may take.
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The largest master we accept, in bytes.
pub(crate) const MAX_MASTER_BYTES: usize = 48 << 20;

/// Base64 (standard alphabet, padded), as the JSON APIs take images.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Generates one image with its profile, retrying what is worth retrying, and checks it.
pub(crate) fn generate(request: &Request, env: &Env<'_>) -> Result<Master, Failure> {
    generate_n(request, 1, env).map(|mut masters| masters.swap_remove(0))
}

/// Generates up to `n` images of one request in a single call where the provider takes `n`
/// ([`ProviderKind::takes_n`]), else one; each checked. Returns at least one image; the
/// caller asks again for any it still lacks.
pub(crate) fn generate_n(request: &Request, n: u32, env: &Env<'_>) -> Result<Vec<Master>, Failure> {
    let started = Instant::now();
    let config = env.config;
    let profile = config
        .profiles
        .get(&request.profile)
        .expect("requests are planned from the book's profiles");
    let estimate = price::estimate(request, profile, &config.prices).unwrap_or(0.0);

    if request.kind == ProviderKind::Placeholder {
        let generated = placeholder::generate(request);
        return finish(generated, estimate, started, 1)
            .map(|m| vec![m])
            .map_err(|fault| Failure {
                message: format!(
                    "the `{}` provider returned {}",
                    request.profile, fault.message
                ),
                may_fall_back: false,
            });
    }

    let key = match resolve_key(profile, env.var) {
        Ok(key) => key,
        Err(message) => {
            return Err(Failure {
                message: format!("profile `{}`: {message}", request.profile),
                may_fall_back: true,
            });
        }
    };
    let timeout = profile.timeout.unwrap_or(config.retry.timeout);
    let http = http::Http::new(&profile.base_url, timeout);
    let call = Call {
        request,
        profile,
        key: key.as_ref(),
        http: &http,
        root: env.root,
        timeout,
        sleep: env.sleep,
        n: if request.kind.takes_n(&request.model) {
            n.max(1)
        } else {
            1
        },
    };
    with_retries(&call, env, estimate, started)
}

/// Sends a request until it answers, retrying what is worth retrying within the book's policy.
fn with_retries(
    call: &Call<'_>,
    env: &Env<'_>,
    estimate: f64,
    started: Instant,
) -> Result<Vec<Master>, Failure> {
    let request = call.request;
    let who = Who {
        profile: &request.profile,
        kind: request.kind,
        model: &request.model,
        task: Task::Image,
    };
    let mut masters = retrying(&who, call.profile, env, |attempt| {
        // With `n`, a bad image among good ones is left out (the caller asks for it again
        // alone), rather than paying for every image again.
        let mut masters = Vec::new();
        let mut bad = None;
        for generated in dispatch_n(call)? {
            match finish(generated, estimate, started, attempt) {
                Ok(master) => masters.push(master),
                Err(fault) => bad = Some(fault),
            }
        }
        match bad {
            Some(fault) if masters.is_empty() => Err(fault),
            Some(fault) => {
                tracing::debug!("an image of the answer left out: {}", fault.message);
                Ok(masters)
            }
            None => Ok(masters),
        }
    })?;
    for master in &mut masters {
        master.provenance = std::mem::take(&mut master.provenance).cleaned(env.secrets);
    }
    Ok(masters)
}

/// What a provider is asked to do, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Generate an image.
    Image,
    /// Describe an image (alt text).
    Description,
    /// Judge an image against its prompt.
    Judgement,
    /// Send, poll or read a batch of images.
    Batch,
}

impl Task {
    /// What the task produces, in messages.
    fn product(self) -> &'static str {
        match self {
            Task::Image => "image",
            Task::Description => "description",
            Task::Judgement => "judgement",
            Task::Batch => "batch",
        }
    }
}

/// Who is asked, for messages: the profile, its kind and model, and the task.
pub(crate) struct Who<'a> {
    pub(crate) profile: &'a str,
    pub(crate) kind: ProviderKind,
    pub(crate) model: &'a str,
    pub(crate) task: Task,
}

/// Runs `attempt` (given its 1-based number) until it succeeds, retrying what is worth
/// retrying within the book's policy: rate limits after the provider's wait, transient
/// failures with backoff, an empty answer once. Every fault's message has the book's secrets
/// redacted, and is put on one line and capped, before anything else is done with it.
pub(crate) fn retrying<T>(
    who: &Who<'_>,
    profile: &Profile,
    env: &Env<'_>,
    mut attempt: impl FnMut(u32) -> Result<T, Fault>,
) -> Result<T, Failure> {
    let policy = env.config.retry;
    let attempts_allowed = policy.retries + 1;
    let mut empty_retried = false;
    let mut number = 0;
    loop {
        number += 1;
        let mut fault = match attempt(number) {
            Ok(value) => return Ok(value),
            Err(fault) => fault,
        };
        // Before anything else is done with the provider's words: its key (and every other
        // secret) out, one line, capped.
        fault.message = env.secrets.clean(&fault.message, outside::SHOWN_CHARS);
        let give_up = |fault: &Fault, extra: String| Failure {
            message: explain(who, fault, &extra),
            may_fall_back: fault.kind.retryable(),
        };
        if !fault.kind.retryable() {
            return Err(give_up(&fault, hint(fault.kind, profile, who.task)));
        }
        if fault.kind == FaultKind::Empty {
            if empty_retried {
                return Err(give_up(&fault, String::new()));
            }
            empty_retried = true;
        }
        if number >= attempts_allowed {
            return Err(give_up(
                &fault,
                format!(
                    " (gave up after {number} attempt{})",
                    if number == 1 { "" } else { "s" }
                ),
            ));
        }
        let wait = fault.retry_after.unwrap_or_else(|| backoff(number));
        if wait > policy.max_wait {
            return Err(give_up(
                &fault,
                format!(
                    " (it asks to wait {}, more than `max-retry-wait` = {})",
                    humantime::format_duration(round(wait)),
                    humantime::format_duration(policy.max_wait)
                ),
            ));
        }
        tracing::info!(
            "{}; retrying in {} (attempt {} of {attempts_allowed})",
            explain(who, &fault, ""),
            humantime::format_duration(round(wait)),
            number + 1
        );
        (env.sleep)(wait);
    }
}

/// A failure as the user reads it: the profile, its kind and model, what went wrong.
fn explain(who: &Who<'_>, fault: &Fault, extra: &str) -> String {
    let product = who.task.product();
    let what = match (fault.kind, who.task) {
        (FaultKind::Refused, Task::Image) => "refused the prompt".to_owned(),
        (FaultKind::Refused, Task::Description) => "refused to describe the image".to_owned(),
        (FaultKind::Refused, Task::Judgement) => "refused to judge the image".to_owned(),
        (FaultKind::Refused, Task::Batch) => "refused the batch".to_owned(),
        (FaultKind::Auth, _) => "refused the key".to_owned(),
        (FaultKind::Quota, _) => "is out of quota".to_owned(),
        (FaultKind::Invalid, _) => "rejected the request".to_owned(),
        (FaultKind::BadImage, _) => format!("returned no usable {product}"),
        (FaultKind::RateLimited, _) => "is rate limiting".to_owned(),
        (FaultKind::Transient, _) => "failed".to_owned(),
        (FaultKind::Empty, _) => format!("returned no {product}"),
    };
    format!(
        "`{}` ({} {}) {what}: {}{extra}",
        who.profile,
        who.kind.as_str(),
        who.model,
        fault.message
    )
}

/// One request, in the wire format of its kind.
/// One request for `call.n` images: only OpenAI's Images API takes `n`; every other kind
/// answers with one.
fn dispatch_n(call: &Call<'_>) -> Result<Vec<Generated>, Fault> {
    if call.n > 1 && call.request.kind == ProviderKind::OpenAi {
        openai::call_n(call)
    } else {
        dispatch(call).map(|generated| vec![generated])
    }
}

fn dispatch(call: &Call<'_>) -> Result<Generated, Fault> {
    match call.request.kind {
        ProviderKind::Placeholder => Ok(placeholder::generate(call.request)),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => openai::call(call),
        ProviderKind::Gemini => gemini::call(call),
        ProviderKind::Stability => stability::call(call),
        ProviderKind::Automatic1111 => automatic1111::call(call),
        ProviderKind::Command => command::call(call),
        ProviderKind::Bfl => bfl::call(call),
        ProviderKind::OpenRouter => openrouter::call(call),
        ProviderKind::Recraft => recraft::call(call),
        ProviderKind::Ideogram => ideogram::call(call),
        ProviderKind::Xai => xai::call(call),
    }
}

/// What the user can do about a permanent failure.
fn hint(kind: FaultKind, profile: &Profile, task: Task) -> String {
    let env = profile.api_key_env.join(" or ");
    match kind {
        FaultKind::Auth if !env.is_empty() => {
            format!(" (check the key in {env}, and that its account may use this model)")
        }
        FaultKind::Refused if task == Task::Image => {
            " (reword the prompt; refused prompts are never cached and never retried)".to_owned()
        }
        FaultKind::Refused if task == Task::Batch => String::new(),
        FaultKind::Refused if task == Task::Description => {
            " (write the directive's `alt` yourself; refusals are never cached)".to_owned()
        }
        FaultKind::Refused => {
            " (the image keeps no judgement; refusals are never cached)".to_owned()
        }
        FaultKind::Quota => " (add credit or wait for the quota to reset)".to_owned(),
        _ => String::new(),
    }
}

/// Rounds a wait to whole milliseconds for display.
fn round(wait: Duration) -> Duration {
    Duration::from_millis(wait.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The wait before retry `attempt` (1-based) when the provider gives no hint: 0.5 s doubled at
/// each attempt, capped at 8 s, less up to a quarter at random so that parallel requests spread.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(Duration::from_secs(8));
    base.mul_f64(1.0 - fastrand::f64() * 0.25)
}

/// Reads the profile's key from the environment.
fn resolve_key(
    profile: &Profile,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, String> {
    for name in &profile.api_key_env {
        if let Some(value) = var(name) {
            let value = value.trim();
            if !value.is_empty() {
                return Ok(Some(Secret(value.to_owned())));
            }
        }
    }
    if profile.key_required {
        let names = profile.api_key_env.join(" or ");
        return Err(format!(
            "needs an API key in the environment variable {names}, which is not set; export it before building (keys are read only from the environment, never from `book.toml`)"
        ));
    }
    Ok(None)
}

/// Checks what a provider returned and makes it a master.
fn finish(
    generated: Generated,
    estimate: f64,
    started: Instant,
    attempts: u32,
) -> Result<Master, Fault> {
    let (bytes, format, width, height) =
        accept(generated.bytes).map_err(|message| Fault::new(FaultKind::BadImage, message))?;
    Ok(Master {
        bytes,
        format,
        width,
        height,
        cost_usd: generated
            .cost_usd
            .filter(|c| c.is_finite() && *c >= 0.0)
            .unwrap_or(estimate),
        elapsed: started.elapsed(),
        provenance: generated.provenance,
        attempts,
        batch: None,
    })
}

/// Makes a master of an image a batch answered: the checks every generated image passes (a
/// full decode under limits, or an SVG that sanitizes), priced at `price` unless the answer
/// says what it cost, with what the provider said cleaned of secrets.
pub(crate) fn collected(
    generated: Generated,
    price: f64,
    batch: &str,
    secrets: &Secrets,
) -> Result<Master, String> {
    let mut master = finish(generated, price, Instant::now(), 1).map_err(|f| f.message)?;
    master.provenance = std::mem::take(&mut master.provenance).cleaned(secrets);
    master.elapsed = Duration::ZERO;
    master.batch = Some(secrets.clean(batch, outside::ID_CHARS));
    Ok(master)
}

#[cfg(test)]
mod tests;
