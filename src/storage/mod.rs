//! The shared remote cache: an object store (S3 and compatibles, GCS, Azure Blob, or a shared
//! directory) that holds the committed part of the cache under `root`, with the same layout:
//!
//! ```text
//! <root>/masters/ab/<blake3>.png     the masters
//! <root>/records/cd/<key>-….json     their records
//! <root>/tuned/ab/<master>-….json    qualities a perceptual target chose
//! <root>/assets/<name>               web files, when figures point at `public-url`
//! ```
//!
//! This module is an I/O edge over Apache OpenDAL and nothing else: it lists, reads, writes
//! (always "if not exists", so the first writer wins and nothing is ever overwritten) and
//! deletes objects. What to fetch and what to upload is decided by the cache and the build.
//!
//! OpenDAL is asynchronous; the rest of the binary is not. A small single-threaded runtime runs
//! each batch of requests, many at a time, and returns when all are done.
//!
//! Every request is retried a bounded number of times (temporary failures only), then reported.
//! During a build, [`Remote::degrade`] turns a failure into one warning and switches the remote
//! off (an outage) or to read-only (credentials that cannot write) for the rest of the build, so
//! a build never fails because the remote did.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use opendal::{ErrorKind, Operator};

use crate::config::{Mode, Scheme, Storage};
use crate::error::{Error, Result};
use crate::outside::Secrets;

mod conditional;

use conditional::Conditions;
pub(crate) use conditional::{Conditional, Replace, Version};

/// How many requests run at once.
const CONCURRENCY: usize = 16;
/// How many times a temporary failure is retried.
const RETRIES: usize = 3;
/// The cache-control of content-addressed objects: their bytes never change.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One object to upload.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    /// The path under `root`, with `/` separators.
    pub(crate) path: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: &'static str,
}

/// What an upload did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// Objects written.
    pub(crate) written: usize,
    /// Objects that were already there (someone wrote them first).
    pub(crate) existed: usize,
}

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The path under `root`.
    pub(crate) path: String,
    pub(crate) bytes: u64,
    /// When it was written, when the store says.
    pub(crate) modified: Option<std::time::SystemTime>,
}

/// What reading one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    Bytes(Vec<u8>),
    /// No such object.
    Missing,
    /// An object that is not read: larger than the cap, or (in an `fs` store) not a regular
    /// file; the reason, for a warning or `verify --remote`.
    Refused(String),
}

impl Fetched {
    /// The bytes, if the object was read.
    pub(crate) fn bytes(self) -> Option<Vec<u8>> {
        match self {
            Fetched::Bytes(bytes) => Some(bytes),
            Fetched::Missing | Fetched::Refused(_) => None,
        }
    }
}

fn too_large(cap: u64) -> String {
    format!(
        "larger than {} KB, more than such an object holds",
        cap.div_ceil(1024)
    )
}

/// Reads `path` under an `fs` store's directory through the file edge (see [`Remote::read`]).
fn read_fs(dir: &Path, path: &str, cap: u64) -> Fetched {
    let Some(file) = crate::files::join_inside(dir, Path::new(path)) else {
        return Fetched::Refused("not a path inside the store".into());
    };
    if let Err(e) = crate::files::check_confined(dir, &file) {
        return match e.kind() {
            std::io::ErrorKind::NotFound => Fetched::Missing,
            _ => Fetched::Refused(e.to_string()),
        };
    }
    match crate::files::read_regular(&file, cap) {
        Ok(bytes) => Fetched::Bytes(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fetched::Missing,
        Err(e) => Fetched::Refused(e.to_string()),
    }
}

/// Writes an object into an `fs` store through the file edge: never through a link, never
/// over an object that is there; `false` when one was.
fn write_fs(dir: &Path, object: &Object) -> std::result::Result<bool, String> {
    let file = crate::files::join_inside(dir, Path::new(&object.path))
        .ok_or("not a path inside the store")?;
    crate::files::write_new(dir, &dir.join(".tmp"), &file, &object.bytes).map_err(|e| e.to_string())
}

/// The remote cache of one book.
pub(crate) struct Remote {
    operator: Operator,
    scheme: Scheme,
    /// An `fs` store's directory: read, written and deleted through the file edge rather than
    /// the operator.
    fs_dir: Option<std::path::PathBuf>,
    runtime: tokio::runtime::Runtime,
    /// `s3://bucket/root`, for messages.
    label: String,
    writable: AtomicBool,
    down: AtomicBool,
    /// Secret values to scrub from messages.
    secrets: Secrets,
    /// Warnings already given, so each is given once.
    warned: Mutex<Vec<&'static str>>,
    /// What the store honours, once probed (see [`Remote::probe_conditions`]): once per build,
    /// however many rounds it generates in.
    probed: Mutex<Option<Conditions>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("label", &self.label)
            .finish()
    }
}

