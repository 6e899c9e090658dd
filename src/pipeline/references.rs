//! Reference images, read and checked at the edge: the files a directive or its style names
//! (inside the book, regular, bounded, a PNG, JPEG or WebP image), and the masters of the
//! directives it names by `#id`. What `plan` hashes into a cache key is what a provider is sent.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{Cache, Entry, Tier};
use crate::request::RefImage;

/// The largest reference file read: what Gemini takes for a whole inline request, and well
/// under OpenAI's limit per image.
pub(crate) const MAX_BYTES: u64 = 20 * 1024 * 1024;

/// The longest side a reference may have.
const MAX_SIDE: u32 = 16_384;

/// The prefix of a stand-in's hash: `plan` names an image a build will generate first this way.
const STAND_IN: &str = "after:";

/// Reads reference files once per build.
pub(crate) struct Reader {
    root: PathBuf,
    read: HashMap<PathBuf, Result<RefImage, String>>,
}

impl Reader {
    pub(crate) fn new(root: &Path) -> Reader {
        Reader {
            root: root.to_owned(),
            read: HashMap::new(),
        }
    }

    /// A file given relative to `base` (a directory relative to the book's root: the chapter's,
    /// or the root itself for a style's), as the author wrote it.
    pub(crate) fn file(&mut self, base: &Path, written: &str) -> Result<RefImage, String> {
        let Some(path) = crate::files::join_inside(&self.root, &base.join(written)) else {
            return Err(format!(
                "reference `{written}` leaves the book; references must be files inside it"
            ));
        };
        let read = self
            .read
            .entry(path.clone())
            .or_insert_with(|| read_file(&self.root, &path));
        read.clone().map(|mut image| {
            image.label = written.to_owned();
            image
        })
    }
}

/// Reads and checks one reference file.
fn read_file(root: &Path, path: &Path) -> Result<RefImage, String> {
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    crate::files::check_confined(root, path)
        .map_err(|e| format!("reference `{shown}` cannot be read: {e}"))?;
    let bytes = crate::files::read_regular(path, MAX_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("reference `{shown}` does not exist; check the path (it is relative to the chapter's file, or for a style to the book's root)")
        }
        _ => format!("reference `{shown}` cannot be read: {e}"),
    })?;
    let media_type = check_image(&bytes).map_err(|e| format!("reference `{shown}` {e}"))?;
    Ok(RefImage {
        label: shown,
        hash: blake3::hash(&bytes).to_hex().to_string(),
        media_type,
        bytes: Arc::new(bytes),
        path: path.to_owned(),
    })
}

/// The media type of a reference image, or why it is not one: a PNG, JPEG or WebP whose header
/// reads, of a sensible size.
pub(crate) fn check_image(bytes: &[u8]) -> Result<&'static str, String> {
    let media_type = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => return Err("is not a PNG, JPEG or WebP image; providers take only these".into()),
    };
    let dimensions = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok());
    match dimensions {
        Some((w, h)) if w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE => Ok(media_type),
        Some((w, h)) => Err(format!(
            "is {w}×{h} pixels; a reference may be at most {MAX_SIDE} pixels on a side"
        )),
        None => Err("is damaged: its image header does not read".into()),
    }
}

/// The master of a ready image, as a reference (a build sends its bytes).
pub(crate) fn master(cache: &Cache, tier: Tier, entry: &Entry) -> Result<RefImage, String> {
    if entry.extension == "svg" {
        return Err("its image is an SVG; providers take only PNG, JPEG or WebP references".into());
    }
    let path = cache.master_path(tier, entry);
    let bytes = crate::files::read_regular(&path, crate::provider::MAX_MASTER_BYTES as u64).map_err(|e| {
        format!("its master is not on this machine ({e}); build once with the remote cache, or run `mdbook-imagegen regenerate` for it")
    })?;
    if blake3::hash(&bytes).to_hex().as_str() != entry.master {
        return Err(
            "its master does not match its hash; run `mdbook-imagegen verify --fix`".into(),
        );
    }
    let media_type = check_image(&bytes)?;
    Ok(RefImage {
        label: String::new(),
        hash: entry.master.clone(),
        media_type,
        bytes: Arc::new(bytes),
        path,
    })
}

