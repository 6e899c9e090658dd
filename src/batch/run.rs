//! The `batch` commands, at the edge: `submit` plans the book and sends what it lacks,
//! `status` asks the provider about each batch file, `collect` reads what finished, checks it,
//! and stores it through a build (so records, web files and the remote cache are as if the
//! build had generated it), then removes the batch files it is done with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::hook::{Batching, Collect, Spooled, Submission};
use super::state::{FORMAT, Line, State};
use super::store;
use crate::cache::key::CacheKey;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::outside::Secrets;
use crate::pipeline::{ImageGen, PlannedImage};
use crate::provider::batch::{Answer, Batch, Client, Item};
use crate::provider::{Env, Failure};

/// A batch costs this share of the synchronous price (OpenAI and Gemini: half).
pub(crate) const BATCH_SHARE: f64 = 0.5;

/// The most bytes of collected masters kept in memory until they are stored; the rest wait in
/// spool files.
const IN_MEMORY_BYTES: usize = 256 << 20;

/// A book's batches, for the `batch` commands.
pub struct Batches {
    input: String,
    config: Config,
    root: PathBuf,
    /// Where each cache key's directive is (`src/a.md:3`), for messages: known to `submit`
    /// (which plans the book); `collect` reads it from the batch files.
    places: BTreeMap<String, String>,
}

/// What `submit` did.
#[derive(Debug, Default, Serialize)]
pub struct Submitted {
    /// The batches sent, each as its committed file says.
    pub batches: Vec<BatchRow>,
    /// Images the book lacks that went in no batch, and why.
    pub skipped: Vec<Skipped>,
    /// The estimated price of what was sent, at the batch price, in US dollars.
    pub cost: f64,
    /// What the same images cost synchronously.
    pub sync_cost: f64,
    /// Batches that could not be sent (the images stay for the next `submit`).
    pub errors: Vec<String>,
}

/// An image left out of the batches.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Its cache key, in hex.
    pub key: String,
    /// Its directive, as `plan` shows it (`src/a.md:3`).
    pub place: String,
    /// Why.
    pub reason: String,
}

/// One batch, as a batch file and its provider describe it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct BatchRow {
    /// The batch file, relative to the book.
    pub file: String,
    /// The profile that sent it.
    pub profile: String,
    /// The profile's kind.
    pub provider: String,
    /// The model of its lines.
    pub model: String,
    /// The provider's id of the batch.
    pub id: String,
    /// `pending`, `in progress`, `finalizing`, `completed`, `failed`, `expired`, `cancelling`,
    /// `cancelled`; `unknown` when the provider was not asked or could not answer.
    pub state: String,
    /// Lines answered with an image so far.
    pub done: u64,
    /// Lines answered with an error so far.
    pub failed: u64,
    /// Lines in all.
    pub total: u64,
    /// When it was sent, RFC 3339.
    pub submitted_at: String,
    /// When the provider gives up on what is unfinished, RFC 3339.
    pub expires_at: String,
    /// What went wrong asking about it, or why the whole batch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `collect` did.
#[derive(Debug, Default, Serialize)]
pub struct Collected {
    /// Each batch file looked at, with its state.
    pub batches: Vec<BatchRow>,
    /// Images stored in the cache.
    pub stored: usize,
    /// Their price, at the batch price.
    pub cost: f64,
    /// Lines that made no image (left for the next `submit`), with their directive's place.
    pub failed: Vec<Skipped>,
    /// What else was noticed: answers for keys no line asked for, images no directive wants
    /// any more.
    pub notes: Vec<String>,
    /// Batches still running.
    pub pending: usize,
    /// Batches that could not be asked about or read, and images that could not be stored:
    /// their batch files are kept for the next `collect`.
    pub errors: Vec<String>,
}

impl ImageGen {
    /// The book's batches, from mdBook's input (as the team commands load it).
    pub fn batches(&self, input: &str) -> Result<Batches> {
        let (config, root) = crate::pipeline::settings_of(input)?;
        Ok(Batches {
            input: input.to_owned(),
            config,
            root,
            places: BTreeMap::new(),
        })
    }
}