/// An S3 client: the usual `AWS_*` variables, else the rest of AWS's chain.
fn s3(storage: &Storage, var: &dyn Fn(&str) -> Option<String>) -> opendal::Result<Operator> {
    let mut builder = opendal::services::S3::default()
        .bucket(&storage.bucket)
        .root(&storage.root)
        .region(storage.region.as_deref().unwrap_or("us-east-1"));
    if let Some(endpoint) = &storage.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if storage.anonymous {
        builder = builder
            .skip_signature()
            .disable_config_load()
            .disable_ec2_metadata();
    } else if let (Some(id), Some(secret)) =
        (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    {
        // The usual variables; without them, the rest of AWS's chain (profiles,
        // web identity, instance metadata) is tried.
        builder = builder.access_key_id(&id).secret_access_key(&secret);
        if let Some(token) = var("AWS_SESSION_TOKEN") {
            builder = builder.session_token(&token);
        }
    }
    Operator::new(builder)
}

/// A GCS client: Google's credentials, or none for an emulator or a public bucket.
fn gcs(storage: &Storage, var: &dyn Fn(&str) -> Option<String>) -> opendal::Result<Operator> {
    let mut builder = opendal::services::Gcs::default()
        .bucket(&storage.bucket)
        .root(&storage.root);
    // The convention of Google's own libraries: an emulator takes no credentials.
    let emulator = var("STORAGE_EMULATOR_HOST").filter(|h| !h.trim().is_empty());
    if let Some(endpoint) = storage.endpoint.clone().or_else(|| {
        emulator.as_ref().map(|host| {
            if host.contains("://") {
                host.trim_end_matches('/').to_owned()
            } else {
                format!("http://{host}")
            }
        })
    }) {
        builder = builder.endpoint(&endpoint);
    }
    if storage.anonymous || emulator.is_some() {
        builder = builder
            .skip_signature()
            .disable_vm_metadata()
            .disable_config_load();
    }
    Operator::new(builder)
}

/// An Azure Blob client: a connection string or the `AZURE_STORAGE_*` variables.
fn azblob(
    storage: &Storage,
    var: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<opendal::Result<Operator>, String> {
    let mut builder = match var("AZURE_STORAGE_CONNECTION_STRING") {
        Some(text) if !storage.anonymous => {
            opendal::services::Azblob::from_connection_string(&text).map_err(|e| {
                format!(
                    "`AZURE_STORAGE_CONNECTION_STRING` is not a connection string ({})",
                    e.kind()
                )
            })?
        }
        _ => opendal::services::Azblob::default(),
    };
    builder = builder.container(&storage.bucket).root(&storage.root);
    if let Some(endpoint) = &storage.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if storage.anonymous {
        builder = builder.skip_signature();
    }
    Ok(Operator::new(builder))
}

/// A shared directory: it must exist (a share that is not mounted is an outage, not a
/// directory to create).
fn fs(storage: &Storage, book_root: &Path) -> Result<opendal::Result<Operator>> {
    let dir = book_root.join(&storage.root);
    // A share that is not mounted is an outage, not a directory to create.
    if !dir.is_dir() {
        return Err(Error::Remote {
            store: format!("fs://{}", dir.display()),
            message: "the directory does not exist (is the share mounted?); create it to use it"
                .into(),
            read_only: false,
        });
    }
    let mut builder = opendal::services::Fs::default().root(&dir.to_string_lossy());
    // Written beside the objects, then renamed: a crash never leaves half a file.
    let staging = dir.join(".tmp");
    if storage.mode == Mode::ReadWrite && std::fs::create_dir_all(&staging).is_ok() {
        builder = builder.atomic_write_dir(&staging.to_string_lossy());
    }
    Ok(Operator::new(builder))
}

impl Remote {
    /// Connects to the store `storage` describes (no request is made yet). `var` reads the
    /// environment; `book_root` anchors a relative `fs` directory.
    pub(crate) fn open(
        storage: &Storage,
        book_root: &Path,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Remote> {
        install_transport();
        let config_error = |message: String| Error::Config {
            key: "preprocessor.imagegen.storage".into(),
            message,
        };
        let built = match storage.scheme {
            Scheme::S3 => s3(storage, var),
            Scheme::Gcs => gcs(storage, var),
            Scheme::Azblob => azblob(storage, var).map_err(config_error)?,
            Scheme::Fs => fs(storage, book_root)?,
        };
        let operator = built
            .map_err(|e| config_error(format!("cannot use this store: {}", e.message())))?
            // The timeout inside the retry: a request that times out is retried too.
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(30))
                    .with_io_timeout(Duration::from_secs(60)),
            )
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(RETRIES)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter(),
            );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| config_error(format!("cannot start the remote client: {e}")))?;
        let label = label(storage, book_root);
        // Every well-known secret (the stores' credentials among them), each value inside a
        // connection string or SAS token too: a store's error may echo one parameter at a time.
        let secrets = Secrets::of_vars(crate::outside::well_known(), var);
        let fs_dir = (storage.scheme == Scheme::Fs).then(|| book_root.join(&storage.root));
        Ok(Remote {
            operator,
            scheme: storage.scheme,
            fs_dir,
            runtime,
            label,
            writable: AtomicBool::new(storage.mode == Mode::ReadWrite),
            down: AtomicBool::new(false),
            secrets,
            warned: Mutex::new(Vec::new()),
            probed: Mutex::new(None),
        })
    }

    /// `s3://bucket/root`, for messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Whether this build still reads from the remote (false after an outage).
    pub(crate) fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// Whether this build still writes to the remote.
    pub(crate) fn can_write(&self) -> bool {
        self.is_up() && self.writable.load(Ordering::Relaxed)
    }

    /// Lists the objects under each directory (`records/ab/`, or `masters/` with `recursive`).
    /// A directory that does not exist is empty.
    pub(crate) fn list(&self, dirs: &[String], recursive: bool) -> Result<Vec<Listed>> {
        let operator = &self.operator;
        let results: Vec<opendal::Result<Vec<opendal::Entry>>> =
            self.all(dirs.iter().map(|dir| async move {
                match operator.list_with(dir).recursive(recursive).await {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                    other => other,
                }
            }));
        let mut listed = Vec::new();
        for result in results {
            for entry in result.map_err(|e| self.error("list", e))? {
                if entry.metadata().mode().is_dir() {
                    continue;
                }
                listed.push(Listed {
                    path: entry.path().trim_start_matches('/').to_owned(),
                    bytes: entry.metadata().content_length(),
                    modified: entry.metadata().last_modified().map(Into::into),
                });
            }
        }
        Ok(listed)
    }

    /// Reads objects of at most `cap` bytes each, as the local cache reads its files: streamed,
    /// and given up past `cap` (an object that never ends, `/dev/zero` behind a link in a
    /// shared directory, costs `cap` bytes at most). In an `fs` store only regular files are
    /// read, never through a link, a FIFO or a device, and never outside the store's directory.
    pub(crate) fn read(&self, paths: &[String], cap: u64) -> Result<Vec<Fetched>> {
        if let Some(dir) = &self.fs_dir {
            return Ok(paths.iter().map(|path| read_fs(dir, path, cap)).collect());
        }
        let operator = &self.operator;
        let results: Vec<opendal::Result<Fetched>> =
            self.all(paths.iter().map(|path| async move {
                let stream = match operator.reader(path).await {
                    Ok(reader) => reader.into_stream(..).await,
                    Err(e) => Err(e),
                };
                let mut stream = match stream {
                    Ok(stream) => stream,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Fetched::Missing),
                    Err(e) => return Err(e),
                };
                let mut bytes = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) if e.kind() == ErrorKind::NotFound && bytes.is_empty() => {
                            return Ok(Fetched::Missing);
                        }
                        Err(e) => return Err(e),
                    };
                    if (bytes.len() + chunk.len()) as u64 > cap {
                        return Ok(Fetched::Refused(too_large(cap)));
                    }
                    bytes.extend(chunk.to_bytes());
                }
                Ok(Fetched::Bytes(bytes))
            }));
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.error("read", e)))
            .collect()
    }

    /// Whether each object exists.
    pub(crate) fn exists(&self, paths: &[String]) -> Result<Vec<bool>> {
        let operator = &self.operator;
        let results: Vec<opendal::Result<bool>> =
            self.all(paths.iter().map(|path| operator.exists(path)));
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.error("read", e)))
            .collect()
    }

    /// Writes objects that do not exist yet, with their content type and an immutable
    /// cache-control. An object someone else wrote first is left as it is.
    pub(crate) fn upload(&self, objects: &[Object]) -> Result<Uploaded> {
        if !self.writable.load(Ordering::Relaxed) {
            return Err(Error::Remote {
                store: self.label.clone(),
                message: "the remote cache is read-only for this build".into(),
                read_only: true,
            });
        }
        if let Some(dir) = &self.fs_dir {
            let mut uploaded = Uploaded::default();
            for object in objects {
                match write_fs(dir, object) {
                    Ok(true) => uploaded.written += 1,
                    Ok(false) => uploaded.existed += 1,
                    Err(message) => {
                        return Err(Error::Remote {
                            store: self.label.clone(),
                            message: format!("cannot write `{}`: {message}", object.path),
                            read_only: false,
                        });
                    }
                }
            }
            return Ok(uploaded);
        }
        let capability = self.operator.info().capability();
        let operator = &self.operator;
        let results: Vec<opendal::Result<bool>> =
            self.all(objects.iter().map(|object| async move {
                let mut write = operator.write_with(&object.path, object.bytes.clone());
                if capability.write_with_if_not_exists {
                    write = write.if_not_exists(true);
                } else if operator.exists(&object.path).await? {
                    return Ok(false);
                }
                if capability.write_with_content_type {
                    write = write.content_type(object.content_type);
                }
                if capability.write_with_cache_control {
                    write = write.cache_control(IMMUTABLE);
                }
                match write.await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
                    Err(e) => Err(e),
                }
            }));
        let mut uploaded = Uploaded::default();
        for result in results {
            match result {
                Ok(true) => uploaded.written += 1,
                Ok(false) => uploaded.existed += 1,
                Err(e) => return Err(self.error("write", e)),
            }
        }
        Ok(uploaded)
    }

    /// Deletes objects (a missing one is not an error).
    pub(crate) fn delete(&self, paths: &[String]) -> Result<()> {
        if !self.writable.load(Ordering::Relaxed) {
            return Err(Error::Remote {
                store: self.label.clone(),
                message: "the remote cache is read-only (`mode = \"read-only\"`)".into(),
                read_only: true,
            });
        }
        if let Some(dir) = &self.fs_dir {
            for path in paths {
                let removed = match crate::files::join_inside(dir, Path::new(path)) {
                    Some(file) => crate::files::remove_confined(dir, &file),
                    None => Err(std::io::Error::other("not a path inside the store")),
                };
                match removed {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::Remote {
                            store: self.label.clone(),
                            message: format!("cannot delete `{path}`: {e}"),
                            read_only: false,
                        });
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        let operator = &self.operator;
        let results: Vec<opendal::Result<()>> =
            self.all(paths.iter().map(|path| operator.delete(path)));
        for result in results {
            match result {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(self.error("delete", e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs requests, [`CONCURRENCY`] at a time, and returns their results in order.
    fn all<T>(&self, requests: impl Iterator<Item = impl Future<Output = T>>) -> Vec<T> {
        self.runtime.block_on(
            futures::stream::iter(requests)
                .buffered(CONCURRENCY)
                .collect(),
        )
    }

    /// Turns a remote failure during a build into one warning, and the fallback it calls for:
    /// a refused write makes the remote read-only for the rest of the build, anything else
    /// (the store is down, or answers nonsense) switches it off. Returns `None` on failure.
    pub(crate) fn degrade<T>(&self, result: Result<T>) -> Option<T> {
        let error = match result {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        match &error {
            Error::Remote {
                read_only: true, ..
            } => {
                let was_writable = self.writable.swap(false, Ordering::Relaxed);
                if was_writable {
                    self.warn_once(
                        "read-only",
                        &format!(
                            "{error}; carrying on read-only (new images stay in the local cache until `mdbook-imagegen push`). Give the credentials write access, or set `mode = \"read-only\"` in `[preprocessor.imagegen.storage]` to silence this"
                        ),
                    );
                }
            }
            Error::Remote { .. } => {
                self.down.store(true, Ordering::Relaxed);
                self.warn_once(
                    "down",
                    &format!(
                        "{error}; this build goes on with the local cache and the provider, and the next one uploads what this one made"
                    ),
                );
            }
            // A local problem (reading a master to upload it): the remote is fine.
            _ => tracing::warn!("imagegen: {error}"),
        }
        None
    }

    fn warn_once(&self, what: &'static str, message: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if !warned.contains(&what) {
            warned.push(what);
            tracing::warn!("imagegen: {message}");
        }
    }

    /// A library error for a failed request, its text stripped of secrets and query strings.
    fn error(&self, action: &'static str, e: opendal::Error) -> Error {
        let read_only = e.kind() == ErrorKind::PermissionDenied && action == "write";
        let action = if e.kind() == ErrorKind::PermissionDenied && action != "write" {
            match action {
                "list" => "list (the credentials, or anonymous access, may not list the bucket)",
                "read" => "read (the credentials, or anonymous access, may not read objects)",
                _ => "delete (the credentials may not delete objects)",
            }
        } else {
            action
        };
        let mut message = format!("cannot {action}: {}", e.kind());
        let detail = scrub(e.message(), &self.secrets);
        if !detail.is_empty() {
            message.push_str(&format!(" ({detail})"));
        }
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = scrub(&cause.to_string(), &self.secrets);
            if !text.is_empty() && !message.contains(&text) {
                message.push_str(&format!(": {text}"));
            }
            source = cause.source();
        }
        Error::Remote {
            store: self.label.clone(),
            message,
            read_only,
        }
    }
}

/// `s3://bucket/root` (or `fs://dir`): how messages and the index name a store.
pub(crate) fn label(storage: &Storage, book_root: &Path) -> String {
    match storage.scheme {
        Scheme::Fs => format!("fs://{}", book_root.join(&storage.root).display()),
        scheme => format!("{}://{}/{}", scheme.as_str(), storage.bucket, storage.root),
    }
}

/// Installs the HTTP client every store uses, once per process: reqwest over rustls with
/// *ring*, the same TLS stack as the providers' client.
fn install_transport() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::default(),
        );
    });
}

/// Removes secret values and URL query strings (presigned or SAS parameters) from a message.
fn scrub(text: &str, secrets: &Secrets) -> String {
    // Secrets first, before the text is cut or changed in any other way.
    let mut text = secrets.redact(text).into_owned();
    // Azure echoes the offending query parameter's value in its error.
    while let Some(start) = text.find("query_parameter_value: \"") {
        let value = start + "query_parameter_value: \"".len();
        let end = text[value..]
            .find('"')
            .map_or(text.len(), |e| value + e + 1);
        text.replace_range(start..end, "query_parameter_value: [redacted]");
    }
    let mut out = String::with_capacity(text.len());
    let mut in_url = false;
    let mut in_query = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ')' | ']' | '>') {
            in_url = false;
            in_query = false;
        } else if !in_url && (text[i..].starts_with("http://") || text[i..].starts_with("https://"))
        {
            in_url = true;
        } else if in_url && c == '?' {
            in_query = true;
            out.push_str("?…");
        }
        if !in_query {
            out.push(c);
        }
    }
    crate::outside::clean(&out, crate::outside::SHOWN_CHARS)
}

