//! Conditional writes, for claims: create an object only if it is absent, replace or delete it
//! only if it is still the version that was read. Each store says it its own way:
//!
//! | store | create only | replace if unchanged | delete if unchanged |
//! |---|---|---|---|
//! | S3 and compatibles | `If-None-Match: *` | `If-Match: <etag>` | `If-Match: <etag>` |
//! | GCS | `ifGenerationMatch=0` | `ifGenerationMatch=<generation>` | `ifGenerationMatch` |
//! | Azure Blob | `If-None-Match: *` | `If-Match: <etag>` | `If-Match: <etag>` |
//! | `fs` | a rename that never replaces | rename away, then create | read, compare, delete |
//!
//! A store can claim a capability it does not honour (an emulator, an old S3-compatible
//! server), so [`Remote::probe_conditions`] tries both on a scratch object before claims are
//! used, and a store that fails the probe gets no claims.

use std::path::Path;

use opendal::ErrorKind;

use super::{Remote, Scheme};
use crate::error::{Error, Result};

/// What a conditional write compares: an object's ETag (S3, Azure), its generation (GCS), or
/// in an `fs` store a hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version(String);

/// An object as read with its version: its bytes, or why they were not read.
pub(crate) type Versioned = (std::result::Result<Vec<u8>, String>, Version);

/// What a conditional request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conditional {
    /// Written; the object's new version.
    Done(Version),
    /// The condition failed: the object exists (create), or changed or went away (replace).
    Conflict,
    /// The store cannot make this request conditional.
    Unsupported(String),
}

/// What a store honours, as probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// Create-only writes; `Err` says why not.
    pub(crate) create_only: std::result::Result<(), String>,
    /// Replacing an object only if it is still the version read.
    pub(crate) swap: bool,
}

/// How a replacement is made in an `fs` store, which has no compare-and-swap: a holder
/// renewing its own claim replaces it in one rename (never a moment without it); a waiter
/// taking a dead claim over renames it away first (of two waiters, one rename succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    Renew,
    TakeOver,
}

const JSON: &str = "application/json";

fn hash_version(bytes: &[u8]) -> Version {
    Version(blake3::hash(bytes).to_hex().to_string())
}

impl Remote {
    fn fs_file(&self, dir: &Path, path: &str) -> Result<std::path::PathBuf> {
        crate::files::join_inside(dir, Path::new(path)).ok_or_else(|| Error::Remote {
            store: self.label.clone(),
            message: format!("`{path}` is not a path inside the store"),
            read_only: false,
        })
    }

    fn fs_error(&self, action: &str, path: &str, e: &std::io::Error) -> Error {
        Error::Remote {
            store: self.label.clone(),
            message: format!("cannot {action} `{path}`: {e}"),
            read_only: false,
        }
    }

    /// The version of an object the store just wrote or stated.
    fn version_of(&self, meta: &opendal::Metadata) -> Option<Version> {
        let value = match self.scheme {
            Scheme::Gcs => meta.version(),
            _ => meta.etag(),
        };
        value.map(|v| Version(v.to_owned()))
    }

    /// Writes `bytes` at `path` only if nothing is there.
    pub(crate) fn create_only(&self, path: &str, bytes: &[u8]) -> Result<Conditional> {
        if let Some(dir) = &self.fs_dir {
            let file = self.fs_file(dir, path)?;
            return match crate::files::write_new(dir, &dir.join(".tmp"), &file, bytes) {
                Ok(true) => Ok(Conditional::Done(hash_version(bytes))),
                Ok(false) => Ok(Conditional::Conflict),
                Err(e) => Err(self.fs_error("write", path, &e)),
            };
        }
        if !self.operator.info().capability().write_with_if_not_exists {
            return Ok(Conditional::Unsupported(
                "the store takes no create-only writes".into(),
            ));
        }
        let operator = &self.operator;
        let written = self.runtime.block_on(async {
            let mut write = operator
                .write_with(path, bytes.to_vec())
                .if_not_exists(true);
            if operator.info().capability().write_with_content_type {
                write = write.content_type(JSON);
            }
            write.await
        });
        self.answer(path, written)
    }

