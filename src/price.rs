//! The built-in price table: an estimate of what one image costs, in US dollars, by provider
//! kind, model, size and quality (late-2026 list prices). `book.toml` overrides it with a
//! profile's `price` (first) or with `[preprocessor.imagegen.prices]`, keyed by `model:quality`
//! or `model`. Estimates only: the provider's invoice is the truth. No I/O here.

use std::collections::BTreeMap;

use crate::config::{Profile, ProviderKind};
use crate::request::Request;

/// The estimated price of one image, or `None` when nothing is known about the model.
pub(crate) fn estimate(
    request: &Request,
    profile: &Profile,
    overrides: &BTreeMap<String, f64>,
) -> Option<f64> {
    let quality = request.quality.as_deref().unwrap_or("auto");
    if let Some(price) = profile.price {
        return Some(price);
    }
    let by_quality = format!("{}:{quality}", request.model);
    if let Some(price) = overrides
        .get(&by_quality)
        .or_else(|| overrides.get(&request.model))
    {
        return Some(*price);
    }
    built_in(request.kind, &request.model, request, quality)
}

fn built_in(kind: ProviderKind, model: &str, request: &Request, quality: &str) -> Option<f64> {
    let (width, height) = (request.size.width, request.size.height);
    match kind {
        ProviderKind::Placeholder | ProviderKind::Automatic1111 | ProviderKind::Command => {
            Some(0.0)
        }
        ProviderKind::OpenAi => {
            // `auto` usually lands on medium.
            let tier = match quality {
                "low" => 0,
                "high" | "xhigh" | "max" => 2,
                _ => 1,
            };
            let sent = crate::models::openai_size(model, request.size);
            let table: [(f64, f64); 3] = match model {
                m if m.starts_with("gpt-image-1-mini") => {
                    [(0.005, 0.006), (0.011, 0.015), (0.036, 0.052)]
                }
                m if m.starts_with("gpt-image-1.5") || m.starts_with("chatgpt-image") => {
                    [(0.009, 0.013), (0.034, 0.050), (0.133, 0.200)]
                }
                m if m.starts_with("gpt-image-1") => {
                    [(0.011, 0.016), (0.042, 0.063), (0.167, 0.25)]
                }
                m if m.starts_with("gpt-image-") => {
                    return Some(gpt_image_2_tokens(quality, sent.width, sent.height) * 30e-6);
                }
                _ => return None,
            };
            let (square, other) = table[tier];
            Some(if sent.width == sent.height {
                square
            } else {
                other
            })
        }
        ProviderKind::Gemini => {
            let side = width.max(height);
            match model {
                m if m.starts_with("gemini-2.5-flash-image") => Some(0.039),
                m if m.starts_with("gemini-3.1-flash-image") => {
                    let tokens = match side {
                        0..=512 => 747.0,
                        513..=1024 => 1120.0,
                        1025..=2048 => 1680.0,
                        _ => 2520.0,
                    };
                    Some(tokens * 60.0 / 1_000_000.0)
                }
                m if m.starts_with("gemini-3-pro-image") => {
                    Some(if side > 2048 { 0.24 } else { 0.134 })
                }
                _ => None,
            }
        }
        ProviderKind::Stability => match model {
            "ultra" => Some(0.08),
            "core" => Some(0.03),
            "sd3.5-large" => Some(0.065),
            "sd3.5-large-turbo" => Some(0.04),
            "sd3.5-medium" => Some(0.035),
            _ => None,
        },
        ProviderKind::Bfl => bfl(model, crate::models::bfl_size(model, request.size)),
        ProviderKind::Recraft => recraft(model),
        ProviderKind::Ideogram => Some(ideogram(model, quality)),
        ProviderKind::Xai => Some(xai(model, quality, request.size)),
        // Hundreds of models at their own prices: the answer's `usage.cost` is the record, and
        // `price` in the profile sets the estimate a budget counts.
        ProviderKind::OpenAiCompatible | ProviderKind::OpenRouter => None,
    }
}

/// FLUX on BFL's API (docs.bfl.ai pricing, read 2026-11-29): FLUX.2 per megapixel, cents for
/// the first and for each further one; FLUX.1 per image. The submit answer's `cost` is what
/// the record keeps.
fn bfl(model: &str, sent: crate::config::Size) -> Option<f64> {
    let (first, more) = match model {
        "flux-2-klein-4b" => (1.4, 0.1),
        "flux-2-klein-9b" => (1.5, 0.2),
        "flux-2-pro" => (3.0, 1.5),
        "flux-2-max" => (7.0, 3.0),
        "flux-2-flex" => (5.0, 5.0),
        "flux-pro-1.1" | "flux-kontext-pro" | "flux-kontext" => return Some(0.04),
        "flux-pro-1.1-ultra" => return Some(0.06),
        "flux-kontext-max" => return Some(0.08),
        _ => return None,
    };
    let megapixels = f64::from(sent.width) * f64::from(sent.height) / 1_000_000.0;
    Some((first + (megapixels - 1.0).max(0.0) * more) / 100.0)
}

