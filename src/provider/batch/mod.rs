//! Providers' batch APIs: many images in one job, at half the price, answered within a day.
//!
//! OpenAI (`openai.rs`): a JSONL file uploaded to `POST {base-url}/files`, a batch made from it
//! with `POST {base-url}/batches`, polled, and its output and error files read. Gemini
//! (`gemini.rs`): `models/{model}:batchGenerateContent` with the requests inline, or a JSONL
//! file uploaded through the Files API, polled as `batches/{id}`. Each line carries its image's
//! cache key (`custom_id`, `key`), so answers are matched to images by key alone.
//!
//! Lines are built from the same request bodies as synchronous calls (`openai::body`,
//! `gemini::body`), and answers are read by the same readers (`openai::read_all`,
//! `gemini::read_answer`), so a collected image passes exactly the checks a generated one
//! does. Answer files are read streaming, one capped line at a time.

mod gemini;
mod openai;

use std::time::Duration;

use serde_json::Value;

use super::http::{Http, Reply};
use super::{Env, Failure, Fault, FaultKind, Generated, Secret, Task, Who};
use crate::cache::key::CacheKey;
use crate::config::{Profile, ProviderKind};
use crate::request::Request;

/// One image of a batch: its cache key and its request (references read).
pub(crate) struct Item<'a> {
    pub(crate) key: CacheKey,
    pub(crate) request: &'a Request,
}

/// What one batch sends: the endpoint its lines call, their keys in order, and the JSONL.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) endpoint: &'static str,
    pub(crate) model: String,
    pub(crate) keys: Vec<CacheKey>,
    pub(crate) jsonl: Vec<u8>,
    /// The pixels its images are asked at, in all (what inline answers would weigh).
    pub(crate) pixels: u64,
}

/// Where a batch is, in the provider's words mapped to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchState {
    /// Accepted, checked or queued; nothing made yet.
    Pending,
    Running,
    /// Done making; the answer files are being written.
    Finalizing,
    Completed,
    /// The provider refused the whole batch (a malformed file, a model it does not batch).
    Failed,
    /// The window ran out: what finished is there, the rest is not.
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchState {
    /// Whether the provider is done with it: its answers (if any) can be read.
    pub(crate) fn finished(self) -> bool {
        matches!(
            self,
            BatchState::Completed
                | BatchState::Failed
                | BatchState::Expired
                | BatchState::Cancelled
        )
    }

    /// Its name, as `status` prints it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "pending",
            BatchState::Running => "in progress",
            BatchState::Finalizing => "finalizing",
            BatchState::Completed => "completed",
            BatchState::Failed => "failed",
            BatchState::Expired => "expired",
            BatchState::Cancelling => "cancelling",
            BatchState::Cancelled => "cancelled",
        }
    }
}

/// A batch as its provider describes it.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The provider's id (`batch_…`, `batches/…`), checked to be of its alphabet.
    pub(crate) id: String,
    pub(crate) state: BatchState,
    pub(crate) total: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    /// Unix seconds, when the provider says.
    pub(crate) expires_at: Option<u64>,
    /// Why the whole batch failed, when it did (cleaned).
    pub(crate) error: Option<String>,
    results: Results,
}

/// Where a finished batch's answers are.
#[derive(Debug, Clone)]
enum Results {
    None,
    /// OpenAI's output and error files.
    Files {
        output: Option<String>,
        error: Option<String>,
    },
    /// Gemini's answers inside the batch itself.
    Inline(Vec<Value>),
    /// Gemini's answers file.
    File(String),
}

/// One answer of a batch: the key it names (as the provider echoed it, unchecked) and what it
/// holds. `sent_size` is left empty for the caller, who knows the request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) key: String,
    pub(crate) result: Result<Generated, Fault>,
}

/// The longest line of an answers file: a base64 master of the largest size taken, and room.
pub(crate) const MAX_LINE_BYTES: usize = super::MAX_MASTER_BYTES / 3 * 4 + (1 << 20);

/// How long one upload, download or poll may take: files of a batch are large.
const FILE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Builds the batches `items` go in: one endpoint and model per batch, split at the provider's
/// limits (requests and bytes per file). Pure.
pub(crate) fn chunks(profile: &Profile, items: &[Item<'_>]) -> Vec<Chunk> {
    let (max_lines, max_bytes) = match profile.kind {
        ProviderKind::Gemini => (gemini::MAX_REQUESTS, gemini::MAX_FILE_BYTES),
        _ => (openai::MAX_REQUESTS, openai::MAX_FILE_BYTES),
    };
    let mut chunks: Vec<Chunk> = Vec::new();
    for item in items {
        let (endpoint, mut line) = match profile.kind {
            ProviderKind::Gemini => gemini::line(item),
            _ => openai::line(item, profile),
        };
        line.push(b'\n');
        let open = chunks.iter().rposition(|c| {
            c.endpoint == endpoint
                && c.model == item.request.model
                && c.keys.len() < max_lines
                && c.jsonl.len() + line.len() <= max_bytes
        });
        match open {
            Some(i) => {
                chunks[i].keys.push(item.key);
                chunks[i].jsonl.extend_from_slice(&line);
                chunks[i].pixels += pixels(item.request);
            }
            None => chunks.push(Chunk {
                endpoint,
                model: item.request.model.clone(),
                keys: vec![item.key],
                jsonl: line,
                pixels: pixels(item.request),
            }),
        }
    }
    chunks
}

/// The pixels a request asks for.
fn pixels(request: &Request) -> u64 {
    u64::from(request.size.width) * u64::from(request.size.height)
}

/// The size as a request is sent (for its record), as the synchronous call would send it.
pub(crate) fn sent_size(request: &Request, profile: &Profile) -> String {
    match profile.kind {
        ProviderKind::Gemini => super::gemini::body(request).1,
        _ => super::openai::body(request, profile, 1).1,
    }
}

/// A profile's batch API, with its key and a client for large files.
pub(crate) struct Client<'a> {
    name: &'a str,
    profile: &'a Profile,
    key: Option<Secret>,
    http: Http,
    env: &'a Env<'a>,
}