/// The object paths of the committed cache, by kind: where a master, record, tuned file,
/// note or asset lives under `root`.
pub(crate) mod paths {
    use crate::note::NoteKind;

    /// `masters/ab/<hash>.<ext>`
    pub(crate) fn master(hash: &str, extension: &str) -> String {
        format!("masters/{}/{hash}.{extension}", &hash[..2])
    }

    /// `records/cd/<record name>`
    pub(crate) fn record(name: &str) -> String {
        format!("records/{}/{name}", &name[..2])
    }

    /// `descriptions/ab/<name>` (named after its master, like a tuned file) or
    /// `judgements/<name>`
    pub(crate) fn note(kind: NoteKind, name: &str) -> String {
        note_shard(kind, name) + name
    }

    /// The directory of a master's notes of a kind.
    pub(crate) fn note_shard(kind: NoteKind, master: &str) -> String {
        match kind.shard_of(master) {
            "" => format!("{}/", kind.dir()),
            shard => format!("{}/{shard}/", kind.dir()),
        }
    }

    /// `assets/<name>`
    pub(crate) fn asset(name: &str) -> String {
        format!("assets/{name}")
    }

    /// The shard directory of a cache key's records.
    pub(crate) fn record_shard(key_hex: &str) -> String {
        format!("records/{}/", &key_hex[..2])
    }
}

