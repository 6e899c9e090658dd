//! Stage 6, publish: with a `public-url`, the remote cache serves the web files, so each
//! figure's files are uploaded there (or, on a read-only build, checked). Also sends the images
//! an earlier build could not upload.

use std::collections::{BTreeMap, BTreeSet};

use super::Book;
use super::image::{Image, Ready};
use super::web_files::read_asset;
use crate::assets::Manifest;
use crate::cache::Cache;
use crate::progress::plural;
use crate::storage::Remote;

/// The derivations of the images found here that the remote already serves, by the index
/// (read while it is open).
pub(crate) fn known(
    book: &Book<'_>,
    cache: &Cache,
    local: &[Option<(usize, Ready)>],
) -> BTreeSet<String> {
    let Some(storage) = book
        .config
        .storage
        .as_ref()
        .filter(|s| s.public_url.is_some())
    else {
        return BTreeSet::new();
    };
    let label = crate::storage::label(storage, &book.ctx.root);
    local
        .iter()
        .flatten()
        .map(|(_, ready)| &ready.derivation)
        .filter(|derivation| cache.is_published(&label, derivation))
        .cloned()
        .collect()
}

/// Whether an image found here has web files the remote does not serve yet.
pub(crate) fn has_unpublished(
    book: &Book<'_>,
    local: &[Option<(usize, Ready)>],
    published: &BTreeSet<String>,
) -> bool {
    book.public_url().is_some()
        && local
            .iter()
            .flatten()
            .any(|(_, ready)| !published.contains(&ready.derivation))
}

/// Uploads the images an earlier build stored but could not upload.
pub(crate) fn upload_pending(cache: &mut Cache, remote: Option<&Remote>) {
    if let Some(remote) = remote
        && remote.can_write()
        && let Some(done) = remote.degrade(cache.upload_pending(remote))
        && done > 0
    {
        tracing::info!(
            "imagegen: uploaded {done} image{} an earlier build could not to `{}`",
            plural(done),
            remote.label()
        );
    }
}

/// With a `public-url`, makes sure the remote holds the web files of every figure: uploads
/// them when this build may write, or checks they are there when it may not. Each derivation
/// is checked once; the index remembers it.
pub(crate) fn run(
    book: &Book<'_>,
    cache: &mut Cache,
    remote: &Remote,
    images: &[Image],
    published: &BTreeSet<String>,
) {
    if book.public_url().is_none() {
        return;
    }
    let mut todo: BTreeMap<&str, &Manifest> = BTreeMap::new();
    for image in images {
        if let Image::Ready(Ready {
            derivation,
            manifest: Some(manifest),
            ..
        }) = image
            && !published.contains(derivation)
        {
            todo.insert(derivation, manifest);
        }
    }
    if todo.is_empty() {
        return;
    }
    if !remote.is_up() {
        tracing::warn!(
            "imagegen: {} figure{} point at `public-url` files this build could not upload or check; they may show no image until a build reaches `{}`",
            todo.len(),
            plural(todo.len()),
            remote.label()
        );
        return;
    }
    let files: BTreeSet<&str> = todo
        .values()
        .flat_map(|m| &m.files)
        .map(|f| f.name.as_str())
        .collect();
    let done = if remote.can_write() {
        upload(book, remote, &files)
    } else {
        check(remote, &files)
    };
    if done {
        for (derivation, manifest) in todo {
            cache.record_published(remote.label(), derivation, manifest.clone());
        }
    }
}

/// Uploads web files; returns whether all are there now.
fn upload(book: &Book<'_>, remote: &Remote, files: &BTreeSet<&str>) -> bool {
    let dir = &book.assets_dir;
    let mut objects = Vec::new();
    for name in files {
        match read_asset(dir, name) {
            Ok(bytes) => objects.push(crate::storage::Object {
                path: crate::storage::paths::asset(name),
                content_type: crate::vocab::media_type_of(name),
                bytes,
            }),
            Err(e) => {
                tracing::warn!("{e}");
                return false;
            }
        }
    }
    remote.degrade(remote.upload(&objects)).is_some()
}

/// Checks that the remote serves web files (a read-only build); returns whether all are there.
fn check(remote: &Remote, files: &BTreeSet<&str>) -> bool {
    let paths: Vec<String> = files
        .iter()
        .map(|name| crate::storage::paths::asset(name))
        .collect();
    let Some(present) = remote.degrade(remote.exists(&paths)) else {
        return false;
    };
    let absent = present.iter().filter(|p| !**p).count();
    if absent > 0 {
        tracing::warn!(
            "imagegen: {absent} web file{} of this book's figures {} not in `{}` yet, so those figures show no image; a build with write access (or `mdbook-imagegen push`) uploads them",
            plural(absent),
            if absent == 1 { "is" } else { "are" },
            remote.label()
        );
    }
    absent == 0
}