/// Where each cache key's directive is (`src/a.md:3`), as `plan` sees the book.
fn places(input: &str) -> Result<BTreeMap<String, String>> {
    let book = crate::pipeline::planned_book(input)?;
    let mut places = BTreeMap::new();
    for row in book.planned.iter().map(PlannedImage::from) {
        let place = format!("{}:{}", row.file, row.line);
        let keys = [row.key, row.dark_key, row.edits].into_iter().flatten();
        for key in keys.chain(row.candidates) {
            places.entry(key).or_insert_with(|| place.clone());
        }
    }
    Ok(places)
}

impl Batches {
    fn cache_root(&self) -> PathBuf {
        self.root.join(&self.config.cache_dir)
    }

    fn place(&self, key: &str) -> String {
        self.places
            .get(key)
            .cloned()
            .unwrap_or_else(|| "(no directive of this checkout)".to_owned())
    }

    /// Sends every image the book lacks that a batch-capable profile would make (and, with
    /// `force`, those keys again) in batches, after checking the budget (`max_cost`, else
    /// `max-cost-per-build`, and `max-images-per-build`) at the batch price. Writes one batch
    /// file per batch the provider accepted.
    pub fn submit(&mut self, force: &[String], max_cost: Option<f64>) -> Result<Submitted> {
        self.places = places(&self.input)?;
        let mut batching = Batching::Submit(Default::default());
        // `offline` is for builds: a submit is asked to send.
        let input = with_settings_removed(&self.input, &["offline"])?;
        crate::pipeline::run_batch(&input, force, &mut batching)?;
        let Batching::Submit(gathered) = batching else {
            unreachable!("the build hands its batching back")
        };
        let mut items = gathered
            .items
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if !force.is_empty() {
            // `regenerate --batch`: only what was asked for.
            items.retain(|item| force.contains(&item.key.to_hex()));
        }
        let skipped = gathered
            .skipped
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let mut submitted = Submitted {
            skipped: skipped
                .into_iter()
                .map(|(key, reason)| Skipped {
                    place: self.place(&key.to_hex()),
                    key: key.to_hex(),
                    reason,
                })
                .collect(),
            ..Submitted::default()
        };
        let priced: Vec<(Submission, f64)> = items
            .into_iter()
            .map(|item| {
                let profile = &self.config.profiles[&item.request.profile];
                let price = crate::price::estimate(&item.request, profile, &self.config.prices)
                    .unwrap_or(0.0);
                (item, price)
            })
            .collect();
        submitted.sync_cost = priced.iter().map(|(_, p)| p).sum();
        submitted.cost = submitted.sync_cost * BATCH_SHARE;
        self.check_budget(priced.len(), submitted.cost, max_cost)?;
        self.send(&priced, &mut submitted);
        Ok(submitted)
    }

    /// Refuses a submission over the budget, before anything is uploaded.
    fn check_budget(&self, count: usize, cost: f64, max_cost: Option<f64>) -> Result<()> {
        if let Some(max) = self.config.max_images_per_build
            && count > max
        {
            return Err(Error::Request(format!(
                "{count} images to send is more than `max-images-per-build` = {max}; nothing was sent (raise it, or submit after building part of the book)"
            )));
        }
        if let Some(max) = max_cost.or(self.config.max_cost_per_build)
            && cost > max + 1e-9
        {
            return Err(Error::Request(format!(
                "the batch would cost about ${cost:.2} (at the batch price), more than the ${max:.2} allowed (`--max-cost`, else `max-cost-per-build`); nothing was sent"
            )));
        }
        Ok(())
    }

    /// Sends the items, one batch per profile, endpoint and model (split at the provider's
    /// limits), writing each accepted batch's file at once.
    fn send(&self, priced: &[(Submission, f64)], submitted: &mut Submitted) {
        let mut by_profile: BTreeMap<&str, Vec<&(Submission, f64)>> = BTreeMap::new();
        for item in priced {
            by_profile
                .entry(&item.0.request.profile)
                .or_default()
                .push(item);
        }
        let prices: BTreeMap<CacheKey, (f64, bool)> = priced
            .iter()
            .map(|(s, p)| (s.key, (p * BATCH_SHARE, s.again)))
            .collect();
        crate::provider::with_machine_env(&self.config, &self.root, |env| {
            for (name, items) in by_profile {
                let profile = &self.config.profiles[name];
                let client = match Client::new(name, profile, env) {
                    Ok(client) => client,
                    Err(message) => {
                        submitted.errors.push(message);
                        continue;
                    }
                };
                let list: Vec<Item<'_>> = items
                    .iter()
                    .map(|(s, _)| Item {
                        key: s.key,
                        request: &s.request,
                    })
                    .collect();
                for chunk in crate::provider::batch::chunks(profile, &list) {
                    match client.submit(&chunk) {
                        Ok(batch) => {
                            let state = self.state_of(name, &chunk, &batch, &prices);
                            match store::write(&self.cache_root(), &state) {
                                Ok(path) => submitted.batches.push(self.row(&path, &state, Some(&batch))),
                                Err(e) => submitted.errors.push(format!(
                                    "batch {} was sent but its file could not be written ({e}); its id is {}: collect it after writing the file by hand, or cancel it",
                                    batch.id, batch.id
                                )),
                            }
                        }
                        Err(failure) => submitted.errors.push(failure.message),
                    }
                }
            }
        });
    }