/// Recraft (recraft.ai API pricing, read 2026-11-29): per image, raster or vector. V4.1's
/// vector prices are V4's, as a resale table shows; Recraft's answer (`credits`) is what the
/// record keeps.
fn recraft(model: &str) -> Option<f64> {
    let vector = model.ends_with("_vector");
    let family = model.strip_suffix("_vector").unwrap_or(model);
    let (raster, vector_price) = match family {
        "recraftv4_1_flash" | "recraftv4_1_flash_raster" => (0.007, None),
        "recraftv4_1" | "recraftv4_1_utility" => (0.035, Some(0.08)),
        "recraftv4_1_pro" | "recraftv4_1_utility_pro" => (0.21, Some(0.30)),
        "recraftv4" | "recraftv4_styles" => (0.04, Some(0.08)),
        "recraftv4_pro" | "recraftv4_styles_pro" => (0.25, Some(0.30)),
        "recraftv3" => (0.04, Some(0.08)),
        "recraftv2" => (0.022, Some(0.044)),
        _ => return None,
    };
    if vector { vector_price } else { Some(raster) }
}

/// Ideogram 3.0 per image by rendering speed (ideogram.ai/features/api-pricing, read
/// 2026-12-05): Turbo $0.03, Default $0.06, Quality $0.09. The vector model: $0.13 at `low`
/// (Ideogram's pricing guide), $0.16 at `medium` (its default) and $0.20 at `high` (resellers'
/// figures).
fn ideogram(model: &str, quality: &str) -> f64 {
    if model == "ideogram-vector-1" {
        return match quality {
            "low" => 0.13,
            "high" => 0.20,
            _ => 0.16,
        };
    }
    match crate::models::ideogram_speed(Some(quality)) {
        Some("TURBO") => 0.03,
        Some("QUALITY") => 0.09,
        _ => 0.06,
    }
}

/// xAI per image (read 2026-12-05 from resellers quoting xAI's list; xAI's own table was not
/// readable): `grok-imagine-image` $0.02; 2.0 $0.04 (1k, low) to $0.08 (2k, medium), medium
/// by default. The answer's `cost_in_usd_ticks` is what the record keeps.
fn xai(model: &str, quality: &str, size: crate::config::Size) -> f64 {
    if !model.starts_with("grok-imagine-image-2") {
        return 0.02;
    }
    match (crate::models::xai_resolution(size), quality) {
        ("1k", "low") => 0.04,
        ("1k", _) | ("2k", "low") => 0.06,
        _ => 0.08,
    }
}

/// US dollars per million input and output tokens of the vision models this version knows as
/// describers (list prices read 2026-11-30; see `docs/accessibility.md`).
const TOKEN_PRICES: [(&str, f64, f64); 11] = [
    ("gpt-6-luna", 0.10, 0.50),
    ("gpt-6.1-terra", 1.00, 5.00),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gemini-3.5-flash-lite", 0.30, 2.50),
    ("gemini-3.1-flash-lite", 0.25, 1.50),
    ("gemini-3.5-flash", 1.50, 9.00),
    ("gemini-2.5-flash-lite", 0.10, 0.40),
    ("gemini-2.5-flash", 0.30, 2.50),
];

/// What a describer's answer cost, from the token counts it reports, when the model's price
/// is known. A dated model name (`gpt-5-mini-2025-08-07`) is priced as its family; counts no
/// answer could hold are not believed.
pub(crate) fn tokens_cost(model: &str, input: Option<f64>, output: Option<f64>) -> Option<f64> {
    let (_, per_input, per_output) = TOKEN_PRICES
        .iter()
        .filter(|(name, _, _)| {
            model == *name
                || model
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("-20") || rest.starts_with("-0"))
        })
        .max_by_key(|(name, _, _)| name.len())?;
    let count = |n: Option<f64>| n.filter(|n| (0.0..=1e8).contains(n));
    let (input, output) = (count(input)?, count(output).unwrap_or(0.0));
    Some((input * per_input + output * per_output) / 1_000_000.0)
}

