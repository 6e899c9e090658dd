//! The shared remote cache, `[preprocessor.imagegen.storage]`: which object store (S3, GCS,
//! Azure Blob or a shared directory), its bucket, endpoint, root and public URL, and whether
//! builds may write to it. Errors name the key under `storage.`; credentials are never read here.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Result;

/// Where the shared remote cache lives: `[preprocessor.imagegen.storage]`. Credentials are never
/// here; they come from each cloud's standard environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Storage {
    pub(crate) scheme: Scheme,
    /// The bucket (S3, GCS) or container (Azure); empty for `fs`.
    pub(crate) bucket: String,
    pub(crate) region: Option<String>,
    /// The service's URL, for S3-compatible stores, emulators and sovereign clouds.
    pub(crate) endpoint: Option<String>,
    /// The prefix of every object, without leading or trailing `/` (for `fs`: the directory,
    /// relative to the book root when not absolute).
    pub(crate) root: String,
    /// Where a browser finds the objects under `root`, without a trailing `/`; figures point
    /// here when set.
    pub(crate) public_url: Option<String>,
    pub(crate) mode: Mode,
    /// Reads without credentials (a public bucket); only with `mode = "read-only"`.
    pub(crate) anonymous: bool,
    /// How long a claim lives unless its holder renews it (`claim-ttl`).
    pub(crate) claim_ttl: Duration,
    /// The longest a build waits for an image another machine claimed (`claim-wait`); by
    /// default as long as a build may take for one image.
    pub(crate) claim_wait: Option<Duration>,
}

/// The default `claim-ttl`: a dead holder keeps others waiting this long at most (and as long
/// again where the machines' clocks are not compared, see `claim`).
pub(crate) const CLAIM_TTL: Duration = Duration::from_secs(180);

/// The kind of object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    S3,
    Gcs,
    Azblob,
    Fs,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gcs",
            Scheme::Azblob => "azblob",
            Scheme::Fs => "fs",
        }
    }

    /// `scheme`: the kind of store.
    fn parse(text: &str) -> Result<Scheme, (&'static str, String)> {
        match text {
            "s3" => Ok(Scheme::S3),
            "gcs" => Ok(Scheme::Gcs),
            "azblob" => Ok(Scheme::Azblob),
            "fs" => Ok(Scheme::Fs),
            other => Err((
                "scheme",
                format!(
                    "`{other}` is not a store; use `\"s3\"`, `\"gcs\"`, `\"azblob\"` or `\"fs\"`"
                ),
            )),
        }
    }
}

/// Whether builds may write to the remote cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    ReadWrite,
    ReadOnly,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawStorage {
    scheme: String,
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    root: Option<String>,
    public_url: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    anonymous: bool,
    claim_ttl: Option<String>,
    claim_wait: Option<String>,
}

/// Validates `[preprocessor.imagegen.storage]`; errors name the key (under `storage.`).
// One check per key, in the order the docs list them: the first wrong key is the one reported.
pub(super) fn storage(raw: RawStorage) -> Result<Storage, (&'static str, String)> {
    let scheme = Scheme::parse(&raw.scheme)?;
    let bucket = bucket(scheme, raw.bucket)?;
    let endpoint = raw.endpoint.map(|e| store_url("endpoint", e)).transpose()?;
    if scheme == Scheme::Fs && endpoint.is_some() {
        return Err(("endpoint", "the `fs` store has no endpoint".into()));
    }
    let public_url = raw
        .public_url
        .map(|u| store_url("public-url", u))
        .transpose()?;
    let root = store_root(scheme, raw.root.unwrap_or_default())?;
    let mode = access(scheme, raw.mode.as_deref(), raw.anonymous)?;
    let claim_ttl = raw
        .claim_ttl
        .map(|text| claim_duration("claim-ttl", &text))
        .transpose()?
        .unwrap_or(CLAIM_TTL);
    let claim_wait = raw
        .claim_wait
        .map(|text| claim_duration("claim-wait", &text))
        .transpose()?;
    Ok(Storage {
        scheme,
        bucket,
        region: raw
            .region
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
        endpoint,
        root,
        public_url,
        mode,
        anonymous: raw.anonymous,
        claim_ttl,
        claim_wait,
    })
}