    /// The batch file of a batch just accepted.
    fn state_of(
        &self,
        profile: &str,
        chunk: &crate::provider::batch::Chunk,
        batch: &Batch,
        prices: &BTreeMap<CacheKey, (f64, bool)>,
    ) -> State {
        let now = SystemTime::now();
        // OpenAI says when; Gemini expires what is not done after 48 hours.
        let expires = batch
            .expires_at
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .filter(|t| *t > now && *t < now + Duration::from_secs(7 * 86_400))
            .unwrap_or(now + Duration::from_secs(48 * 3600));
        State {
            format: FORMAT,
            profile: profile.to_owned(),
            provider: self.config.profiles[profile].kind.as_str().to_owned(),
            model: chunk.model.clone(),
            id: batch.id.clone(),
            endpoint: chunk.endpoint.to_owned(),
            submitted_at: humantime::format_rfc3339_seconds(now).to_string(),
            expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
            lines: chunk
                .keys
                .iter()
                .map(|key| {
                    let (price, again) = prices.get(key).copied().unwrap_or_default();
                    Line {
                        key: key.to_hex(),
                        place: crate::outside::clean(&self.place(&key.to_hex()), 300),
                        again,
                        price_usd: price,
                    }
                })
                .collect(),
        }
    }

    /// A batch as `status` shows it.
    fn row(&self, path: &Path, state: &State, batch: Option<&Batch>) -> BatchRow {
        BatchRow {
            file: path
                .strip_prefix(&self.root)
                .unwrap_or(path)
                .display()
                .to_string(),
            profile: state.profile.clone(),
            provider: state.provider.clone(),
            model: state.model.clone(),
            id: state.id.clone(),
            state: batch.map_or("unknown", |b| b.state.as_str()).to_owned(),
            done: batch.map_or(0, |b| b.completed),
            failed: batch.map_or(0, |b| b.failed),
            total: batch
                .map(|b| b.total)
                .filter(|t| *t > 0)
                .unwrap_or(state.lines.len() as u64),
            submitted_at: state.submitted_at.clone(),
            expires_at: state.expires_at.clone(),
            error: batch.and_then(|b| b.error.clone()),
        }
    }

    /// Every batch file, with what its provider says of it now.
    pub fn status(&self) -> Result<Vec<BatchRow>> {
        let mut rows = Vec::new();
        crate::provider::with_machine_env(&self.config, &self.root, |env| -> Result<()> {
            for found in store::list(&self.cache_root()) {
                let state = self.checked(&found)?;
                let (batch, error) = match self
                    .client(&state, env)
                    .and_then(|c| c.get(&state.id).map_err(|f| f.message))
                {
                    Ok(batch) => (Some(batch), None),
                    Err(message) => (None, Some(message)),
                };
                let mut row = self.row(&found.path, &state, batch.as_ref());
                row.error = row.error.or(error);
                rows.push(row);
            }
            Ok(())
        })?;
        Ok(rows)
    }

    /// A batch file's state, or an error that names the file: unreadable, or naming a profile
    /// the book does not define (or of another kind).
    fn checked(&self, found: &store::Found) -> Result<State> {
        let file = crate::outside::clean(
            &(found.path.strip_prefix(&self.root))
                .unwrap_or(&found.path)
                .display()
                .to_string(),
            300,
        );
        let state = found
            .state
            .clone()
            .map_err(|e| Error::Input(format!("the batch file `{file}` cannot be read: {e}")))?;
        match self.config.profiles.get(&state.profile) {
            Some(p) if p.kind.as_str() == state.provider => Ok(state),
            Some(p) => Err(Error::Input(format!(
                "the batch file `{file}` was sent with a `{}` profile, but profile `{}` is now `{}`; restore the profile to collect it",
                state.provider,
                state.profile,
                p.kind.as_str()
            ))),
            None => Err(Error::Input(format!(
                "the batch file `{file}` names profile `{}`, which book.toml does not define; restore the profile to collect it",
                state.profile
            ))),
        }
    }