/// A ready master as a reference not read yet: its hash, type and path. Its bytes are read by
/// [`read_unread`] only when a request that sends it is about to be (a dark twin's light image:
/// a build whose twins are cached reads none).
pub(crate) fn unread(cache: &Cache, tier: Tier, entry: &Entry) -> RefImage {
    RefImage {
        label: String::new(),
        hash: entry.master.clone(),
        media_type: crate::vocab::media_type_of(&format!("master.{}", entry.extension)),
        bytes: Arc::default(),
        path: cache.master_path(tier, entry),
    }
}

/// Reads the bytes of every [`unread`] reference of a chain to send, each checked against its
/// hash and as an image; the reason when one cannot be.
pub(crate) fn read_unread(chain: &mut crate::request::Chain) -> Result<(), String> {
    let mut read: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    for (_, request) in chain.iter_mut() {
        for reference in &mut request.references {
            if !reference.bytes.is_empty() || reference.path.as_os_str().is_empty() {
                continue;
            }
            if let Some(bytes) = read.get(&reference.hash) {
                reference.bytes = Arc::clone(bytes);
                continue;
            }
            if reference.media_type == "image/svg+xml" {
                return Err(
                    "its image is an SVG; providers take only PNG, JPEG or WebP references".into(),
                );
            }
            let bytes = crate::files::read_regular(
                &reference.path,
                crate::provider::MAX_MASTER_BYTES as u64,
            )
            .map_err(|e| {
                format!("its master cannot be read ({e}); run `mdbook-imagegen verify --fix`")
            })?;
            if blake3::hash(&bytes).to_hex().as_str() != reference.hash {
                return Err(
                    "its master does not match its hash; run `mdbook-imagegen verify --fix`".into(),
                );
            }
            reference.media_type = check_image(&bytes)?;
            reference.bytes = Arc::new(bytes);
            read.insert(reference.hash.clone(), Arc::clone(&reference.bytes));
        }
    }
    Ok(())
}

/// A master known by its hash only (`plan` reads no master).
pub(crate) fn known(master: &str) -> RefImage {
    RefImage {
        label: String::new(),
        hash: master.to_owned(),
        media_type: "image/png",
        bytes: Arc::default(),
        path: PathBuf::new(),
    }
}

/// What `plan` puts in place of an image a build generates first: the keys it yields are
/// provisional.
pub(crate) fn stand_in(key: crate::cache::key::CacheKey) -> RefImage {
    known(&format!("{STAND_IN}{key}"))
}

/// Whether a request waits for an image a build generates first.
pub(crate) fn is_provisional(request: &crate::request::Request) -> bool {
    request
        .references
        .iter()
        .any(|r| r.hash.starts_with(STAND_IN))
        || (request.dark_of.as_deref()).is_some_and(|light| light.starts_with(STAND_IN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_readable_png_jpeg_and_webp_are_references() {
        let png = crate::test_support::images::png(4, 3);
        assert_eq!(check_image(&png), Ok("image/png"));
        assert!(
            check_image(b"GIF89a....")
                .unwrap_err()
                .contains("not a PNG")
        );
        assert!(check_image(b"hello").unwrap_err().contains("not a PNG"));
        assert!(check_image(&png[..20]).unwrap_err().contains("damaged"));
    }

    #[test]
    fn files_stay_inside_the_book() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("book");
        std::fs::create_dir_all(root.join("src/a")).unwrap();
        std::fs::create_dir_all(root.join("art")).unwrap();
        let png = crate::test_support::images::png(4, 3);
        std::fs::write(root.join("art/k.png"), &png).unwrap();
        std::fs::write(dir.path().join("outside.png"), &png).unwrap();
        std::fs::write(root.join("art/notes.txt"), "hello").unwrap();
        let mut reader = Reader::new(&root);
        let base = Path::new("src/a");
        let ok = reader.file(base, "../../art/k.png").unwrap();
        assert_eq!(ok.label, "../../art/k.png");
        assert_eq!(ok.hash, blake3::hash(&png).to_hex().to_string());
        assert!(
            reader
                .file(base, "../../../outside.png")
                .unwrap_err()
                .contains("leaves the book")
        );
        assert!(
            reader
                .file(base, "missing.png")
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            reader
                .file(base, "../../art/notes.txt")
                .unwrap_err()
                .contains("not a PNG")
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("outside.png"), root.join("art/l.png"))
                .unwrap();
            assert!(reader.file(Path::new(""), "art/l.png").is_err());
        }
    }
}