/// The output tokens of one image from the gpt-image-2 family, by OpenAI's published pricing
/// calculator: a factor per quality (16, 48, 96) times a factor of the short side, times the
/// area plus two million pixels, over four million, rounded up. It gives the per-image prices
/// of OpenAI's table ($0.006, $0.053, $0.211 at 1024x1024). `xhigh` and `max` have no
/// published figure: they count as `high`, a lower bound. The answer's `usage` is what the
/// record keeps.
fn gpt_image_2_tokens(quality: &str, width: u32, height: u32) -> f64 {
    let factor: u64 = match quality {
        "low" => 16,
        "high" | "xhigh" | "max" => 96,
        _ => 48,
    };
    let (long, short) = (
        u64::from(width.max(height)).max(1),
        u64::from(width.min(height)),
    );
    let short_factor = (2 * factor * short + long) / (2 * long);
    let area = u64::from(width) * u64::from(height);
    let tokens = (factor * short_factor * (2_000_000 + area)).div_ceil(4_000_000);
    tokens as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::books::bare_request;

    #[test]
    fn describers_are_priced_by_their_tokens() {
        let cost = tokens_cost("gpt-5-mini", Some(1000.0), Some(100.0)).unwrap();
        assert!((cost - (1000.0 * 0.25 + 100.0 * 2.0) / 1e6).abs() < 1e-12);
        assert_eq!(
            tokens_cost("gpt-5-mini-2025-08-07", Some(1e6), Some(0.0)),
            Some(0.25)
        );
        assert_eq!(tokens_cost("gpt-6-luna", Some(1e6), Some(1e6)), Some(0.6));
        assert_eq!(
            tokens_cost("gemini-2.5-flash-lite", Some(1e6), None),
            Some(0.1)
        );
        assert_eq!(tokens_cost("llava", Some(1e6), None), None);
        assert_eq!(tokens_cost("gpt-5-mini", Some(f64::INFINITY), None), None);
    }

    fn request(kind: ProviderKind, model: &str, size: (u32, u32), quality: &str) -> Request {
        Request {
            quality: Some(quality.into()),
            ..bare_request(kind, "p", model, "x", size)
        }
    }

    #[test]
    fn prices_by_model_size_and_quality() {
        let none = BTreeMap::new();
        let price = |kind, model, size, quality| {
            let r = request(kind, model, size, quality);
            estimate(&r, &Profile::new(kind, model), &none)
        };
        use ProviderKind::*;
        assert_eq!(
            price(OpenAi, "gpt-image-1.5", (1024, 1024), "medium"),
            Some(0.034)
        );
        assert_eq!(
            price(OpenAi, "gpt-image-1.5", (1536, 1024), "high"),
            Some(0.2)
        );
        assert_eq!(
            price(OpenAi, "gpt-image-1", (1024, 1024), "low"),
            Some(0.011)
        );
        // OpenAI's per-image table for gpt-image-2.
        let two = |size, quality| price(OpenAi, "gpt-image-2", size, quality).unwrap();
        for (size, quality, expected) in [
            ((1024, 1024), "low", 0.006),
            ((1024, 1024), "medium", 0.053),
            ((1024, 1024), "high", 0.211),
            ((1024, 1536), "low", 0.005),
            ((1536, 1024), "medium", 0.041),
            ((1024, 1536), "high", 0.165),
        ] {
            assert!(
                (two(size, quality) - expected).abs() < 0.0006,
                "{size:?} {quality}: {}",
                two(size, quality)
            );
        }
        // Priced at the size sent: 512x512 goes out as 816x816.
        assert_eq!(two((512, 512), "low"), two((816, 816), "low"));
        assert!(price(OpenAi, "gpt-image-2.6-sunburst", (1024, 1024), "max").is_some());
        assert_eq!(
            price(Gemini, "gemini-3-pro-image", (4096, 4096), "auto"),
            Some(0.24)
        );
        assert_eq!(price(Stability, "core", (1024, 1024), "auto"), Some(0.03));
        assert_eq!(
            price(Automatic1111, "sdxl", (1024, 1024), "auto"),
            Some(0.0)
        );
        assert_eq!(price(OpenAiCompatible, "flux", (1024, 1024), "auto"), None);
        // FLUX.2 by the megapixel: 1024x1024 is 1.05 MP.
        let flux = price(Bfl, "flux-2-pro", (1024, 1024), "auto").unwrap();
        assert!((flux - 0.0307).abs() < 0.0001, "{flux}");
        assert_eq!(price(Bfl, "flux-2-max", (512, 512), "auto"), Some(0.07));
        assert_eq!(price(Bfl, "flux-pro-1.1", (1024, 1024), "auto"), Some(0.04));
        assert_eq!(
            price(Recraft, "recraftv3_vector", (1024, 1024), "auto"),
            Some(0.08)
        );
        assert_eq!(
            price(Recraft, "recraftv4_1", (1024, 1024), "auto"),
            Some(0.035)
        );
        assert_eq!(
            price(Recraft, "recraftv4_1_flash_vector", (1024, 1024), "auto"),
            None
        );
        assert_eq!(
            price(
                OpenRouter,
                "google/gemini-3.1-flash-image",
                (1024, 1024),
                "auto"
            ),
            None
        );
        assert_eq!(price(OpenAi, "my-model", (1024, 1024), "auto"), None);
    }

    #[test]
    fn book_prices_win() {
        let r = request(ProviderKind::OpenAi, "gpt-image-1.5", (1024, 1024), "high");
        let mut profile = Profile::new(ProviderKind::OpenAi, "gpt-image-1.5");
        let overrides = BTreeMap::from([
            ("gpt-image-1.5".to_owned(), 0.1),
            ("gpt-image-1.5:high".to_owned(), 0.25),
        ]);
        assert_eq!(estimate(&r, &profile, &overrides), Some(0.25));
        let medium = request(
            ProviderKind::OpenAi,
            "gpt-image-1.5",
            (1024, 1024),
            "medium",
        );
        assert_eq!(estimate(&medium, &profile, &overrides), Some(0.1));
        profile.price = Some(0.5);
        assert_eq!(estimate(&r, &profile, &overrides), Some(0.5));
    }
}
