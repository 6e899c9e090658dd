//! Limits and retries: `on-error`, `max-concurrency`, `max-cost-per-build`, the retry policy
//! (`retries`, `max-retry-wait`, `timeout`) and the durations they are written in, and the most a
//! text setting or an `extra` table may hold, so that every cache record stays readable.

use std::time::Duration;

use super::styles::RawStyle;
use super::{Invalid, RawConfig};
use crate::error::Result;

/// The highest `max-concurrency` accepted; more only invites rate limiting.
const MAX_CONCURRENCY_LIMIT: usize = 64;

/// How a failing request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The longest single wait; a provider that asks for more gets no retry.
    pub(crate) max_wait: Duration,
    /// How long one request may take, from connecting to the last byte.
    pub(crate) timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(600),
        }
    }
}

/// What a directive that cannot be turned into an image becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OnError {
    /// The build fails and lists every failed directive with its file and line.
    #[default]
    Fail,
    /// The directive becomes a visible figure that shows the error; the build goes on.
    Placeholder,
}

/// Reads a duration such as `90s` or `10m`; zero is refused (no request finishes in no time,
/// and a zero wait would turn retries off: `retries = 0` says that).
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("`{text}` is not a duration; write it like `90s` or `10m`"))?;
    if duration.is_zero() {
        return Err(format!(
            "`{text}` is no time at all; write a duration such as `90s` or `10m` (to turn retries off, set `retries = 0`)"
        ));
    }
    Ok(duration)
}

/// The most characters of a text setting that goes into every prompt (`prompt-prefix`,
/// `prompt-suffix`, `negative-prompt`, a style's `prompt` and `negative`).
pub(crate) const MAX_SETTING_CHARS: usize = 16_000;

/// The most bytes of a profile's `extra` (or the describer's), written as JSON.
pub(crate) const MAX_EXTRA_BYTES: usize = 16 << 10;

/// Refuses text settings that would make every record larger than the cache reads back (the
/// image would be paid for again on every build), naming the key.
pub(super) fn setting_sizes(raw: &RawConfig) -> std::result::Result<(), Invalid> {
    let mut texts: Vec<(String, &str)> = Vec::new();
    for (key, value) in [
        ("prompt-prefix", &raw.prompt_prefix),
        ("prompt-suffix", &raw.prompt_suffix),
        ("negative-prompt", &raw.negative_prompt),
    ] {
        if let Some(value) = value {
            texts.push((key.to_owned(), value));
        }
    }
    for (name, style) in &raw.styles {
        match style {
            RawStyle::Words(prompt) => texts.push((format!("styles.{name}"), prompt)),
            RawStyle::Table {
                prompt, negative, ..
            } => {
                texts.push((format!("styles.{name}.prompt"), prompt));
                if let Some(negative) = negative {
                    texts.push((format!("styles.{name}.negative"), negative));
                }
            }
        }
    }
    for (key, text) in texts {
        let chars = text.chars().count();
        if chars > MAX_SETTING_CHARS {
            return Err((
                key,
                format!(
                    "{chars} characters; at most {MAX_SETTING_CHARS} go into every prompt (the cache keeps each image's prompt in its record, and reads back records of bounded size)"
                ),
            ));
        }
    }
    let extras = raw
        .providers
        .iter()
        .map(|(name, p)| (format!("providers.{name}.extra"), &p.extra))
        .chain(
            raw.describe
                .iter()
                .map(|d| ("describe.extra".to_owned(), &d.extra)),
        )
        .chain(
            raw.judge
                .iter()
                .map(|j| ("judge.extra".to_owned(), &j.extra)),
        );
    for (key, extra) in extras {
        let bytes = serde_json::to_string(extra).map_or(0, |t| t.len());
        if bytes > MAX_EXTRA_BYTES {
            return Err((
                key,
                format!(
                    "{} KB of JSON; at most {} KB (it is kept in each image's record)",
                    bytes.div_ceil(1024),
                    MAX_EXTRA_BYTES >> 10
                ),
            ));
        }
    }
    Ok(())
}

/// `on-error`, `max-cost-per-build` and `max-concurrency`.
pub(super) fn limits(raw: &RawConfig) -> std::result::Result<(OnError, usize), Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let on_error = match raw.on_error.as_deref() {
        None | Some("fail") => OnError::Fail,
        Some("placeholder") => OnError::Placeholder,
        Some(other) => {
            return Err(config_error(
                "on-error",
                format!("`{other}` is not a choice; use `\"fail\"` or `\"placeholder\"`"),
            ));
        }
    };

    if let Some(cost) = raw.max_cost_per_build
        && !(cost.is_finite() && cost >= 0.0)
    {
        return Err(config_error(
            "max-cost-per-build",
            format!("{cost} is not an amount; use a number of US dollars such as `5.0`"),
        ));
    }

    let max_concurrency = raw.max_concurrency.unwrap_or(4);
    if !(1..=MAX_CONCURRENCY_LIMIT).contains(&max_concurrency) {
        return Err(config_error(
            "max-concurrency",
            format!("{max_concurrency} is out of range; use 1 to {MAX_CONCURRENCY_LIMIT}"),
        ));
    }

    Ok((on_error, max_concurrency))
}

/// `retries`, `max-retry-wait` and `timeout`.
pub(super) fn retry(raw: &mut RawConfig) -> std::result::Result<RetryPolicy, Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let mut retry = RetryPolicy::default();
    if let Some(retries) = raw.retries.take() {
        if retries > 10 {
            return Err(config_error(
                "retries",
                format!("{retries} is out of range; use 0 to 10"),
            ));
        }
        retry.retries = retries;
    }
    if let Some(wait) = raw.max_retry_wait.take() {
        retry.max_wait = duration(&wait).map_err(|e| config_error("max-retry-wait", e))?;
    }
    if let Some(timeout) = raw.timeout.take() {
        retry.timeout = duration(&timeout).map_err(|e| config_error("timeout", e))?;
    }
    Ok(retry)
}
