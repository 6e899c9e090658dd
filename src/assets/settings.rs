//! `[preprocessor.imagegen.output]`: which web files are made from each master.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An image file format the pipeline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Avif,
    Webp,
    Jpeg,
    Png,
    /// An SVG master's own (sanitized) document; never an output setting.
    Svg,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Avif => "avif",
            Format::Webp => "webp",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            other => other.name(),
        }
    }

    pub(crate) fn media_type(self) -> &'static str {
        crate::vocab::media_type_of(self.extension())
    }

    fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "avif" => Some(Format::Avif),
            "webp" => Some(Format::Webp),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            _ => None,
        }
    }

    /// The encoder quality used when the author sets none (PNG is lossless and ignores it).
    pub(crate) fn default_quality(self) -> u8 {
        match self {
            Format::Avif => 70,
            Format::Webp | Format::Jpeg => 80,
            Format::Png | Format::Svg => 100,
        }
    }
}

/// How hard the encoders work for their bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Quality {
    /// A fixed encoder quality (0–100) per format.
    Fixed(BTreeMap<Format, u8>),
    /// The lowest encoder quality whose SSIMULACRA2 score reaches this floor, per image.
    Target(f64),
}

impl Quality {
    /// The fixed quality of a format, or its default under a perceptual target.
    pub(crate) fn fixed(&self, format: Format) -> u8 {
        match self {
            Quality::Fixed(map) => map
                .get(&format)
                .copied()
                .unwrap_or(format.default_quality()),
            Quality::Target(_) => format.default_quality(),
        }
    }
}

/// The output settings of a book.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    /// Modern formats offered in `<picture>`, in order of preference.
    pub(crate) formats: Vec<Format>,
    /// The format `<img src>` points at, and the only one non-HTML renderers get.
    pub(crate) fallback: Format,
    /// Widths of the `srcset`, ascending; a master is never upscaled.
    pub(crate) widths: Vec<u32>,
    /// The `sizes` attribute.
    pub(crate) sizes: String,
    pub(crate) quality: Quality,
    /// The side of the square thumbnail, when one is made.
    pub(crate) thumbnail: Option<u32>,
    /// Whether derived files say, in XMP, that they were made by an AI model.
    pub(crate) provenance: bool,
}

/// mdBook's default theme caps content at 750 px with 15 px of padding on each side.
pub(crate) const DEFAULT_SIZES: &str = "(max-width: 780px) calc(100vw - 30px), 750px";
const DEFAULT_WIDTHS: [u32; 3] = [480, 750, 1024];
const MIN_WIDTH: u32 = 16;
const MAX_WIDTH: u32 = 8192;

impl Default for Output {
    fn default() -> Self {
        Output {
            formats: vec![Format::Webp],
            fallback: Format::Jpeg,
            widths: DEFAULT_WIDTHS.to_vec(),
            sizes: DEFAULT_SIZES.to_owned(),
            quality: Quality::Fixed(BTreeMap::new()),
            thumbnail: Some(300),
            provenance: true,
        }
    }
}

