//! What a job has once it is resolved: a master in the cache (with its web files once derived),
//! or a failure to show in its figure.

use std::collections::BTreeMap;

use super::Book;
use super::jobs::Job;
use super::resolve::{Decision, Resolution};
use crate::assets::{self, Manifest};
use crate::cache::key::CacheKey;
use crate::cache::{Cache, Entry, Tier};
use crate::request::Request;
use crate::vocab::ProviderKind;

/// What one job got.
pub(crate) enum Image {
    Ready(Ready),
    Failed(String),
    /// To be generated (between resolve and generate only).
    ToMake,
}

/// A master in the cache, and what deriving its web files needs.
pub(crate) struct Ready {
    pub(crate) entry: Entry,
    pub(crate) tier: Tier,
    /// The provider kind and model that made it, for the provenance metadata.
    pub(crate) kind: ProviderKind,
    pub(crate) model: String,
    /// The shape the figure is cropped to, when the master's is not the requested one.
    pub(crate) frame: Option<(u32, u32)>,
    /// The derivation id of the master under this book's output settings.
    pub(crate) derivation: String,
    /// Its web files, when the index knows them and they are all in the assets directory.
    pub(crate) manifest: Option<Manifest>,
}

impl Ready {
    /// The derivation settings of this master.
    pub(crate) fn origin(&self) -> assets::Origin<'_> {
        assets::Origin {
            provider: self.kind.as_str(),
            model: &self.model,
            by_model: self.kind.is_model(),
        }
    }
}

/// A cached master of `request`, with its web files when the index knows them and they are
/// all in the assets directory.
pub(crate) fn ready(
    book: &Book<'_>,
    cache: &Cache,
    tier: Tier,
    entry: Entry,
    request: &Request,
) -> Ready {
    // A vector is never cropped: it keeps its view box.
    // Nor is an image whose model chose its size (`size = "auto"`).
    let vector = entry.extension == "svg";
    let frame = assets::frame(
        (entry.width, entry.height),
        (request.size.width, request.size.height),
    )
    .filter(|_| !vector && !request.auto_size);
    let mut ready = Ready {
        entry,
        tier,
        kind: request.kind,
        model: request.model.clone(),
        frame,
        derivation: String::new(),
        manifest: None,
    };
    ready.derivation = assets::derivation_id(
        &ready.entry.master,
        &ready.origin(),
        frame,
        &book.config.output,
        vector,
    );
    ready.manifest = cache.manifest(&ready.derivation).filter(|manifest| {
        manifest.files.iter().all(|file| {
            crate::files::regular_len(&book.assets_dir.join(&file.name)) == Some(file.bytes)
        })
    });
    ready
}

/// The part of the cache a request's image lives in: a model's is committed, a placeholder's
/// stays local.
pub(crate) fn tier_of(request: &Request) -> Tier {
    if request.kind.is_model() {
        Tier::Committed
    } else {
        Tier::Local
    }
}

/// Every job's image as resolved: found ones ready, failed ones failed, the rest to make.
pub(crate) fn resolved(
    book: &Book<'_>,
    cache: &Cache,
    jobs: &[Job],
    resolution: &Resolution,
    local: Vec<Option<(usize, Ready)>>,
    fetched: &BTreeMap<CacheKey, Entry>,
) -> Vec<Image> {
    jobs.iter()
        .zip(&resolution.decisions)
        .zip(local)
        .map(|((job, decision), local)| match (decision, local) {
            (Decision::Cached(_), Some((_, ready))) => Image::Ready(ready),
            (Decision::Remote(link), _) => {
                let (key, request) = &job.chain[*link];
                match fetched.get(key) {
                    Some(entry) => {
                        Image::Ready(ready(book, cache, Tier::Committed, entry.clone(), request))
                    }
                    None => Image::Failed("the image was not copied from the remote cache".into()),
                }
            }
            (Decision::Fail(_, message), _) => Image::Failed(message.clone()),
            (Decision::Generate(_), _) => Image::ToMake,
            (Decision::Cached(_), None) => Image::Failed("the cached image was lost".into()),
        })
        .collect()
}
