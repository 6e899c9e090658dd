//! Perceptual quality targets: the lowest encoder quality whose SSIMULACRA2 score against the
//! resized master reaches a floor, found by bisection.

use fast_ssim2::{PixelDescriptor, PixelSlice, Ssimulacra2Reference};

use super::encode;
use super::pixels::{self, Pixels};
use super::settings::Format;

/// The range searched. Below 20 no encoder output is worth showing; above 98 nothing is gained.
const LOWEST: u8 = 20;
const HIGHEST: u8 = 98;

/// What the search found.
pub(crate) struct Found {
    pub(crate) quality: u8,
    pub(crate) bytes: Vec<u8>,
}

/// A reference image, prepared once and compared with every candidate.
pub(crate) struct Reference {
    inner: Ssimulacra2Reference,
    channels: usize,
}

impl Reference {
    pub(crate) fn new(pixels: &Pixels) -> Result<Reference, String> {
        let slice = slice(pixels)?;
        let inner = Ssimulacra2Reference::new(&slice)
            .map_err(|e| format!("cannot prepare the quality metric: {e}"))?;
        Ok(Reference {
            inner,
            channels: pixels.channels(),
        })
    }

    /// The SSIMULACRA2 score of an encoded candidate.
    pub(crate) fn score(&self, encoded: &[u8]) -> Result<f64, String> {
        let decoded = pixels::decode(encoded)?;
        let decoded = if decoded.channels() == self.channels {
            decoded
        } else {
            with_channels(&decoded, self.channels)
        };
        let slice = slice(&decoded)?;
        self.inner
            .compare(&slice)
            .map_err(|e| format!("cannot score the image: {e}"))
    }
}

/// Searches the lowest quality in [`LOWEST`, [`HIGHEST`]] whose score reaches `target`. When
/// even the highest misses it, the highest is used.
pub(crate) fn search(
    pixels: &Pixels,
    format: Format,
    target: f64,
    xmp: Option<&str>,
) -> Result<Found, String> {
    let reference = Reference::new(pixels)?;
    let (mut low, mut high) = (LOWEST, HIGHEST);
    let mut best: Option<Found> = None;
    while low <= high {
        let quality = low + (high - low) / 2;
        let bytes = encode::encode(pixels, format, quality, xmp)?;
        let score = reference.score(&bytes)?;
        if score >= target {
            best = Some(Found { quality, bytes });
            if quality == LOWEST {
                break;
            }
            high = quality - 1;
        } else {
            low = quality + 1;
        }
    }
    match best {
        Some(found) => Ok(found),
        None => Ok(Found {
            quality: HIGHEST,
            bytes: encode::encode(pixels, format, HIGHEST, xmp)?,
        }),
    }
}

fn slice(pixels: &Pixels) -> Result<PixelSlice<'_>, String> {
    let descriptor = if pixels.alpha {
        PixelDescriptor::RGBA8_SRGB
    } else {
        PixelDescriptor::RGB8_SRGB
    };
    PixelSlice::new(
        &pixels.data,
        pixels.width,
        pixels.height,
        pixels.width as usize * pixels.channels(),
        descriptor,
    )
    .map_err(|e| format!("cannot score the image: {e}"))
}

/// Adds or drops an opaque alpha channel, so both sides of a comparison have the same layout.
fn with_channels(pixels: &Pixels, channels: usize) -> Pixels {
    let data = if channels == 4 {
        pixels
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    } else {
        pixels
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    Pixels {
        width: pixels.width,
        height: pixels.height,
        alpha: channels == 4,
        data,
    }
}
