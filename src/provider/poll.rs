//! Polling a provider's asynchronous job (BFL's tasks, Ideogram's generations) until it is
//! done: waits that grow from 0.5 s to 4 s (or what a `Retry-After` asks), for at most the
//! profile's timeout, each poll waiting only for what is left of it. A poll that fails for a
//! passing reason (a dropped connection, a busy server, an answer this version cannot read) is
//! polled again: the job runs and is paid for, and submitting it again would pay twice.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::Reply;
use super::{Call, Fault, FaultKind};

/// The first wait between polls; it grows to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(4);

/// What one poll's answer says.
pub(super) enum Step {
    /// The job is done: this is its answer.
    Done(Value),
    /// Not yet; the status it gave, for the message if time runs out.
    Wait(String),
    /// The job failed or was refused.
    Fail(Fault),
}

/// Polls `url` until `step` says the job is done or failed. `what` names the job in messages
/// (`task`, `generation`); `error` classifies an error answer in the provider's terms.
pub(super) fn until_done(
    call: &Call<'_>,
    url: &str,
    headers: &[(&str, &str)],
    what: &str,
    error: fn(&Reply) -> Fault,
    step: impl Fn(Value) -> Step,
) -> Result<Value, Fault> {
    let started = Instant::now();
    let (mut waited, mut wait) = (Duration::ZERO, FIRST_WAIT);
    let mut last = String::new();
    loop {
        if started.elapsed().max(waited) >= call.timeout {
            return Err(Fault::new(
                FaultKind::Transient,
                format!(
                    "the {what} was not ready within {} (raise `timeout` for slow models){last}",
                    humantime::format_duration(call.timeout)
                ),
            ));
        }
        (call.sleep)(wait);
        waited += wait;
        wait = (wait * 2).min(MAX_WAIT);
        let left = call.timeout.saturating_sub(started.elapsed().max(waited));
        let answer = match call.http.get(url, headers, left) {
            Ok(reply) if reply.is_success() => reply.json(),
            Ok(reply) => Err(error(&reply)),
            Err(fault) => Err(fault),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(fault) if fault.kind.retryable() || fault.kind == FaultKind::BadImage => {
                tracing::debug!("polling {}: {}", super::http::shorten(url), fault.message);
                if let Some(asked) = fault.retry_after {
                    wait = asked.min(call.timeout);
                }
                last = format!("; the last poll said: {}", fault.message);
                continue;
            }
            Err(fault) => return Err(fault),
        };
        match step(answer) {
            Step::Done(answer) => return Ok(answer),
            Step::Fail(fault) => return Err(fault),
            Step::Wait(status) => last = format!("; the last status was `{status}`"),
        }
    }
}