    /// Replaces the object at `path` with `bytes` only if it is still `version`.
    pub(crate) fn replace_if(
        &self,
        path: &str,
        bytes: &[u8],
        version: &Version,
        how: Replace,
    ) -> Result<Conditional> {
        if let Some(dir) = &self.fs_dir {
            return self.fs_replace(dir, path, bytes, version, how);
        }
        let capability = self.operator.info().capability();
        let operator = &self.operator;
        let written = match self.scheme {
            Scheme::Gcs if capability.write_with_if_version_match => self.runtime.block_on(async {
                operator
                    .write_with(path, bytes.to_vec())
                    .if_version_match(&version.0)
                    .content_type(JSON)
                    .await
            }),
            Scheme::S3 | Scheme::Azblob if capability.write_with_if_match => {
                self.runtime.block_on(async {
                    operator
                        .write_with(path, bytes.to_vec())
                        .if_match(&version.0)
                        .content_type(JSON)
                        .await
                })
            }
            _ => {
                return Ok(Conditional::Unsupported(
                    "the store takes no conditional replacements".into(),
                ));
            }
        };
        self.answer(path, written)
    }

    /// Writes `bytes` at `path` whatever is there: how a holder renews its claim in a store
    /// that cannot replace conditionally (where no claim is ever taken over either).
    pub(crate) fn overwrite(&self, path: &str, bytes: &[u8]) -> Result<Conditional> {
        if let Some(dir) = &self.fs_dir {
            let file = self.fs_file(dir, path)?;
            crate::files::replace_shared(dir, &dir.join(".tmp"), &file, bytes)
                .map_err(|e| self.fs_error("write", path, &e))?;
            return Ok(Conditional::Done(hash_version(bytes)));
        }
        let operator = &self.operator;
        let written = self.runtime.block_on(async {
            operator
                .write_with(path, bytes.to_vec())
                .content_type(JSON)
                .await
        });
        self.answer(path, written)
    }