/// The table as written in `book.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct RawOutput {
    formats: Option<Vec<String>>,
    fallback: Option<String>,
    widths: Option<Vec<i64>>,
    sizes: Option<String>,
    quality: Option<RawQuality>,
    thumbnail: Option<RawThumbnail>,
    provenance: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawQuality {
    Number(f64),
    Text(String),
    Table(BTreeMap<String, f64>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawThumbnail {
    Side(i64),
    Switch(bool),
}

/// `widths`: each in range, sorted, each once, at least one.
fn checked_widths(widths: Vec<i64>) -> Result<Vec<u32>, (String, String)> {
    let mut checked = Vec::new();
    for width in widths {
        let ok = u32::try_from(width)
            .ok()
            .filter(|w| (MIN_WIDTH..=MAX_WIDTH).contains(w));
        checked.push(ok.ok_or_else(|| {
            (
                "widths".to_owned(),
                format!("width {width} is out of range; use {MIN_WIDTH} to {MAX_WIDTH}"),
            )
        })?);
    }
    checked.sort_unstable();
    checked.dedup();
    if checked.is_empty() {
        return Err((
            "widths".to_owned(),
            "give at least one width, such as `[480, 750, 1024]`".to_owned(),
        ));
    }
    Ok(checked)
}

/// `thumbnail`: `false` (or 0) for none, `true` for 300 pixels, else the side in range.
fn thumbnail_side(thumbnail: RawThumbnail) -> Result<Option<u32>, (String, String)> {
    Ok(match thumbnail {
        RawThumbnail::Switch(false) | RawThumbnail::Side(0) => None,
        RawThumbnail::Switch(true) => Some(300),
        RawThumbnail::Side(side) => Some(
            u32::try_from(side)
                .ok()
                .filter(|s| (MIN_WIDTH..=MAX_WIDTH).contains(s))
                .ok_or_else(|| {
                    (
                        "thumbnail".to_owned(),
                        format!(
                            "{side} is out of range; use {MIN_WIDTH} to {MAX_WIDTH}, or `false`"
                        ),
                    )
                })?,
        ),
    })
}

impl Output {
    /// Checks the raw table. Errors are `(key under output, message)`.
    pub(crate) fn from_raw(raw: RawOutput) -> Result<Output, (String, String)> {
        let mut output = Output::default();
        if let Some(names) = raw.formats {
            let mut formats = Vec::new();
            for name in names {
                let format = Format::parse(&name)
                    .filter(|f| *f != Format::Png)
                    .ok_or_else(|| {
                        (
                            "formats".to_owned(),
                            format!("unknown format `{name}`; use `avif` and/or `webp`"),
                        )
                    })?;
                if !formats.contains(&format) {
                    formats.push(format);
                }
            }
            output.formats = formats;
        }
        if let Some(name) = raw.fallback {
            output.fallback = Format::parse(&name)
                .filter(|f| *f != Format::Avif)
                .ok_or_else(|| {
                    (
                        "fallback".to_owned(),
                        format!("unknown fallback `{name}`; use `jpeg`, `png` or `webp`"),
                    )
                })?;
        }
        if let Some(widths) = raw.widths {
            output.widths = checked_widths(widths)?;
        }
        if let Some(sizes) = raw.sizes {
            let sizes = sizes.trim();
            if sizes.is_empty() {
                return Err(("sizes".to_owned(), "must not be empty".to_owned()));
            }
            output.sizes = sizes.to_owned();
        }
        if let Some(quality) = raw.quality {
            output.quality = parse_quality(quality).map_err(|m| ("quality".to_owned(), m))?;
        }
        if let Some(thumbnail) = raw.thumbnail {
            output.thumbnail = thumbnail_side(thumbnail)?;
        }
        if let Some(provenance) = raw.provenance {
            output.provenance = provenance;
        }
        Ok(output)
    }

    /// A canonical text of everything that shapes the derived files, for derivation ids.
    pub(crate) fn fingerprint(&self) -> String {
        let formats: Vec<&str> = self.formats.iter().map(|f| f.name()).collect();
        let quality = match &self.quality {
            Quality::Fixed(_) => {
                let all = [Format::Avif, Format::Webp, Format::Jpeg];
                all.iter()
                    .map(|f| format!("{}={}", f.name(), self.quality.fixed(*f)))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            Quality::Target(score) => format!("ssimulacra2:{score}"),
        };
        format!(
            "formats={};fallback={};widths={:?};quality={quality};thumbnail={:?};provenance={}",
            formats.join(","),
            self.fallback.name(),
            self.widths,
            self.thumbnail,
            self.provenance
        )
    }
}

fn parse_quality(raw: RawQuality) -> Result<Quality, String> {
    let level = |value: f64| -> Result<u8, String> {
        if value.fract() == 0.0 && (1.0..=100.0).contains(&value) {
            Ok(value as u8)
        } else {
            Err(format!(
                "{value} is not an encoder quality; use a whole number from 1 to 100"
            ))
        }
    };
    match raw {
        RawQuality::Number(value) => {
            let q = level(value)?;
            Ok(Quality::Fixed(
                [Format::Avif, Format::Webp, Format::Jpeg]
                    .into_iter()
                    .map(|f| (f, q))
                    .collect(),
            ))
        }
        RawQuality::Table(table) => {
            let mut map = BTreeMap::new();
            for (name, value) in table {
                let format = Format::parse(&name).filter(|f| *f != Format::Png).ok_or_else(
                    || format!("unknown format `{name}` in the quality table; use `avif`, `webp` or `jpeg`"),
                )?;
                map.insert(format, level(value)?);
            }
            Ok(Quality::Fixed(map))
        }
        RawQuality::Text(text) => {
            let score = text
                .trim()
                .strip_prefix("ssimulacra2:")
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| (30.0..=95.0).contains(s))
                .ok_or_else(|| {
                    format!(
                        "`{text}` is not a quality; use a number such as `80`, or a perceptual target from `ssimulacra2:30` to `ssimulacra2:95` (70 is good, 80 very good, 90 visually lossless)"
                    )
                })?;
            Ok(Quality::Target(score))
        }
    }
}