impl<'a> Client<'a> {
    /// The batch API of profile `name`, with its key from the environment.
    pub(crate) fn new(
        name: &'a str,
        profile: &'a Profile,
        env: &'a Env<'a>,
    ) -> Result<Self, String> {
        let key = super::resolve_key(profile, env.var)
            .map_err(|message| format!("profile `{name}`: {message}"))?;
        Ok(Client {
            name,
            profile,
            key,
            http: Http::new(&profile.base_url, FILE_TIMEOUT),
            env,
        })
    }

    /// Sends one batch: uploads its file when one is needed and creates the batch. A request
    /// that may have created the batch is never sent twice (only a rate limit is retried
    /// there), so a batch is never paid twice.
    pub(crate) fn submit(&self, chunk: &Chunk) -> Result<Batch, Failure> {
        self.with(&chunk.model, |attempt| match self.profile.kind {
            ProviderKind::Gemini => gemini::submit(self, chunk, attempt),
            _ => openai::submit(self, chunk, attempt),
        })
        .map(|batch| self.cleaned(batch))
    }

    /// The batch `id` as its provider sees it now.
    pub(crate) fn get(&self, id: &str) -> Result<Batch, Failure> {
        self.with(&self.profile.model, |_| match self.profile.kind {
            ProviderKind::Gemini => gemini::get(self, id),
            _ => openai::get(self, id),
        })
        .map(|batch| self.cleaned(batch))
    }

    /// A batch whose error text (the provider's words) has the book's secrets redacted first,
    /// then is put on one line and capped.
    fn cleaned(&self, mut batch: Batch) -> Batch {
        batch.error = (batch.error.take())
            .map(|e| self.env.secrets.clean(&e, crate::outside::SHOWN_CHARS))
            .filter(|e| !e.is_empty());
        batch
    }

    /// Reads every answer of a finished batch, streaming, and hands each to `each`; `model`
    /// prices and reads them.
    pub(crate) fn answers(
        &self,
        batch: &Batch,
        model: &str,
        each: &mut dyn FnMut(Answer),
    ) -> Result<(), Failure> {
        let read = match &batch.results {
            Results::None => Ok(()),
            Results::Files { output, error } => [output, error]
                .into_iter()
                .flatten()
                .try_for_each(|file| openai::read_file(self, file, model, each)),
            Results::Inline(answers) => {
                answers
                    .iter()
                    .for_each(|answer| each(gemini::answer(answer, true)));
                Ok(())
            }
            Results::File(name) => gemini::read_file(self, name, each),
        };
        // Reading is not retried: `each` may have taken some answers already.
        read.map_err(|fault| self.failure(model, fault))
    }

    /// Runs `attempt` with the provider's retry policy, as a batch request.
    fn with<T>(
        &self,
        model: &str,
        attempt: impl FnMut(u32) -> Result<T, Fault>,
    ) -> Result<T, Failure> {
        let who = Who {
            profile: self.name,
            kind: self.profile.kind,
            model,
            task: Task::Batch,
        };
        super::retrying(&who, self.profile, self.env, attempt)
    }

    /// A fault as the user reads it, secrets out.
    fn failure(&self, model: &str, mut fault: Fault) -> Failure {
        fault.message = self
            .env
            .secrets
            .clean(&fault.message, crate::outside::SHOWN_CHARS);
        Failure {
            message: format!(
                "`{}` ({} {model}): {}",
                self.name,
                self.profile.kind.as_str(),
                fault.message
            ),
            may_fall_back: false,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.profile.base_url)
    }
}

/// A fault that must not be retried because the request may have done its work: anything but
/// a rate limit (which says it was not done).
fn once(mut fault: Fault) -> Fault {
    if fault.kind != FaultKind::RateLimited && fault.kind.retryable() {
        fault.message.push_str(
            " (not sent again: the batch may have been made; see `mdbook-imagegen batch status` and the provider's dashboard before submitting again)",
        );
        fault.kind = FaultKind::Invalid;
    }
    fault
}

/// A JSON answer's text field, cut to an id's length.
fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(|s| crate::outside::clean(s, crate::outside::ID_CHARS))
}

/// A JSON answer's count field.
fn count(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0)
}

/// The answer for a line of an answers file that is not JSON: it names no key.
fn not_json(line: &[u8]) -> Answer {
    Answer {
        key: String::new(),
        result: Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "a line of the answers is not JSON: {}",
                super::http::snippet(line)
            ),
        )),
    }
}

/// A reply that is not JSON or is not what the API documents.
fn malformed(reply: &Reply, what: &str) -> Fault {
    Fault::new(
        FaultKind::BadImage,
        format!(
            "the answer is not {what}: {}",
            super::http::snippet(&reply.body)
        ),
    )
}

#[cfg(test)]
mod tests;
