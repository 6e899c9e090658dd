//! Web files from masters: every width of every format in `[output]`, a fallback for old
//! browsers and other renderers, and a square thumbnail.
//!
//! [`derive`] is a pure function of the master's bytes, the output settings, the encoders (see
//! [`encode::ENCODERS`]) and, under a perceptual target, the qualities already found. It never
//! reads a clock or the file system, and each encoder runs single-threaded with fixed settings,
//! so the same master gives byte-identical files on every run. File names carry a hash of what
//! made them, so a changed setting makes new files instead of overwriting old ones.

mod encode;
mod pixels;
mod settings;
mod tune;
mod xmp;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub(crate) use settings::{Format, Output, Quality, RawOutput};

/// Who made a master, for the provenance metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The provider kind, such as `openai`.
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    /// Whether a model made it (the placeholder drawing is not AI-generated).
    pub(crate) by_model: bool,
}

/// A master to derive from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) bytes: &'a [u8],
    /// The master's blake3 hash, 64 hex digits.
    pub(crate) hash: &'a str,
    pub(crate) origin: Origin<'a>,
    /// The shape the figure must have, as `(width, height)`, when it is not the master's own
    /// (see [`frame`]): the master is cropped to it, centred.
    pub(crate) frame: Option<(u32, u32)>,
}

/// How far a master's shape may be from the requested one before the figure is cropped to the
/// requested shape: 1 %, less than a 16-pixel step at the usual sizes.
const FRAME_TOLERANCE: f64 = 0.01;

/// The shape a figure of this master must be cropped to, when the master's shape (its width
/// and height) is more than 1 % off the `requested` size: a model that only makes some shapes
/// (a list of sizes, aspect ratios, a 3:1 limit) was asked for another. `None` keeps the
/// master's shape. The result is the requested size reduced to lowest terms.
pub(crate) fn frame(master: (u32, u32), requested: (u32, u32)) -> Option<(u32, u32)> {
    let shape = |(w, h): (u32, u32)| f64::from(w) / f64::from(h.max(1));
    if requested.0 == 0 || requested.1 == 0 {
        return None;
    }
    let off = (shape(master) / shape(requested)).ln().abs();
    if off <= FRAME_TOLERANCE.ln_1p() {
        return None;
    }
    let gcd = {
        let (mut a, mut b) = requested;
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    Some((requested.0 / gcd, requested.1 / gcd))
}

/// What a derived file is for, in the order a manifest lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    /// One width of a modern format, offered in a `<source>`.
    Variant,
    /// What `<img>` points at.
    Fallback,
    /// The square cover crop for review pages.
    Thumbnail,
    /// An SVG master's document, what `<img>` shows in HTML (the fallback then serves the
    /// other renderers).
    Vector,
}

/// One derived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssetFile {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) role: Role,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bytes: u64,
}

/// Every file derived from one master under one set of output settings, in the order a
/// `<picture>` lists them: variants by format, then by width; then fallbacks by width; then
/// the thumbnail. A file may be listed twice (as a variant and as the fallback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) files: Vec<AssetFile>,
}