    fn client<'e>(
        &'e self,
        state: &'e State,
        env: &'e Env<'e>,
    ) -> std::result::Result<Client<'e>, String> {
        Client::new(&state.profile, &self.config.profiles[&state.profile], env)
    }

    /// Reads what every finished batch made into the cache (through a build, so web files
    /// and the remote cache follow), reports the lines that failed with their directive, and
    /// removes the batch files it is done with. With `wait`, polls every `poll` until every
    /// batch is finished, with a line on stderr each time. A batch that cannot be asked about
    /// or read is reported and kept for the next `collect`; the others are collected.
    pub fn collect(&self, wait: bool, poll: Duration) -> Result<Collected> {
        let mut collected = Collected::default();
        let mut read = Read::default();
        let mut waiting: Vec<(PathBuf, State)> = Vec::new();
        for found in store::list(&self.cache_root()) {
            let state = self.checked(&found)?;
            waiting.push((found.path, state));
        }
        self.clear_spool();
        let mut done_rows = Vec::new();
        crate::provider::with_machine_env(&self.config, &self.root, |env| {
            loop {
                let mut still = Vec::new();
                let mut rows = Vec::new();
                for (path, state) in waiting {
                    match self.collect_one(env, &path, &state, &mut read, &mut collected) {
                        Ok((row, true)) => {
                            done_rows.push(row);
                            read.finished.push((path, state));
                        }
                        Ok((row, false)) => {
                            rows.push(row);
                            still.push((path, state));
                        }
                        Err(message) => collected.errors.push(message),
                    }
                }
                collected.pending = still.len();
                collected.batches = done_rows.iter().cloned().chain(rows).collect();
                if still.is_empty() || !wait {
                    return;
                }
                tracing::info!(
                    "imagegen: {} batch{} still running; asking again in {}",
                    still.len(),
                    if still.len() == 1 { "" } else { "es" },
                    humantime::format_duration(poll)
                );
                (env.sleep)(poll.max(Duration::from_millis(10)));
                waiting = still;
            }
        });
        self.store(read, &mut collected)?;
        Ok(collected)
    }

    /// Asks about one batch and, when it is finished, reads its answers: its row, and whether
    /// it is finished; or why it could not be asked about or read (it is kept).
    fn collect_one(
        &self,
        env: &Env<'_>,
        path: &Path,
        state: &State,
        read: &mut Read,
        collected: &mut Collected,
    ) -> std::result::Result<(BatchRow, bool), String> {
        let client = self.client(state, env)?;
        let batch = client
            .get(&state.id)
            .map_err(|f| unknown_batch(path, state, f))?;
        let row = self.row(path, state, Some(&batch));
        if !batch.state.finished() {
            return Ok((row, false));
        }
        let mut reader = Reader {
            state,
            lines: state.lines.iter().map(|l| (l.key.as_str(), l)).collect(),
            spool: &self.cache_root().join("local").join("batches"),
            cache_root: &self.cache_root(),
            secrets: env.secrets,
            read,
            notes: &mut collected.notes,
        };
        client
            .answers(&batch, &state.model, &mut |answer| reader.take(answer))
            .map_err(|f| {
                format!(
                    "batch {} ({}): its answers could not be read: {}; it is kept for the next `batch collect`",
                    state.id,
                    file_label(path),
                    f.message
                )
            })?;
        reader.unanswered(&batch);
        Ok((row, true))
    }

    /// Removes what an earlier collect left in the spool (a crash, a failed store).
    fn clear_spool(&self) {
        let spool = self.cache_root().join("local").join("batches");
        let Ok(entries) = std::fs::read_dir(&spool) else {
            return;
        };
        for entry in entries.flatten() {
            let _ = store::remove(&self.cache_root(), &entry.path());
        }
    }

    /// Stores the masters read through a build, then removes the spool and the files of the
    /// finished batches. When an image that a directive still asks for could not be stored
    /// (a disk error), every finished batch file is kept, so the next `collect` reads it
    /// again and nothing paid for is lost.
    fn store(&self, read: Read, collected: &mut Collected) -> Result<()> {
        let Read {
            masters,
            finished,
            failed,
            ..
        } = read;
        let again: Vec<String> = finished
            .iter()
            .flat_map(|(_, s)| s.lines.iter().filter(|l| l.again).map(|l| l.key.clone()))
            .filter(|k| CacheKey::from_hex(k).is_some_and(|k| masters.contains_key(&k)))
            .collect();
        let costs: BTreeMap<CacheKey, f64> = masters
            .iter()
            .map(|(k, s)| (*k, s.master().cost_usd))
            .collect();
        let mut batching = Batching::Collect(Collect {
            masters,
            stored: Default::default(),
            unstored: Default::default(),
        });
        if !costs.is_empty() {
            // A collect stores what was paid for: the budget and `offline` are for generating.
            let input = with_settings_removed(&self.input, &["offline"])?;
            crate::pipeline::run_batch(&input, &again, &mut batching)?;
        }
        let Batching::Collect(done) = batching else {
            unreachable!("the build hands its batching back")
        };
        let stored = done.stored.into_inner().unwrap_or_else(|e| e.into_inner());
        let unstored = done
            .unstored
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        collected.stored = stored.len();
        collected.cost = stored.iter().filter_map(|k| costs.get(k)).sum();
        let places: BTreeMap<&str, &str> = (finished.iter())
            .flat_map(|(_, state)| state.lines.iter())
            .map(|line| (line.key.as_str(), line.place.as_str()))
            .collect();
        for key in costs.keys().filter(|k| !stored.contains(k)) {
            let hex = key.to_hex();
            let place = places.get(hex.as_str()).copied().unwrap_or("?");
            if let Some(why) = unstored.get(key) {
                collected.errors.push(format!(
                    "the image of {} ({place}) was made but could not be stored: {why}; its batch file is kept for the next `batch collect`",
                    &hex[..12]
                ));
            } else {
                note(
                    &mut collected.notes,
                    format!(
                        "the image of {} (asked for at {place}) was made, but this checkout does not need it (its directive changed, or the image is in the cache already); it is not kept",
                        &hex[..12],
                    ),
                );
            }
        }
        for (key, (place, reason)) in failed {
            collected.failed.push(Skipped { key, place, reason });
        }
        self.clear_spool();
        if !unstored.is_empty() {
            return Ok(());
        }
        for (path, _) in &finished {
            if let Err(e) = store::remove(&self.cache_root(), path) {
                collected.errors.push(format!(
                    "`{}` is collected but cannot be removed ({e}); remove it by hand",
                    file_label(path)
                ));
            }
        }
        Ok(())
    }
}