    /// Turns a conditional write's answer into a [`Conditional`].
    fn answer(
        &self,
        path: &str,
        written: opendal::Result<opendal::Metadata>,
    ) -> Result<Conditional> {
        match written {
            Ok(meta) => {
                let version = match self.version_of(&meta) {
                    Some(version) => Some(version),
                    // Not every answer carries it: ask.
                    None => self.stat_version(path)?,
                };
                Ok(version.map_or(Conditional::Conflict, Conditional::Done))
            }
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(Conditional::Conflict),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Conditional::Conflict),
            // S3 answers two conditional writes of one object at once with `409
            // ConditionalRequestConflict` to one of them: someone else is writing it.
            Err(e)
                if e.kind() == ErrorKind::Conflict
                    || e.message().contains("ConditionalRequestConflict") =>
            {
                Ok(Conditional::Conflict)
            }
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                Ok(Conditional::Unsupported(crate::outside::clean(
                    &self.secrets.redact(e.message()),
                    crate::outside::SHOWN_CHARS,
                )))
            }
            Err(e) => Err(self.error("write", e)),
        }
    }

    fn stat_version(&self, path: &str) -> Result<Option<Version>> {
        match self.runtime.block_on(self.operator.stat(path)) {
            Ok(meta) => Ok(self.version_of(&meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("read", e)),
        }
    }

    /// The version of an object, `None` when there is none: one small request (in an `fs`
    /// store, a read).
    pub(crate) fn version(&self, path: &str) -> Result<Option<Version>> {
        if self.fs_dir.is_some() {
            return Ok(self
                .read_versioned(path, crate::claim::MAX_CLAIM_BYTES)?
                .map(|(_, version)| version));
        }
        self.stat_version(path)
    }

    /// Reads a small object with its version; `None` when there is none. An object that is
    /// not read (larger than `cap`, or in an `fs` store not a regular file) is `Err` with the
    /// reason, and still has a version, which changes when it does.
    pub(crate) fn read_versioned(&self, path: &str, cap: u64) -> Result<Option<Versioned>> {
        if let Some(dir) = &self.fs_dir {
            return Ok(match super::read_fs(dir, path, cap) {
                super::Fetched::Bytes(bytes) => {
                    let version = hash_version(&bytes);
                    Some((Ok(bytes), version))
                }
                super::Fetched::Missing => None,
                super::Fetched::Refused(why) => {
                    let version = hash_version(why.as_bytes());
                    Some((Err(why), version))
                }
            });
        }
        // The version first: if the object changes before it is read, the bytes are newer than
        // the version, and a replacement with that version fails, as it should.
        let Some(version) = self.stat_version(path)? else {
            return Ok(None);
        };
        Ok(match self.read(&[path.to_owned()], cap)?.pop() {
            Some(super::Fetched::Bytes(bytes)) => Some((Ok(bytes), version)),
            Some(super::Fetched::Refused(why)) => Some((Err(why), version)),
            _ => None,
        })
    }

    /// Deletes the object at `path` only if it is still `version`; `false` when it was not
    /// (or was gone already).
    pub(crate) fn delete_if(&self, path: &str, version: &Version) -> Result<bool> {
        let capability = self.operator.info().capability();
        if self.fs_dir.is_none() {
            let operator = &self.operator;
            let conditional = match self.scheme {
                Scheme::Gcs if capability.delete_with_if_version_match => {
                    Some(self.runtime.block_on(async {
                        operator
                            .delete_with(path)
                            .if_version_match(&version.0)
                            .await
                    }))
                }
                Scheme::S3 | Scheme::Azblob if capability.delete_with_if_match => Some(
                    self.runtime
                        .block_on(async { operator.delete_with(path).if_match(&version.0).await }),
                ),
                _ => None,
            };
            if let Some(result) = conditional {
                return match result {
                    Ok(()) => Ok(true),
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::ConditionNotMatch | ErrorKind::NotFound
                        ) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(self.error("delete", e)),
                };
            }
        }
        // Look, compare, delete: a claim changes only when its holder renews it or a waiter
        // takes it over, neither of which happens to a claim its holder is letting go.
        match self.version(path)? {
            Some(now) if &now == version => {
                self.delete(&[path.to_owned()])?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn fs_replace(
        &self,
        dir: &Path,
        path: &str,
        bytes: &[u8],
        version: &Version,
        how: Replace,
    ) -> Result<Conditional> {
        let file = self.fs_file(dir, path)?;
        let cap = crate::claim::MAX_CLAIM_BYTES;
        let staging = dir.join(".tmp");
        if let Err(e) = crate::files::check_confined(dir, &file) {
            return match e.kind() {
                std::io::ErrorKind::NotFound => Ok(Conditional::Conflict),
                _ => Err(self.fs_error("read", path, &e)),
            };
        }
        match how {
            Replace::Renew => {
                match crate::files::read_regular(&file, cap) {
                    Ok(now) if &hash_version(&now) == version => {}
                    Ok(_) => return Ok(Conditional::Conflict),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Conditional::Conflict);
                    }
                    Err(e) => return Err(self.fs_error("read", path, &e)),
                }
                // Readable by every machine that shares the directory, as the claim it replaces.
                crate::files::replace_shared(dir, &staging, &file, bytes)
                    .map_err(|e| self.fs_error("write", path, &e))?;
                Ok(Conditional::Done(hash_version(bytes)))
            }
            Replace::TakeOver => {
                // Rename the claim away: of two waiters, only one rename finds it.
                crate::files::create_dir_confined(dir, &staging)
                    .map_err(|e| self.fs_error("write", path, &e))?;
                let aside = staging.join(format!(".claim-{:016x}", fastrand::u64(..)));
                match std::fs::rename(&file, &aside) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Conditional::Conflict);
                    }
                    Err(e) => return Err(self.fs_error("write", path, &e)),
                }
                let moved = crate::files::read_regular(&aside, cap).unwrap_or_default();
                let _ = std::fs::remove_file(&aside);
                if &hash_version(&moved) != version {
                    // Renewed meanwhile: its holder is alive. Put it back unless someone else
                    // claimed the key in the moment it was away.
                    let _ = crate::files::write_new(dir, &staging, &file, &moved);
                    return Ok(Conditional::Conflict);
                }
                match crate::files::write_new(dir, &staging, &file, bytes) {
                    Ok(true) => Ok(Conditional::Done(hash_version(bytes))),
                    Ok(false) => Ok(Conditional::Conflict),
                    Err(e) => Err(self.fs_error("write", path, &e)),
                }
            }
        }
    }

    /// Tries, on a scratch object under `claims/`, whether the store honours create-only
    /// writes and conditional replacements, then deletes it. The answer is kept for the rest
    /// of the build.
    pub(crate) fn probe_conditions(&self, id: &str) -> Result<Conditions> {
        let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conditions) = &*probed {
            return Ok(conditions.clone());
        }
        let conditions = self.probe(id)?;
        *probed = Some(conditions.clone());
        Ok(conditions)
    }

    fn probe(&self, id: &str) -> Result<Conditions> {
        let path = format!("{}.probe-{id}", crate::claim::DIR);
        let first = self.create_only(&path, b"probe\n")?;
        let version = match first {
            Conditional::Done(version) => version,
            Conditional::Unsupported(why) => {
                return Ok(Conditions {
                    create_only: Err(why),
                    swap: false,
                });
            }
            Conditional::Conflict => {
                return Ok(Conditions {
                    create_only: Err("a create-only write of a new object failed".into()),
                    swap: false,
                });
            }
        };
        let conditions = self.probe_on(&path, &version)?;
        // A claim is deleted once its image is uploaded: credentials that cannot delete would
        // leave every claim to expire, and every waiter to wait for it.
        if let Err(e) = self.delete(std::slice::from_ref(&path)) {
            return Ok(Conditions {
                create_only: Err(format!("a claim could not be deleted: {e}")),
                swap: false,
            });
        }
        Ok(conditions)
    }

    fn probe_on(&self, path: &str, version: &Version) -> Result<Conditions> {
        if let Conditional::Done(_) = self.create_only(path, b"again\n")? {
            return Ok(Conditions {
                create_only: Err("it replaced an object that a create-only write must leave".into()),
                swap: false,
            });
        }
        let wrong = match self.scheme {
            Scheme::Gcs => Version("1".into()),
            _ => Version("\"0000000000000000\"".into()),
        };
        // Credentials that may create but not replace (GCS's Storage Object Creator, an Azure
        // SAS without `w`) answer the replacements with a refusal: claims then work without
        // take-overs.
        let swap = match self.replace_if(path, b"wrong\n", &wrong, Replace::TakeOver) {
            Ok(Conditional::Conflict) => matches!(
                self.replace_if(path, b"right\n", version, Replace::TakeOver),
                Ok(Conditional::Done(_))
            ),
            Ok(Conditional::Done(_) | Conditional::Unsupported(_)) => false,
            Err(Error::Remote {
                read_only: true, ..
            }) => false,
            Err(e) => return Err(e),
        };
        Ok(Conditions {
            create_only: Ok(()),
            swap,
        })
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::super::tests::{open, s3, s3_error};
    use super::*;
    use crate::config::Mode;

    fn shared_directory(book: &Path) -> Remote {
        std::fs::create_dir_all(book.join("shared")).unwrap();
        super::super::tests::shared_directory(book, Mode::ReadWrite)
    }

    /// S3 as it answers conditional writes: `412` when the object exists (or its ETag
    /// differs), `409 ConditionalRequestConflict` to one of two writes at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_conflicts_are_conflicts_not_outages() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path_regex("/claims/taken$"))
            .and(header("if-none-match", "*"))
            .respond_with(s3_error(412, "PreconditionFailed"))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex("/claims/racing$"))
            .respond_with(s3_error(409, "ConditionalRequestConflict"))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex("/claims/stale$"))
            .and(header("if-match", "\"old\""))
            .respond_with(s3_error(412, "PreconditionFailed"))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex("/claims/free$"))
            .respond_with(ResponseTemplate::new(200).insert_header("etag", "\"v1\""))
            .mount(&server)
            .await;
        let uri = server.uri();
        tokio::task::spawn_blocking(move || {
            let remote = open(&s3(&uri, Mode::ReadWrite));
            assert_eq!(
                remote.create_only("claims/taken", b"c").unwrap(),
                Conditional::Conflict
            );
            assert_eq!(
                remote.create_only("claims/racing", b"c").unwrap(),
                Conditional::Conflict
            );
            let stale = Version("\"old\"".into());
            assert_eq!(
                remote
                    .replace_if("claims/stale", b"c", &stale, Replace::TakeOver)
                    .unwrap(),
                Conditional::Conflict
            );
            assert_eq!(
                remote.create_only("claims/free", b"c").unwrap(),
                Conditional::Done(Version("\"v1\"".into()))
            );
            // None of it turned the remote off.
            assert!(remote.is_up() && remote.can_write());
        })
        .await
        .unwrap();
    }

    /// Credentials that may create objects but not replace them (GCS's Storage Object Creator,
    /// an Azure SAS without `w`): claims without take-overs, and the remote stays writable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_probe_refused_a_replacement_gives_claims_without_take_overs() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(header("if-none-match", "*"))
            .respond_with(ResponseTemplate::new(200).insert_header("etag", "\"p1\""))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(header("if-none-match", "*"))
            .respond_with(s3_error(412, "PreconditionFailed"))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(s3_error(403, "AccessDenied"))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let uri = server.uri();
        tokio::task::spawn_blocking(move || {
            let remote = open(&s3(&uri, Mode::ReadWrite));
            let conditions = remote.probe_conditions("t").unwrap();
            assert_eq!(conditions.create_only, Ok(()));
            assert!(!conditions.swap);
            assert!(remote.is_up() && remote.can_write());
        })
        .await
        .unwrap();
    }

    #[test]
    fn an_fs_store_creates_once_replaces_if_unchanged_and_passes_the_probe() {
        let book = tempfile::tempdir().unwrap();
        let remote = shared_directory(book.path());
        let path = "claims/k";
        let Conditional::Done(first) = remote.create_only(path, b"one").unwrap() else {
            panic!("the first create writes");
        };
        assert_eq!(
            remote.create_only(path, b"two").unwrap(),
            Conditional::Conflict
        );
        let (bytes, version) = remote.read_versioned(path, 100).unwrap().unwrap();
        assert_eq!((bytes.unwrap().as_slice(), &version), (&b"one"[..], &first));

        let Conditional::Done(renewed) = remote
            .replace_if(path, b"one again", &first, Replace::Renew)
            .unwrap()
        else {
            panic!("the holder renews");
        };
        // A waiter that read the old version loses: the holder is alive.
        for how in [Replace::Renew, Replace::TakeOver] {
            assert_eq!(
                remote.replace_if(path, b"mine", &first, how).unwrap(),
                Conditional::Conflict
            );
        }
        assert_eq!(
            remote
                .read_versioned(path, 100)
                .unwrap()
                .unwrap()
                .0
                .unwrap(),
            b"one again"
        );
        let Conditional::Done(taken) = remote
            .replace_if(path, b"taken", &renewed, Replace::TakeOver)
            .unwrap()
        else {
            panic!("a dead claim is taken over");
        };
        assert!(!remote.delete_if(path, &renewed).unwrap());
        assert!(remote.delete_if(path, &taken).unwrap());
        assert_eq!(remote.read_versioned(path, 100).unwrap(), None);

        let conditions = remote.probe_conditions("t").unwrap();
        assert_eq!(conditions.create_only, Ok(()));
        assert!(conditions.swap);
        assert!(!book.path().join("shared/claims/.probe-t").exists());

        // A claim that is a link is not read, and is no outage: a claim that cannot be read.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", book.path().join("shared/claims/l")).unwrap();
            let (read, _) = remote.read_versioned("claims/l", 100).unwrap().unwrap();
            assert!(read.is_err());
        }
    }
}