impl Manifest {
    /// The variants of each modern format, in the order of `formats`.
    pub(crate) fn sources(&self) -> Vec<(&'static str, Vec<&AssetFile>)> {
        let mut sources: Vec<(&'static str, Vec<&AssetFile>)> = Vec::new();
        for file in self.files.iter().filter(|f| f.role == Role::Variant) {
            let media_type = file.format.media_type();
            match sources.iter_mut().find(|(m, _)| *m == media_type) {
                Some((_, files)) => files.push(file),
                None => sources.push((media_type, vec![file])),
            }
        }
        sources
    }

    /// The fallback files, narrowest first; never empty for a manifest made by [`derive`].
    pub(crate) fn fallbacks(&self) -> Vec<&AssetFile> {
        self.files
            .iter()
            .filter(|f| f.role == Role::Fallback)
            .collect()
    }

    /// The SVG file of a vector master.
    pub(crate) fn vector(&self) -> Option<&AssetFile> {
        self.files.iter().find(|f| f.role == Role::Vector)
    }

    /// The widest fallback: what non-HTML renderers show.
    pub(crate) fn main_fallback(&self) -> Option<&AssetFile> {
        self.fallbacks().into_iter().max_by_key(|f| f.width)
    }
}

/// The result of [`derive`]: the manifest, each file's bytes, and the qualities chosen under a
/// perceptual target (`"{format}:{width}"` → quality) for the caller to keep.
pub(crate) struct Derived {
    pub(crate) manifest: Manifest,
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    pub(crate) tuned: BTreeMap<String, u8>,
}

/// The id of one derivation: the master, the settings, the encoders and the provenance. The
/// index maps it to a [`Manifest`].
pub(crate) fn derivation_id(
    hash: &str,
    origin: &Origin<'_>,
    frame: Option<(u32, u32)>,
    output: &Output,
    vector: bool,
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"mdbook-imagegen derivation\0");
    for part in [
        hash,
        &output.fingerprint(),
        encode::ENCODERS,
        &provenance(origin, output).unwrap_or_default(),
    ] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    // Only a cropped figure hashes its frame, so every other derivation keeps its id.
    if let Some((width, height)) = frame {
        hasher.update(format!("frame {width}:{height}").as_bytes());
    }
    // Only a vector master hashes the sanitizer and renderer, for the same reason.
    if vector {
        hasher.update(format!("vector {}", crate::svg::VERSION).as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// The name of the file that keeps the qualities a perceptual target chose for a master.
pub(crate) fn tuned_name(hash: &str, output: &Output) -> Option<String> {
    let Quality::Target(score) = output.quality else {
        return None;
    };
    let spec = blake3::hash(format!("{score};{}", encode::ENCODERS).as_bytes());
    Some(format!("{}-{}.json", &hash[..16], &spec.to_hex()[..8]))
}

/// The master a tuned-qualities file belongs to (the first 16 hex digits of its hash), when
/// the name is one [`tuned_name`] gives.
pub(crate) fn tuned_master_prefix(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".json")?;
    let (master, spec) = stem.split_once('-')?;
    (crate::vocab::is_hex(master, 16) && crate::vocab::is_hex(spec, 8)).then_some(master)
}

/// The master a web file was made from (the first 16 hex digits of its hash), when the name
/// is one [`derive`] gives: `<master16>-<width>w-<id8>.<ext>` or `<master16>-thumb<side>-<id8>.<ext>`.
pub(crate) fn asset_master_prefix(name: &str) -> Option<&str> {
    let (stem, extension) = name.rsplit_once('.')?;
    if !crate::vocab::is_image_extension(extension) {
        return None;
    }
    let mut parts = stem.split('-');
    let (master, size, id) = (parts.next()?, parts.next()?, parts.next()?);
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let size_ok = size.strip_suffix('w').is_some_and(number)
        || size.strip_prefix("thumb").is_some_and(number);
    (parts.next().is_none()
        && crate::vocab::is_hex(master, 16)
        && size_ok
        && crate::vocab::is_hex(id, 8))
    .then_some(master)
}

/// The widths a master is made at: the configured widths it can fill, plus its own width when
/// some configured width is wider (a master is never upscaled).
pub(crate) fn plan_widths(master_width: u32, widths: &[u32]) -> Vec<u32> {
    let mut planned: Vec<u32> = widths
        .iter()
        .copied()
        .filter(|w| *w <= master_width)
        .collect();
    if planned.len() < widths.len() && !planned.contains(&master_width) {
        planned.push(master_width);
    }
    planned.sort_unstable();
    planned.dedup();
    planned
}

/// The height that keeps the aspect ratio at `width`.
fn scaled_height(width: u32, height: u32, to_width: u32) -> u32 {
    let scaled =
        (u64::from(height) * u64::from(to_width) + u64::from(width) / 2) / u64::from(width).max(1);
    u32::try_from(scaled).unwrap_or(u32::MAX).max(1)
}

/// A made file: its description, its bytes, and the quality a perceptual target chose.
type Made = (AssetFile, Vec<u8>, Option<(String, u8)>);

/// A square WebP thumbnail of a master (cover crop), for the review page.
pub(crate) fn thumbnail(bytes: &[u8], side: u32) -> Result<Vec<u8>, String> {
    let master = if crate::svg::looks_like_svg(bytes) {
        // Rendered just large enough to cover the square.
        let svg = crate::svg::sanitize(bytes)?;
        let width = if svg.width >= svg.height {
            side.saturating_mul(svg.width).div_ceil(svg.height.max(1))
        } else {
            side
        };
        pixels::rasterize(&svg.bytes, width.max(1))?
    } else {
        pixels::decode(bytes)?
    };
    let side = side.min(master.width).min(master.height);
    encode::encode(&pixels::cover_square(&master, side), Format::Webp, 75, None)
}

/// The pixels a master takes once decoded, for the memory budget: its own size, or for a
/// vector master the size it is rendered at (the widest configured width, keeping its shape).
pub(crate) fn decoded_size(width: u32, height: u32, vector: bool, output: &Output) -> (u32, u32) {
    if !vector {
        return (width, height);
    }
    let wide = output
        .widths
        .iter()
        .copied()
        .max()
        .unwrap_or(width)
        .min(pixels::MAX_SIDE);
    (
        wide,
        scaled_height(width, height, wide).min(pixels::MAX_SIDE),
    )
}

/// One file to make.
struct Task {
    format: Format,
    role: Role,
    width: u32,
    height: u32,
}

/// Derives every file. Errors name what went wrong with the master (a corrupt file, a
/// decompression bomb); they never panic.
pub(crate) fn derive(
    source: &Source<'_>,
    output: &Output,
    tuned: &BTreeMap<String, u8>,
) -> Result<Derived, String> {
    if crate::svg::looks_like_svg(source.bytes) {
        return derive_vector(source, output, tuned);
    }
    let mut master = pixels::decode(source.bytes)?;
    if let Some(frame) = source.frame {
        master = pixels::crop_to_shape(&master, frame);
    }
    let packet = provenance(&source.origin, output);
    let widths = plan_widths(master.width, &output.widths);
    let height_at = |w: u32| scaled_height(master.width, master.height, w);
    let fallback = fallback_format(master.alpha, output);

    let mut tasks = Vec::new();
    for &format in &output.formats {
        for &width in &widths {
            tasks.push(Task {
                format,
                role: Role::Variant,
                width,
                height: height_at(width),
            });
        }
    }
    let fallback_widths = if output.formats.is_empty() {
        widths.clone()
    } else {
        vec![*widths.last().expect("at least one width")]
    };
    // A fallback in one of the modern formats is the variant itself, listed again.
    let fallback_is_variant = output.formats.contains(&fallback);
    for &width in fallback_widths.iter().filter(|_| !fallback_is_variant) {
        tasks.push(Task {
            format: fallback,
            role: Role::Fallback,
            width,
            height: height_at(width),
        });
    }
    tasks.extend(thumbnail_task(output, &master));
    let made = make_all(
        &master,
        source,
        output,
        tuned,
        packet.as_deref(),
        &tasks,
        "",
    )?;
    let Derived {
        mut manifest,
        files,
        tuned: chosen,
    } = made;
    if fallback_is_variant {
        list_as_fallbacks(&mut manifest, fallback, &fallback_widths);
    }
    Ok(Derived {
        manifest,
        files,
        tuned: chosen,
    })
}

/// Lists again, as the fallback, the variants of the fallback's format at its widths (a
/// fallback in one of the modern formats is the variant itself).
fn list_as_fallbacks(manifest: &mut Manifest, fallback: Format, widths: &[u32]) {
    let aliases: Vec<AssetFile> = manifest
        .files
        .iter()
        .filter(|f| f.role == Role::Variant && f.format == fallback && widths.contains(&f.width))
        .map(|f| AssetFile {
            role: Role::Fallback,
            ..f.clone()
        })
        .collect();
    manifest.files.extend(aliases);
    // Stable: within a role, files keep the order of the tasks.
    manifest.files.sort_by_key(|f| f.role);
}

/// Derives the files of an SVG master: the document itself, sanitized again (a cached file
/// may have been crafted) with the provenance in its `<metadata>`, which `<img>` shows; a
/// raster fallback rendered at the widest configured width for the other renderers; and the
/// thumbnail. A vector is never cropped: it keeps its view box.
fn derive_vector(
    source: &Source<'_>,
    output: &Output,
    tuned: &BTreeMap<String, u8>,
) -> Result<Derived, String> {
    let svg = crate::svg::sanitize(source.bytes)?;
    let packet = provenance(&source.origin, output);
    let widest = output.widths.iter().copied().max().unwrap_or(svg.width);
    let raster = pixels::rasterize(&svg.bytes, widest)?;
    let mut tasks = vec![Task {
        format: fallback_format(raster.alpha, output),
        role: Role::Fallback,
        width: raster.width,
        height: raster.height,
    }];
    tasks.extend(thumbnail_task(output, &raster));
    // The sanitizer and the renderer shaped these files too.
    let more = format!(";{}", crate::svg::VERSION);
    let mut derived = make_all(
        &raster,
        source,
        output,
        tuned,
        packet.as_deref(),
        &tasks,
        &more,
    )?;
    let document = match &packet {
        Some(packet) => crate::svg::with_metadata(&svg.bytes, packet),
        None => svg.bytes,
    };
    let vector = Task {
        format: Format::Svg,
        role: Role::Vector,
        width: svg.width,
        height: svg.height,
    };
    let name = file_name(source, packet.as_deref(), &vector, 100, &more);
    derived.manifest.files.push(AssetFile {
        name: name.clone(),
        format: Format::Svg,
        role: Role::Vector,
        width: svg.width,
        height: svg.height,
        bytes: document.len() as u64,
    });
    derived.files.insert(name, document);
    Ok(derived)
}

/// The format of the fallback: the book's, but PNG where JPEG would lose transparency.
fn fallback_format(alpha: bool, output: &Output) -> Format {
    if alpha && output.fallback == Format::Jpeg {
        Format::Png
    } else {
        output.fallback
    }
}

/// The square thumbnail of pixels, when the book wants one.
fn thumbnail_task(output: &Output, pixels: &pixels::Pixels) -> Option<Task> {
    output.thumbnail.map(|side| {
        let side = side.min(pixels.width).min(pixels.height);
        Task {
            format: Format::Webp,
            role: Role::Thumbnail,
            width: side,
            height: side,
        }
    })
}

/// Makes every task's file from `master`, in parallel, in the tasks' order; `more` is what else
/// shaped the bytes, for the names.
fn make_all(
    master: &pixels::Pixels,
    source: &Source<'_>,
    output: &Output,
    tuned: &BTreeMap<String, u8>,
    packet: Option<&str>,
    tasks: &[Task],
    more: &str,
) -> Result<Derived, String> {
    let made: Vec<Result<Made, String>> = tasks
        .par_iter()
        .map(|task| make(master, source, output, tuned, packet, task, more))
        .collect();
    let mut derived = Derived {
        manifest: Manifest { files: Vec::new() },
        files: BTreeMap::new(),
        tuned: BTreeMap::new(),
    };
    for result in made {
        let (file, bytes, quality) = result?;
        if let Some((key, quality)) = quality {
            derived.tuned.insert(key, quality);
        }
        derived.files.insert(file.name.clone(), bytes);
        derived.manifest.files.push(file);
    }
    Ok(derived)
}

fn make(
    master: &pixels::Pixels,
    source: &Source<'_>,
    output: &Output,
    tuned: &BTreeMap<String, u8>,
    packet: Option<&str>,
    task: &Task,
    more: &str,
) -> Result<Made, String> {
    let pixels = if task.role == Role::Thumbnail {
        pixels::cover_square(master, task.width)
    } else {
        pixels::resize(master, task.width, task.height)
    };
    let searchable = matches!(task.format, Format::Webp | Format::Jpeg);
    let key = format!("{}:{}", task.format.name(), task.width);
    let (bytes, quality, chosen) = match output.quality {
        Quality::Target(target) if searchable && task.role != Role::Thumbnail => {
            match tuned.get(&key) {
                Some(&quality) => (
                    encode::encode(&pixels, task.format, quality, packet)?,
                    quality,
                    Some((key, quality)),
                ),
                None => {
                    let found = tune::search(&pixels, task.format, target, packet)?;
                    (found.bytes, found.quality, Some((key, found.quality)))
                }
            }
        }
        _ => {
            let quality = output.quality.fixed(task.format);
            (
                encode::encode(&pixels, task.format, quality, packet)?,
                quality,
                None,
            )
        }
    };
    let name = file_name(source, packet, task, quality, more);
    let file = AssetFile {
        name,
        format: task.format,
        role: task.role,
        width: task.width,
        height: task.height,
        bytes: bytes.len() as u64,
    };
    Ok((file, bytes, chosen))
}

/// `<master16>-<width>w-<id8>.<ext>`, or `<master16>-thumb<side>-<id8>.<ext>`; the id hashes
/// everything that shapes the bytes.
fn file_name(
    source: &Source<'_>,
    packet: Option<&str>,
    task: &Task,
    quality: u8,
    more: &str,
) -> String {
    let mut spec = format!(
        "{};{};{}x{};q{quality};{};{}",
        source.hash,
        task.format.name(),
        task.width,
        task.height,
        encode::ENCODERS,
        packet.unwrap_or_default()
    );
    if let Some((width, height)) = source.frame {
        spec.push_str(&format!(";frame {width}:{height}"));
    }
    spec.push_str(more);
    let id = blake3::hash(spec.as_bytes());
    let size = match task.role {
        Role::Thumbnail => format!("thumb{}", task.width),
        Role::Variant | Role::Fallback | Role::Vector => format!("{}w", task.width),
    };
    format!(
        "{}-{size}-{}.{}",
        &source.hash[..16],
        &id.to_hex()[..8],
        task.format.extension()
    )
}

/// The XMP packet for a master's derived files, when provenance is on and a model made it.
fn provenance(origin: &Origin<'_>, output: &Output) -> Option<String> {
    (output.provenance && origin.by_model).then(|| xmp::packet(origin.provider, origin.model))
}

#[cfg(test)]
mod tests;