/// What `collect` read from the finished batches.
#[derive(Default)]
struct Read {
    /// Each image made, checked, until it is stored.
    masters: BTreeMap<CacheKey, Spooled>,
    /// The bytes of the masters kept in memory.
    in_memory: usize,
    /// The batches read to the end (their files are removed once stored).
    finished: Vec<(PathBuf, State)>,
    /// Lines that made no image: key → (place, why).
    failed: BTreeMap<String, (String, String)>,
}

/// Adds a note, up to [`MAX_NOTES`] of them (then one that says how many more there were).
fn note(notes: &mut Vec<String>, text: String) {
    match notes.len() {
        n if n < MAX_NOTES => notes.push(text),
        n if n == MAX_NOTES => notes.push("… and more like these".to_owned()),
        _ => {}
    }
}

/// The most notes `collect` keeps.
const MAX_NOTES: usize = 100;

/// A batch file's name, cleaned for messages.
fn file_label(path: &Path) -> String {
    crate::outside::clean(
        &path.file_name().unwrap_or_default().to_string_lossy(),
        crate::outside::ID_CHARS,
    )
}

/// Reads one finished batch's answers: each checked and kept, or noted as failed.
struct Reader<'a> {
    state: &'a State,
    /// The batch's lines by key.
    lines: std::collections::HashMap<&'a str, &'a Line>,
    spool: &'a Path,
    cache_root: &'a Path,
    secrets: &'a Secrets,
    read: &'a mut Read,
    notes: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn take(&mut self, answer: Answer) {
        let Some(line) = self.lines.get(answer.key.as_str()).copied() else {
            let said = match &answer.result {
                Err(fault) => (self.secrets).clean(&fault.message, crate::outside::SHOWN_CHARS),
                Ok(_) => "an image".to_owned(),
            };
            let text = if answer.key.is_empty() {
                format!(
                    "batch {}: a line that names no key was ignored: {said}",
                    self.state.id
                )
            } else {
                format!(
                    "batch {}: an answer for key {:?}, which it never asked for, was ignored",
                    self.state.id,
                    crate::outside::clean(&answer.key, 80)
                )
            };
            note(self.notes, text);
            return;
        };
        let key = CacheKey::from_hex(&line.key).expect("checked when read");
        if self.read.masters.contains_key(&key) {
            // A second answer for a line already answered with an image.
            return;
        }
        let result = answer
            .result
            .map_err(|fault| (self.secrets).clean(&fault.message, crate::outside::SHOWN_CHARS))
            .and_then(|mut generated| {
                generated.cost_usd = generated.cost_usd.map(|c| c * BATCH_SHARE);
                crate::provider::collected(generated, line.price_usd, &self.state.id, self.secrets)
            })
            .and_then(|master| self.spooled(master));
        match result {
            Ok(spooled) => {
                self.read.failed.remove(&line.key);
                self.read.masters.insert(key, spooled);
            }
            Err(reason) => {
                let why = format!("`{}` batch {}: {reason}", self.state.profile, self.state.id);
                (self.read.failed).insert(line.key.clone(), (line.place.clone(), why));
            }
        }
    }

    /// Keeps a checked master until it is stored: in memory while the masters kept there stay
    /// under [`IN_MEMORY_BYTES`], else its bytes in the spool (named by their hash).
    fn spooled(
        &mut self,
        mut master: crate::provider::Master,
    ) -> std::result::Result<Spooled, String> {
        if self.read.in_memory + master.bytes.len() <= IN_MEMORY_BYTES {
            self.read.in_memory += master.bytes.len();
            return Ok(Spooled::Memory(master));
        }
        let hash = blake3::hash(&master.bytes).to_hex().to_string();
        let path = (self.spool).join(format!("{hash}.{}", master.format.extension()));
        crate::files::create_dir_confined(self.cache_root, self.spool)
            .and_then(|()| {
                let tmp = self.cache_root.join("tmp");
                crate::files::write_atomic(self.cache_root, &tmp, &path, &master.bytes)
            })
            .map_err(|e| format!("cannot keep the image until it is stored: {e}"))?;
        master.bytes = Vec::new();
        Ok(Spooled::File { path, hash, master })
    }

    /// The lines of a finished batch that no answer made an image for.
    fn unanswered(&mut self, batch: &Batch) {
        for line in &self.state.lines {
            let key = CacheKey::from_hex(&line.key).expect("checked when read");
            if self.read.masters.contains_key(&key) || self.read.failed.contains_key(&line.key) {
                continue;
            }
            let why = match batch.error.as_deref() {
                Some(error) => format!("the batch {}: {error}", batch.state.as_str()),
                None => format!("no answer before the batch {}", batch.state.as_str()),
            };
            let why = format!("`{}` batch {}: {why}", self.state.profile, self.state.id);
            (self.read.failed).insert(line.key.clone(), (line.place.clone(), why));
        }
    }
}

/// A batch the provider could not be asked about, in words that name its file.
fn unknown_batch(path: &Path, state: &State, failure: Failure) -> String {
    format!(
        "batch {} (`{}`): {}; it is kept; if the provider does not know it, delete that file to submit its images again",
        state.id,
        file_label(path),
        failure.message
    )
}

/// mdBook's input with the budget settings and `more` removed from the book's table: `submit`
/// checks the budget against the whole submission at the batch price, not image by image at the
/// synchronous one, and `collect` stores what was already paid for.
fn with_settings_removed(input: &str, more: &[&str]) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(input)
        .map_err(|e| Error::Input(format!("mdBook's input is not JSON: {e}")))?;
    if let Some(table) = value
        .get_mut(0)
        .and_then(|c| c.pointer_mut("/config/preprocessor/imagegen"))
        .and_then(serde_json::Value::as_object_mut)
    {
        for key in ["max-cost-per-build", "max-images-per-build"]
            .iter()
            .chain(more)
        {
            table.remove(*key);
        }
    }
    Ok(value.to_string())
}