/// `claim-ttl` or `claim-wait`: a duration from 2 seconds to an hour.
fn claim_duration(key: &'static str, text: &str) -> Result<Duration, (&'static str, String)> {
    let duration = super::limits::duration(text).map_err(|e| (key, e))?;
    if !(Duration::from_secs(2)..=Duration::from_secs(3600)).contains(&duration) {
        return Err((
            key,
            format!("`{text}` is out of range; give a duration from `\"2s\"` to `\"1h\"`"),
        ));
    }
    Ok(duration)
}

/// A store's `bucket`: the bucket or container, which the cloud stores need and `fs` has none of.
fn bucket(scheme: Scheme, bucket: Option<String>) -> Result<String, (&'static str, String)> {
    let bucket = bucket.unwrap_or_default().trim().to_owned();
    match scheme {
        Scheme::Fs if !bucket.is_empty() => {
            return Err((
                "bucket",
                "the `fs` store has no bucket; set `root` to its directory".into(),
            ));
        }
        Scheme::S3 | Scheme::Gcs | Scheme::Azblob if bucket.is_empty() => {
            let what = if scheme == Scheme::Azblob {
                "container"
            } else {
                "bucket"
            };
            return Err((
                "bucket",
                format!(
                    "the `{}` store needs the name of its {what}",
                    scheme.as_str()
                ),
            ));
        }
        _ => {}
    }
    Ok(bucket)
}

/// A store's `mode` and `anonymous`: anonymous access only reads, and `fs` has no credentials.
fn access(
    scheme: Scheme,
    mode: Option<&str>,
    anonymous: bool,
) -> Result<Mode, (&'static str, String)> {
    let mode = match mode {
        None | Some("read-write") => Mode::ReadWrite,
        Some("read-only") => Mode::ReadOnly,
        Some(other) => {
            return Err((
                "mode",
                format!("`{other}` is not a mode; use `\"read-write\"` or `\"read-only\"`"),
            ));
        }
    };
    if anonymous && mode == Mode::ReadWrite {
        return Err((
            "anonymous",
            "anonymous access can only read; add `mode = \"read-only\"`".into(),
        ));
    }
    if anonymous && scheme == Scheme::Fs {
        return Err(("anonymous", "the `fs` store has no credentials".into()));
    }
    Ok(mode)
}

/// A store's `endpoint` or `public-url`: http(s), with no credentials, query or fragment in it.
fn store_url(key: &'static str, text: String) -> Result<String, (&'static str, String)> {
    let text = text.trim().trim_end_matches('/').to_owned();
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return Err((
            key,
            format!("`{text}` is not an `http://` or `https://` URL"),
        ));
    };
    if rest.contains(['?', '#']) {
        return Err((
            key,
            "must not have a query or fragment (a signed URL?); credentials come from the environment".into(),
        ));
    }
    if rest.is_empty()
        || rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains('@'))
    {
        return Err((
            key,
            "must be a URL without a user name or password; credentials come from the environment"
                .into(),
        ));
    }
    Ok(text)
}

/// A store's `root`: the directory of an `fs` store, or a plain prefix in a bucket.
fn store_root(scheme: Scheme, root: String) -> Result<String, (&'static str, String)> {
    if scheme == Scheme::Fs {
        let root = root.trim().trim_end_matches('/').to_owned();
        if root.is_empty() {
            return Err((
                "root",
                "the `fs` store needs its directory, such as `\"/mnt/shared/imagegen\"`".into(),
            ));
        }
        Ok(root)
    } else {
        let root = root.trim().trim_matches('/').to_owned();
        if root.split('/').any(|part| part == "." || part == "..") {
            return Err((
                "root",
                format!("`{root}` must be a plain prefix such as `imagegen`"),
            ));
        }
        Ok(if root.is_empty() {
            "imagegen".to_owned()
        } else {
            root
        })
    }
}