/// Listed objects by path.
pub(crate) fn by_path(listed: Vec<Listed>) -> BTreeMap<String, Listed> {
    listed.into_iter().map(|l| (l.path.clone(), l)).collect()
}

#[cfg(test)]
mod tests {
    //! The remote store against an S3 API on 127.0.0.1 that refuses, fails and answers as S3 does.

    use std::path::Path;

    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::{Mode, Scheme, Storage};

    const SECRET: &str = "wJalrXUtnFEMI-not-a-real-key";

    pub(super) fn s3(endpoint: &str, mode: Mode) -> Storage {
        Storage {
            scheme: Scheme::S3,
            bucket: "book".into(),
            region: Some("us-east-1".into()),
            endpoint: Some(endpoint.into()),
            root: "imagegen".into(),
            public_url: None,
            mode,
            anonymous: false,
            claim_ttl: crate::config::CLAIM_TTL,
            claim_wait: None,
        }
    }

    pub(super) fn open(storage: &Storage) -> Remote {
        let var = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some(SECRET.to_owned()),
            _ => None,
        };
        Remote::open(storage, Path::new("/nonexistent"), &var).unwrap()
    }

    /// The `fs` store `shared/` of the book at `book`.
    pub(super) fn shared_directory(book: &Path, mode: Mode) -> Remote {
        let storage = Storage {
            scheme: Scheme::Fs,
            bucket: String::new(),
            region: None,
            endpoint: None,
            root: "shared".into(),
            public_url: None,
            mode,
            anonymous: false,
            claim_ttl: crate::config::CLAIM_TTL,
            claim_wait: None,
        };
        Remote::open(&storage, book, &|_| None).unwrap()
    }

    pub(super) fn s3_error(status: u16, code: &str) -> ResponseTemplate {
        ResponseTemplate::new(status)
        .insert_header("content-type", "application/xml")
        .set_body_string(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code} for {SECRET}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
        ))
    }

    fn object() -> Object {
        Object {
            path: "masters/ab/abcd.png".into(),
            bytes: b"\x89PNG".to_vec(),
            content_type: "image/png",
        }
    }

    #[test]
    fn credentials_that_cannot_write_make_the_build_read_only_not_failed() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        runtime.block_on(
            Mock::given(method("PUT"))
                .respond_with(s3_error(403, "AccessDenied"))
                .expect(1)
                .mount(&server),
        );
        let remote = open(&s3(&server.uri(), Mode::ReadWrite));
        let error = remote.upload(&[object()]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("PermissionDenied"), "{message}");
        assert!(!message.contains(SECRET), "{message}");
        assert!(remote.degrade::<()>(Err(error)).is_none());
        assert!(remote.is_up() && !remote.can_write());
        // Read-only from now on: no further request.
        assert!(remote.degrade(remote.upload(&[object()])).is_none());
        runtime.block_on(server.verify());
    }

    #[test]
    fn an_outage_is_retried_a_bounded_number_of_times_then_switches_the_remote_off() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        runtime.block_on(
            Mock::given(method("GET"))
                .and(path_regex("^/book/imagegen/masters/"))
                .respond_with(s3_error(503, "SlowDown"))
                .expect(1 + RETRIES as u64)
                .mount(&server),
        );
        let remote = open(&s3(&server.uri(), Mode::ReadWrite));
        let result = remote.read(&["masters/ab/abcd.png".to_owned()], 1 << 20);
        let message = result.as_ref().unwrap_err().to_string();
        assert!(message.contains("cannot read"), "{message}");
        assert!(!message.contains(SECRET), "{message}");
        assert!(remote.degrade(result).is_none());
        assert!(!remote.is_up() && !remote.can_write());
        runtime.block_on(server.verify());
    }

    #[test]
    fn a_missing_object_is_none_and_an_existing_one_is_not_overwritten() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        runtime.block_on(async {
            Mock::given(method("GET"))
                .respond_with(s3_error(404, "NoSuchKey"))
                .mount(&server)
                .await;
            // S3's answer to `If-None-Match: *` on an existing key.
            Mock::given(method("PUT"))
                .respond_with(s3_error(412, "PreconditionFailed"))
                .mount(&server)
                .await;
        });
        let remote = open(&s3(&server.uri(), Mode::ReadWrite));
        assert_eq!(
            remote
                .read(&["records/ab/x.json".to_owned()], 1 << 20)
                .unwrap(),
            [Fetched::Missing]
        );
        let uploaded = remote.upload(&[object()]).unwrap();
        assert_eq!(
            uploaded,
            Uploaded {
                written: 0,
                existed: 1
            }
        );
        let requests = runtime.block_on(server.received_requests()).unwrap();
        let put = requests
            .iter()
            .find(|r| r.method.as_str() == "PUT")
            .unwrap();
        assert_eq!(put.headers.get("if-none-match").unwrap(), "*");
        assert_eq!(put.headers.get("content-type").unwrap(), "image/png");
        assert_eq!(put.headers.get("cache-control").unwrap(), IMMUTABLE);
    }

    /// An object over the cap is given up once the cap is passed, not read whole.
    #[test]
    fn an_object_over_the_cap_is_refused() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        runtime.block_on(
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 300_000]))
                .mount(&server),
        );
        let remote = open(&s3(&server.uri(), Mode::ReadOnly));
        let paths = ["records/ab/x.json".to_owned()];
        assert!(matches!(
            &remote.read(&paths, 256 << 10).unwrap()[..],
            [Fetched::Refused(why)] if why.contains("larger than 256 KB")
        ));
        assert_eq!(
            remote.read(&paths, 300_000).unwrap()[0]
                .clone()
                .bytes()
                .unwrap()
                .len(),
            300_000
        );
    }

    /// A shared directory holding links, FIFOs and devices where objects should be: each is
    /// refused at once, never followed, waited on or read without end.
    #[cfg(unix)]
    #[test]
    fn an_fs_store_reads_only_regular_files_inside_it() {
        let book = tempfile::tempdir().unwrap();
        let store = book.path().join("shared");
        std::fs::create_dir_all(store.join("masters/ab")).unwrap();
        std::fs::create_dir_all(store.join("records/ab")).unwrap();
        let secret = book.path().join("secret.txt");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::write(store.join("masters/ab/ok.png"), b"png").unwrap();
        let link =
            |target: &Path, at: &str| std::os::unix::fs::symlink(target, store.join(at)).unwrap();
        link(Path::new("/dev/zero"), "masters/ab/zero.png");
        link(&secret, "records/ab/passwd.json");
        link(book.path(), "records/cd");
        std::fs::write(store.join("records/ab/big.json"), vec![b' '; 300_000]).unwrap();
        let fifo = store.join("masters/ab/fifo.png");
        let has_fifo = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        let remote = shared_directory(book.path(), Mode::ReadOnly);
        let paths: Vec<String> = [
            "masters/ab/ok.png",
            "masters/ab/missing.png",
            "masters/ab/zero.png",
            "records/ab/passwd.json",
            "records/cd/secret.txt",
            "records/ab/big.json",
            "../secret.txt",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        let read = remote.read(&paths, 256 << 10).unwrap();
        assert_eq!(read[0], Fetched::Bytes(b"png".to_vec()));
        assert_eq!(read[1], Fetched::Missing);
        for (path, fetched) in paths.iter().zip(&read).skip(2) {
            assert!(
                matches!(fetched, Fetched::Refused(_)),
                "{path}: {fetched:?}"
            );
        }
        if has_fifo {
            let read = remote
                .read(&["masters/ab/fifo.png".to_owned()], 1 << 20)
                .unwrap();
            assert!(matches!(&read[..], [Fetched::Refused(_)]), "{read:?}");
        }
    }

    /// Writes and deletions in a shared directory never go through a link out of it, and never
    /// replace an object that is there.
    #[cfg(unix)]
    #[test]
    fn an_fs_store_writes_and_deletes_only_inside_it() {
        let book = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = book.path().join("shared");
        std::fs::create_dir_all(store.join("records")).unwrap();
        std::os::unix::fs::symlink(outside.path(), store.join("masters")).unwrap();
        std::os::unix::fs::symlink(outside.path(), store.join("records/cd")).unwrap();
        std::fs::write(outside.path().join("precious.json"), b"p").unwrap();
        let remote = shared_directory(book.path(), Mode::ReadWrite);
        assert!(
            remote.upload(&[object()]).is_err(),
            "written through a link"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        assert!(
            remote
                .delete(&["records/cd/precious.json".to_owned()])
                .is_err()
        );
        assert!(outside.path().join("precious.json").exists());
        // A plain object is written once and never replaced.
        let record = Object {
            path: "records/ab/x.json".into(),
            bytes: b"first".to_vec(),
            content_type: "application/json",
        };
        assert_eq!(
            remote
                .upload(std::slice::from_ref(&record))
                .unwrap()
                .written,
            1
        );
        let again = Object {
            bytes: b"second".to_vec(),
            ..record
        };
        assert_eq!(remote.upload(&[again]).unwrap().existed, 1);
        assert_eq!(
            std::fs::read(store.join("records/ab/x.json")).unwrap(),
            b"first"
        );
        remote
            .delete(&[
                "records/ab/x.json".to_owned(),
                "records/ab/gone.json".to_owned(),
            ])
            .unwrap();
        assert!(!store.join("records/ab/x.json").exists());
    }

    #[test]
    fn read_only_mode_never_sends_a_write() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(MockServer::start());
        let remote = open(&s3(&server.uri(), Mode::ReadOnly));
        assert!(!remote.can_write());
        assert!(remote.upload(&[object()]).is_err());
        assert!(remote.delete(&["masters/ab/abcd.png".to_owned()]).is_err());
        assert!(
            runtime
                .block_on(server.received_requests())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn messages_lose_secrets_and_query_strings() {
        let text = "error sending request for url (https://acct.blob.core.windows.net/c/x.png?sv=2021&sig=abc%2F) with key hunter22hunter\n\u{1b}[2J# injected";
        let mut secrets = crate::outside::Secrets::default();
        secrets.add("hunter22hunter");
        let scrubbed = scrub(text, &secrets);
        assert_eq!(
            scrubbed,
            "error sending request for url (https://acct.blob.core.windows.net/c/x.png?…) with key [redacted] [2J# injected"
        );
    }

    #[test]
    fn azure_errors_lose_the_parameter_values_they_echo() {
        let connection =
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWFjY291bnQta2V5;";
        let storage = Storage {
            scheme: Scheme::Azblob,
            bucket: "c".into(),
            region: None,
            endpoint: Some("https://acct.blob.core.windows.net".into()),
            root: "imagegen".into(),
            public_url: None,
            mode: Mode::ReadOnly,
            anonymous: false,
            claim_ttl: crate::config::CLAIM_TTL,
            claim_wait: None,
        };
        let var =
            |name: &str| (name == "AZURE_STORAGE_CONNECTION_STRING").then(|| connection.to_owned());
        let remote = Remote::open(&storage, Path::new("/nonexistent"), &var).unwrap();
        let text = "AzblobError { code: \"AuthenticationFailed\", query_parameter_value: \"sv=2022&sig=abc\", detail: \"key c2VjcmV0LWFjY291bnQta2V5\" }";
        let scrubbed = scrub(text, &remote.secrets);
        assert!(!scrubbed.contains("sig=abc"), "{scrubbed}");
        assert!(!scrubbed.contains("c2VjcmV0LWFjY291bnQta2V5"), "{scrubbed}");
    }

    #[test]
    fn object_paths_mirror_the_local_layout() {
        assert_eq!(paths::master("abcdef", "png"), "masters/ab/abcdef.png");
        assert_eq!(paths::record("cd12-x.json"), "records/cd/cd12-x.json");
        assert_eq!(paths::record_shard("ef99"), "records/ef/");
        assert_eq!(paths::asset("ab-64w-1.webp"), "assets/ab-64w-1.webp");
        assert_eq!(crate::vocab::media_type_of("x.avif"), "image/avif");
        assert_eq!(crate::vocab::media_type_of("x.json"), "application/json");
    }
}
