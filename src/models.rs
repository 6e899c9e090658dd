//! What this version knows about providers' models: when each one is retired, and which sizes,
//! qualities and options it accepts.
//!
//! Providers retire models on announced dates, so this is the one place to update when they
//! do; `docs/providers.md` cites the source and the day each fact was read. A retired model is
//! never called (its image, if cached, keeps serving: lookups never ask this module), a
//! deprecated one is called with a warning, and a size is fitted to the model's rules before it
//! is sent. Pure: the date comes in as a value, and nothing here reads a clock or a file.

use std::fmt;

use crate::vocab::{ProviderKind, Size};

pub(crate) mod batch;
mod catalogue;

pub use catalogue::KnownModel;
pub(crate) use catalogue::known_models;

/// A calendar day in UTC, comparable, written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Day(u32);

impl Day {
    /// Parses `YYYY-MM-DD`.
    pub(crate) fn parse(text: &str) -> Option<Day> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        ((1..=12).contains(&month) && (1..=31).contains(&day))
            .then_some(Day(year * 10_000 + month * 100 + day))
    }

    /// Today, by the system clock, in UTC.
    pub(crate) fn today() -> Day {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        Day::parse(&stamp[..10]).expect("RFC 3339 starts with the date")
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0 / 10_000,
            self.0 / 100 % 100,
            self.0 % 100
        )
    }
}

/// Where a model stands on a given day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// No shutdown announced.
    Current,
    /// A shutdown is announced and has not come yet (or the provider gave only its earliest
    /// date): the model still answers.
    Deprecated {
        shutdown: Day,
        /// Whether `shutdown` is only the earliest date the provider may turn it off.
        earliest: bool,
        replacement: &'static str,
        provider: &'static str,
    },
    /// The provider turned the model off on this day; a request can only fail.
    Retired {
        on: Day,
        replacement: &'static str,
        provider: &'static str,
    },
}

/// Which model ids a notice covers.
enum Ids {
    /// These ids, and their dated snapshots (`gpt-image-1.5-2025-12-16`).
    Exact(&'static [&'static str]),
    /// Every id that starts with this.
    Prefix(&'static str),
}

/// One announced shutdown.
struct Notice {
    kind: ProviderKind,
    ids: Ids,
    /// `YYYY-MM-DD`.
    shutdown: &'static str,
    /// The provider gave only the earliest day it may turn the model off.
    earliest: bool,
    replacement: &'static str,
    /// Where the notice was read, and when (`YYYY-MM-DD`).
    source: Source,
}

/// Where a fact about a model was read, and the day it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    url: &'static str,
    read: &'static str,
}

const OPENAI_DEPRECATIONS: Source = Source {
    url: "https://developers.openai.com/api/docs/deprecations",
    read: "2026-12-05",
};
const GEMINI_DEPRECATIONS: Source = Source {
    url: "https://ai.google.dev/gemini-api/docs/deprecations",
    read: "2026-11-29",
};
const XAI_RETIREMENTS: Source = Source {
    url: "https://docs.x.ai/developers/migration/imagine-image-quality-nov-2",
    read: "2026-12-05",
};

/// The announced shutdowns, each with where and when it was read (also in `docs/providers.md`,
/// "Model lifecycle").
const NOTICES: &[Notice] = &[
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["dall-e-2", "dall-e-3"]),
        shutdown: "2026-05-12",
        earliest: false,
        replacement: "gpt-image-2",
        source: OPENAI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-image-1"]),
        shutdown: "2026-10-23",
        earliest: false,
        replacement: "gpt-image-2",
        source: OPENAI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"]),
        shutdown: "2026-12-01",
        earliest: false,
        replacement: "gpt-image-2.6-sunburst",
        source: OPENAI_DEPRECATIONS,
    },
    // Vision models that describe images (read 2026-11-30, `docs/accessibility.md`).
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-5-mini"]),
        shutdown: "2026-12-11",
        earliest: false,
        replacement: "gpt-6.1-terra",
        source: OPENAI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-5-nano"]),
        shutdown: "2026-12-11",
        earliest: false,
        replacement: "gpt-6-luna",
        source: OPENAI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::OpenAi,
        ids: Ids::Exact(&["gpt-4.1-mini", "gpt-4o-mini"]),
        shutdown: "2027-01-14",
        earliest: false,
        replacement: "gpt-6-luna",
        source: OPENAI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-2.5-flash"]),
        shutdown: "2026-12-01",
        earliest: false,
        replacement: "gemini-3.5-flash-lite",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-3.1-flash-lite"]),
        shutdown: "2027-05-07",
        earliest: true,
        replacement: "gemini-3.5-flash-lite",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Prefix("imagen-"),
        shutdown: "2026-08-17",
        earliest: false,
        replacement: "gemini-3.1-flash-image",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-2.5-flash-image-preview"]),
        shutdown: "2026-01-15",
        earliest: false,
        replacement: "gemini-3.1-flash-image",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-3.1-flash-image-preview"]),
        shutdown: "2026-06-25",
        earliest: false,
        replacement: "gemini-3.1-flash-image",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-3-pro-image-preview"]),
        shutdown: "2026-06-25",
        earliest: false,
        replacement: "gemini-3-pro-image",
        source: GEMINI_DEPRECATIONS,
    },
    Notice {
        kind: ProviderKind::Gemini,
        ids: Ids::Exact(&["gemini-2.5-flash-image"]),
        shutdown: "2026-10-02",
        earliest: true,
        replacement: "gemini-3.1-flash-image",
        source: GEMINI_DEPRECATIONS,
    },
    // xAI (read 2026-12-05): the Grok 2 image models were shut down by February 2026 (xAI's
    // error text, as quoted by client projects); `-pro` and `-quality` were retired on the dates
    // below and their requests are now served by 2.0.
    Notice {
        kind: ProviderKind::Xai,
        ids: Ids::Prefix("grok-2-image"),
        shutdown: "2026-02-24",
        earliest: false,
        replacement: "grok-imagine-image-2.0",
        source: Source {
            url: "https://github.com/SillyTavern/SillyTavern/pull/5334",
            read: "2026-12-05",
        },
    },
    Notice {
        kind: ProviderKind::Xai,
        ids: Ids::Exact(&["grok-imagine-image-pro"]),
        shutdown: "2026-05-15",
        earliest: false,
        replacement: "grok-imagine-image-2.0",
        source: Source {
            url: "https://docs.x.ai/developers/migration/may-15-retirement",
            read: "2026-12-05",
        },
    },
    Notice {
        kind: ProviderKind::Xai,
        ids: Ids::Exact(&["grok-imagine-image-quality"]),
        shutdown: "2026-11-02",
        earliest: false,
        replacement: "grok-imagine-image-2.0",
        source: XAI_RETIREMENTS,
    },
];

/// Where `model` of `kind` stands on `today`. Only the providers' own kinds have a lifecycle:
/// an `openai-compatible` server names its models as it likes.
pub(crate) fn lifecycle(kind: ProviderKind, model: &str, today: Day) -> Lifecycle {
    let Some(notice) = NOTICES
        .iter()
        .find(|n| n.kind == kind && covers(&n.ids, model))
    else {
        return Lifecycle::Current;
    };
    let shutdown = Day::parse(notice.shutdown).expect("the table's dates are valid");
    let provider = kind.spec().vendor;
    if today >= shutdown && !notice.earliest {
        Lifecycle::Retired {
            on: shutdown,
            replacement: notice.replacement,
            provider,
        }
    } else {
        Lifecycle::Deprecated {
            shutdown,
            earliest: notice.earliest,
            replacement: notice.replacement,
            provider,
        }
    }
}

fn covers(ids: &Ids, model: &str) -> bool {
    match ids {
        Ids::Prefix(prefix) => model.starts_with(prefix),
        Ids::Exact(ids) => ids.iter().any(|id| {
            model == *id
                || model
                    .strip_prefix(id)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|rest| Day::parse(rest).is_some())
        }),
    }
}

/// Why one of these models must not be called on `day`: the first that its provider has
/// retired. Each comes with where it was chosen, for the fix. Asked only about images that must
/// be generated, so an image a retired model made keeps serving from the cache.
pub(crate) fn retired<'m>(
    models: impl IntoIterator<Item = (ProviderKind, &'m str, String)>,
    day: Day,
) -> Option<String> {
    told(models, day, Lifecycle::refusal).next()
}

/// The warnings for the models of these that are deprecated on `day`.
pub(crate) fn deprecations<'m>(
    models: impl IntoIterator<Item = (ProviderKind, &'m str, String)>,
    day: Day,
) -> Vec<String> {
    told(models, day, Lifecycle::warning).collect()
}

/// What `tell` says of each model's lifecycle on `day`, where it says something.
fn told<'m>(
    models: impl IntoIterator<Item = (ProviderKind, &'m str, String)>,
    day: Day,
    tell: fn(&Lifecycle, &str, &str) -> Option<String>,
) -> impl Iterator<Item = String> {
    models
        .into_iter()
        .filter_map(move |(kind, model, setting)| {
            tell(&lifecycle(kind, model, day), model, &setting)
        })
}

impl Lifecycle {
    /// Why a model must not be called, naming the date and the replacement; `None` when it
    /// may be. `setting` says where the model was chosen, for the fix.
    pub(crate) fn refusal(&self, model: &str, setting: &str) -> Option<String> {
        match self {
            Lifecycle::Retired {
                on,
                replacement,
                provider,
            } => Some(format!(
                "`{model}` was retired by {provider} on {on} and answers no requests; use `{replacement}` instead ({setting}); images it made earlier keep serving from the cache"
            )),
            _ => None,
        }
    }

    /// The warning a build prints once for a deprecated model it calls; `None` otherwise.
    pub(crate) fn warning(&self, model: &str, setting: &str) -> Option<String> {
        match self {
            Lifecycle::Deprecated {
                shutdown,
                earliest,
                replacement,
                provider,
            } => {
                let when = if *earliest {
                    format!("may be shut down by {provider} at any time from {shutdown}")
                } else {
                    format!("is shut down by {provider} on {shutdown}")
                };
                Some(format!(
                    "`{model}` {when}; move to `{replacement}` before then ({setting})"
                ))
            }
            _ => None,
        }
    }
}

/// The size rules of a model family: what `size` it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SizeRules {
    /// Only these sizes; the closest shape is sent.
    Listed(&'static [Size]),
    /// Any size within limits (OpenAI's gpt-image-2 family).
    Flexible(Grid),
}

/// The limits of a model that takes any size on a grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grid {
    /// Both edges are multiples of this.
    step: u32,
    /// The shortest edge.
    min_edge: u32,
    /// The longest edge.
    max_edge: u32,
    /// The long edge over the short one, at most.
    max_ratio: f64,
    min_pixels: u64,
    max_pixels: u64,
}

/// The sizes of OpenAI's first GPT image models.
const GPT_IMAGE_1_SIZES: &[Size] = &[
    Size {
        width: 1024,
        height: 1024,
    },
    Size {
        width: 1536,
        height: 1024,
    },
    Size {
        width: 1024,
        height: 1536,
    },
];

/// The rules of the gpt-image-2 family (the OpenAPI spec's `size` description and the image
/// generation guide, read 2026-11-29).
pub(crate) const GPT_IMAGE_2_SIZES: SizeRules = SizeRules::Flexible(Grid {
    step: 16,
    min_edge: 16,
    max_edge: 3840,
    max_ratio: 3.0,
    min_pixels: 655_360,
    max_pixels: 8_294_400,
});

/// The rules of FLUX.2 on BFL's API (docs.bfl.ai and BFL's API skills, read 2026-11-29): both
/// edges multiples of 16, at least 64, at most four megapixels. No ratio limit is published;
/// 4:1 keeps the short edge at 64 or more.
pub(crate) const FLUX_2_SIZES: SizeRules = SizeRules::Flexible(Grid {
    step: 16,
    min_edge: 64,
    max_edge: 4096,
    max_ratio: 4.0,
    min_pixels: 16_384,
    max_pixels: 4_194_304,
});

/// The rules of FLUX.1 `flux-pro-1.1`, `flux-pro` and `flux-dev` on BFL's API (BFL's API
/// reference, read 2026-12-05): width and height each 256 to 1440, multiples of 32.
pub(crate) const FLUX_1_SIZES: SizeRules = SizeRules::Flexible(Grid {
    step: 32,
    min_edge: 256,
    max_edge: 1440,
    max_ratio: 5.625,
    min_pixels: 65_536,
    max_pixels: 2_073_600,
});

/// The size sent to a FLUX model that takes a width and height: FLUX.1's rules for its
/// models, FLUX.2's for every other.
pub(crate) fn bfl_size(model: &str, size: Size) -> Size {
    let rules = if ["flux-pro-1.1", "flux-pro", "flux-dev"].contains(&model) {
        FLUX_1_SIZES
    } else {
        FLUX_2_SIZES
    };
    fit_size(size, rules)
}

const fn size(width: u32, height: u32) -> Size {
    Size { width, height }
}

/// Recraft V4 and V4.1 (and their Flash, Utility and Styles models) at 1K (Recraft's API
/// appendix, read 2026-11-29).
const RECRAFT_V4_SIZES: &[Size] = &[
    size(1024, 1024),
    size(1536, 768),
    size(768, 1536),
    size(1280, 832),
    size(832, 1280),
    size(1216, 896),
    size(896, 1216),
    size(1152, 896),
    size(896, 1152),
    size(832, 1344),
    size(1280, 896),
    size(896, 1280),
    size(1344, 768),
    size(768, 1344),
];

/// Recraft V4 Pro and V4.1 Pro at 2K.
const RECRAFT_V4_PRO_SIZES: &[Size] = &[
    size(2048, 2048),
    size(3072, 1536),
    size(1536, 3072),
    size(2560, 1664),
    size(1664, 2560),
    size(2432, 1792),
    size(1792, 2432),
    size(2304, 1792),
    size(1792, 2304),
    size(1664, 2688),
    size(2560, 1792),
    size(1792, 2560),
    size(2688, 1536),
    size(1536, 2688),
];

/// Recraft V3 and V2.
const RECRAFT_V3_SIZES: &[Size] = &[
    size(1024, 1024),
    size(1365, 1024),
    size(1024, 1365),
    size(1536, 1024),
    size(1024, 1536),
    size(1820, 1024),
    size(1024, 1820),
    size(1024, 2048),
    size(2048, 1024),
    size(1434, 1024),
    size(1024, 1434),
    size(1024, 1280),
    size(1280, 1024),
    size(1024, 1707),
    size(1707, 1024),
];

/// The size sent to a Recraft model: the listed size of its family closest in shape.
pub(crate) fn recraft_size(model: &str, size: Size) -> Size {
    let sizes = if model.starts_with("recraftv4") {
        if model.contains("_pro") {
            RECRAFT_V4_PRO_SIZES
        } else {
            RECRAFT_V4_SIZES
        }
    } else {
        RECRAFT_V3_SIZES
    };
    fit_size(size, SizeRules::Listed(sizes))
}

/// What an OpenAI image model accepts besides the prompt (the official OpenAPI spec and the
/// model pages, read 2026-12-05; sources in `docs/providers.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpenAiModel {
    pub(crate) sizes: SizeRules,
    /// Whether `quality` may be `xhigh` or `max` (GPT Image 2.5 and 2.6 only: the spec's enum
    /// stops at `high`).
    pub(crate) extended_quality: bool,
    /// Whether `background = "transparent"` is accepted.
    pub(crate) transparent: bool,
    /// Whether `size = "auto"` is accepted (every GPT image model; DALL·E took none).
    pub(crate) auto_size: bool,
    /// Whether `complexity` is accepted (GPT Image 2.6).
    pub(crate) complexity: bool,
    /// Whether `output_format = "svg"` is accepted (GPT Image 2.6, generations only).
    pub(crate) svg: bool,
    /// Which `input_fidelity` values an edit may send.
    pub(crate) input_fidelity: &'static [&'static str],
    /// The longest prompt, in characters.
    pub(crate) max_prompt_chars: usize,
}

/// The longest prompt a GPT image model takes, in characters (the spec's `prompt`).
pub(crate) const GPT_IMAGE_MAX_PROMPT_CHARS: usize = 32_000;

/// What an OpenAI model accepts, by its family. A model this version does not know is given the
/// sizes of the newest family but none of the options only some models list (`xhigh`, `max`,
/// `complexity`, `svg`): those are sent only where OpenAI's reference lists them.
pub(crate) fn openai_model(model: &str) -> OpenAiModel {
    let base = OpenAiModel {
        sizes: GPT_IMAGE_2_SIZES,
        extended_quality: false,
        transparent: true,
        auto_size: true,
        complexity: false,
        svg: false,
        input_fidelity: &["high", "low"],
        max_prompt_chars: GPT_IMAGE_MAX_PROMPT_CHARS,
    };
    if model.starts_with("dall-e") {
        OpenAiModel {
            sizes: SizeRules::Listed(GPT_IMAGE_1_SIZES),
            auto_size: false,
            input_fidelity: &[],
            max_prompt_chars: if model.starts_with("dall-e-2") {
                1_000
            } else {
                4_000
            },
            ..base
        }
    } else if model.starts_with("gpt-image-1") || model.starts_with("chatgpt-image") {
        OpenAiModel {
            sizes: SizeRules::Listed(GPT_IMAGE_1_SIZES),
            input_fidelity: if model.starts_with("gpt-image-1-mini") {
                &["low"]
            } else {
                &["high", "low"]
            },
            ..base
        }
    } else if covers(&Ids::Exact(&["gpt-image-2"]), model) {
        // gpt-image-2 itself: neither the 2.5 qualities nor transparency (offered as a
        // preview, withdrawn on 2026-09-30), and no `input_fidelity` (the spec: omit it).
        OpenAiModel {
            transparent: false,
            input_fidelity: &[],
            ..base
        }
    } else if model.starts_with("gpt-image-2.6") {
        OpenAiModel {
            extended_quality: true,
            complexity: true,
            svg: true,
            ..base
        }
    } else if model.starts_with("gpt-image-2.5") {
        OpenAiModel {
            extended_quality: true,
            ..base
        }
    } else {
        base
    }
}

/// The models this version sends to Ideogram: 3.0 through its generate route, and the vector
/// model (SVG) through its asynchronous one.
pub(crate) const IDEOGRAM_MODELS: [&str; 2] = ["ideogram-v3", "ideogram-vector-1"];

/// The `rendering_speed` Ideogram is asked for a quality: `low` is `TURBO`, `medium`
/// `DEFAULT`, `high` `QUALITY`; `auto` (or none) leaves Ideogram's default (`DEFAULT`).
pub(crate) fn ideogram_speed(quality: Option<&str>) -> Option<&'static str> {
    match quality? {
        "low" => Some("TURBO"),
        "medium" => Some("DEFAULT"),
        "high" => Some("QUALITY"),
        _ => None,
    }
}

/// Whether an xAI model is of the 2.0 family (quality, five images to edit, wider ratios).
pub(crate) fn xai_is_v2(model: &str) -> bool {
    model.starts_with("grok-imagine-image-2")
}

/// The `resolution` tier xAI is asked for a size: `1k` up to about a megapixel and a half,
/// `2k` above.
pub(crate) fn xai_resolution(size: Size) -> &'static str {
    if u64::from(size.width) * u64::from(size.height) > 1_572_864 {
        "2k"
    } else {
        "1k"
    }
}

/// The qualities only some OpenAI models accept.
const EXTENDED_QUALITIES: [&str; 2] = ["xhigh", "max"];

/// The values of `complexity` (GPT Image 2.6).
pub(crate) const COMPLEXITIES: [&str; 3] = ["low", "medium", "high"];

/// The values of `input-fidelity` (OpenAI edits).
pub(crate) const INPUT_FIDELITIES: [&str; 2] = ["high", "low"];

/// The values of Stability's `style_preset` (Stability's v2beta reference, read 2026-12-05).
pub(crate) const STYLE_PRESETS: [&str; 17] = [
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
];

/// Checks that a model of `kind` accepts this quality and these settings (`params`, by their
/// `book.toml` names) together, saying which key to change when it does not. Checked when the
/// book is loaded (the profile's own model) and when a directive names another model or
/// quality. `kind` is the kind whose rules apply ([`crate::config::Profile::rules`]).
pub(crate) fn check_options(
    kind: ProviderKind,
    model: &str,
    quality: Option<&str>,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    let param = |key: &str| params.get(key).map(String::as_str);
    let output_format = param("output-format");
    match kind {
        ProviderKind::OpenAi => {}
        ProviderKind::Stability => {
            return check_stability(model, param("style-preset"), output_format);
        }
        ProviderKind::Xai => {
            let takes: &[&str] = if xai_is_v2(model) {
                &["low", "medium", "auto"]
            } else {
                &["auto"]
            };
            if let Some(quality) = quality.filter(|q| !takes.contains(q)) {
                return Err((
                    "quality",
                    if xai_is_v2(model) {
                        format!(
                            "`{model}` takes quality `low`, `medium` or `auto`, not `{quality}`"
                        )
                    } else {
                        format!(
                            "`{model}` takes no quality; remove it, or use `grok-imagine-image-2.0` (`low` or `medium`)"
                        )
                    },
                ));
            }
            return Ok(());
        }
        ProviderKind::Ideogram => {
            // The model names the route it is sent to: only those this version knows, for a
            // profile and a directive's `model` alike.
            if !IDEOGRAM_MODELS.contains(&model) {
                return Err((
                    "model",
                    format!(
                        "`{model}` is not a model this version sends to Ideogram; use {}",
                        crate::vocab::list(IDEOGRAM_MODELS)
                    ),
                ));
            }
            if let Some(quality) = quality.filter(|q| EXTENDED_QUALITIES.contains(q)) {
                return Err((
                    "quality",
                    format!(
                        "Ideogram has no quality `{quality}`; use `low` (Turbo), `medium` (Default), `high` (Quality) or `auto`"
                    ),
                ));
            }
            return Ok(());
        }
        _ => return no_svg(kind, output_format),
    }
    check_openai(model, quality, params)
}

/// [`check_options`] for Stability's: its style presets, and what `sd3` answers in.
fn check_stability(
    model: &str,
    preset: Option<&str>,
    output_format: Option<&str>,
) -> Result<(), (&'static str, String)> {
    if let Some(preset) = preset
        && !STYLE_PRESETS.contains(&preset)
    {
        return Err((
            "style-preset",
            format!(
                "`{preset}` is not one of Stability's style presets; use one of {}",
                crate::vocab::list(STYLE_PRESETS)
            ),
        ));
    }
    if model.starts_with("sd3") && matches!(output_format, Some("webp" | "svg")) {
        return Err((
            "output-format",
            format!(
                "Stability's `{model}` answers in `png` or `jpeg` only (its `sd3` endpoint takes no `{}`)",
                output_format.unwrap_or_default()
            ),
        ));
    }
    no_svg(ProviderKind::Stability, output_format)
}

/// [`check_options`] for OpenAI's rules.
fn check_openai(
    model: &str,
    quality: Option<&str>,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    let param = |key: &str| params.get(key).map(String::as_str);
    let output_format = param("output-format");
    if param("steps").is_some() {
        return Err((
            "steps",
            "OpenAI's API takes no `steps`; remove it (OpenAI's rules apply to a profile whose `base-url` is OpenAI's)".into(),
        ));
    }
    let accepts = openai_model(model);
    let newer = "a model that does, such as `gpt-image-2.6-sunburst`";
    if let Some(quality) = quality
        && EXTENDED_QUALITIES.contains(&quality)
        && !accepts.extended_quality
    {
        return Err((
            "quality",
            format!(
                "`{model}` does not take quality `{quality}` (only GPT Image 2.5 and 2.6 models do); use `low`, `medium`, `high` or `auto`, or {newer}"
            ),
        ));
    }
    if param("complexity").is_some() && !accepts.complexity {
        return Err((
            "complexity",
            format!(
                "`{model}` takes no `complexity` (only GPT Image 2.6 models do); remove it, or use {newer}"
            ),
        ));
    }
    if output_format == Some("svg") && !accepts.svg {
        return Err((
            "output-format",
            format!(
                "`{model}` cannot answer in SVG (only GPT Image 2.6 models can); use `png`, `jpeg` or `webp`, or {newer}"
            ),
        ));
    }
    if let Some(fidelity) = param("input-fidelity")
        && !accepts.input_fidelity.contains(&fidelity)
    {
        return Err((
            "input-fidelity",
            match accepts.input_fidelity {
                [] => format!("`{model}` takes no `input-fidelity`; remove it"),
                takes => format!(
                    "`{model}` takes `input-fidelity` {} only",
                    crate::vocab::list(takes)
                ),
            },
        ));
    }
    if param("background") == Some("transparent") {
        if !accepts.transparent {
            return Err((
                "background",
                format!(
                    "`{model}` cannot make a transparent background; use `opaque` or `auto`, or a model that can, such as `gpt-image-2.6-sunburst`"
                ),
            ));
        }
        if output_format == Some("jpeg") {
            return Err((
                "background",
                "a transparent background needs `output-format = \"png\"` or `\"webp\"`; JPEG has no transparency".into(),
            ));
        }
    }
    Ok(())
}

/// Refuses `output-format = "svg"` for a kind whose models never answer in SVG through it.
fn no_svg(kind: ProviderKind, output_format: Option<&str>) -> Result<(), (&'static str, String)> {
    if output_format == Some("svg") {
        return Err((
            "output-format",
            format!(
                "a profile of kind `{}` cannot ask for SVG; use `png`, `jpeg` or `webp` (vector masters come from `openai` GPT Image 2.6 models, `recraft` vector models and `command` programs)",
                kind.as_str()
            ),
        ));
    }
    Ok(())
}

/// The size sent to an OpenAI image model: the requested one fitted to the model's rules (any
/// multiple of 16 within limits for the gpt-image-2 family, else the listed size closest in
/// shape).
pub(crate) fn openai_size(model: &str, size: Size) -> Size {
    fit_size(size, openai_model(model).sizes)
}

/// The size sent for `requested` under `rules`: for a list, the listed size closest in shape;
/// for a grid, the size closest to the requested one that obeys every rule, keeping its aspect
/// ratio as nearly as the grid allows (a ratio beyond the limit is clamped to it; the figure is
/// cropped back to the requested shape when it is derived).
pub(crate) fn fit_size(requested: Size, rules: SizeRules) -> Size {
    match rules {
        SizeRules::Listed(sizes) => {
            let wanted = ratio(requested).ln();
            *sizes
                .iter()
                .min_by(|a, b| {
                    let distance = |s: &Size| (ratio(*s).ln() - wanted).abs();
                    distance(a).total_cmp(&distance(b))
                })
                .expect("the list is not empty")
        }
        SizeRules::Flexible(grid) => grid.nearest(requested),
    }
}

/// Whether `size` obeys `rules`.
#[cfg(test)]
pub(crate) fn obeys(size: Size, rules: SizeRules) -> bool {
    match rules {
        SizeRules::Listed(sizes) => sizes.contains(&size),
        SizeRules::Flexible(grid) => grid.fits(size),
    }
}

impl Grid {
    fn fits(&self, size: Size) -> bool {
        let (long, short) = (size.width.max(size.height), size.width.min(size.height));
        let pixels = u64::from(size.width) * u64::from(size.height);
        short >= self.min_edge.max(1)
            && size.width.is_multiple_of(self.step)
            && size.height.is_multiple_of(self.step)
            && long <= self.max_edge
            && f64::from(long) <= f64::from(short) * self.max_ratio
            && (self.min_pixels..=self.max_pixels).contains(&pixels)
    }

    fn nearest(&self, requested: Size) -> Size {
        // The ideal: the requested shape (clamped to the ratio limit) at the requested area
        // (clamped to the pixel limits), shrunk if its long edge is too long.
        let aspect = ratio(requested).clamp(1.0 / self.max_ratio, self.max_ratio);
        let area = (f64::from(requested.width) * f64::from(requested.height))
            .clamp(self.min_pixels as f64, self.max_pixels as f64);
        let (mut width, mut height) = ((area * aspect).sqrt(), (area / aspect).sqrt());
        let shrink = (f64::from(self.max_edge) / width.max(height)).min(1.0);
        width *= shrink;
        height *= shrink;
        // A shape error of 1 % weighs as much as an area error of 10 %: the grid rarely allows
        // the exact shape, and the shape is what a reader sees.
        let cost = |size: Size| {
            let pixels = f64::from(size.width) * f64::from(size.height);
            10.0 * (ratio(size) / aspect).ln().abs() + (pixels / (width * height)).ln().abs()
        };
        let step = self.step;
        let cells = |ideal: f64, spread: i64| {
            let cell = (ideal / f64::from(step)).round() as i64;
            (cell - spread..=cell + spread)
                .filter_map(|c| u32::try_from(c).ok().filter(|c| *c > 0))
                .map(move |c| c * step)
        };
        let best = |spread: i64| {
            cells(width, spread)
                .flat_map(|w| {
                    cells(height, spread).map(move |h| Size {
                        width: w,
                        height: h,
                    })
                })
                .filter(|s| self.fits(*s))
                .min_by(|a, b| cost(*a).total_cmp(&cost(*b)))
        };
        // The grid cells around the ideal; a wider search only if none obeys (never with the
        // published limits, but it keeps other limits safe).
        best(3)
            .or_else(|| best(i64::from(self.max_edge / step)))
            .unwrap_or(requested)
    }
}

fn ratio(size: Size) -> f64 {
    f64::from(size.width) / f64::from(size.height.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn days_parse_compare_and_print() {
        assert_eq!(day("2026-12-01").to_string(), "2026-12-01");
        assert!(day("2026-11-30") < day("2026-12-01"));
        assert!(day("2027-01-01") > day("2026-12-31"));
        for bad in [
            "2026-13-01",
            "2026-1-01",
            "20261201",
            "2026-12-00",
            "",
            "abcd-ef-gh",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert!(Day::today() >= day("2026-11-29"));
    }

    #[test]
    fn lifecycle_follows_the_calendar() {
        use ProviderKind::*;
        let before = day("2026-11-30");
        let on = day("2026-12-01");
        assert!(matches!(
            lifecycle(OpenAi, "gpt-image-1.5", before),
            Lifecycle::Deprecated {
                earliest: false,
                ..
            }
        ));
        assert!(matches!(
            lifecycle(OpenAi, "gpt-image-1.5", on),
            Lifecycle::Retired {
                replacement: "gpt-image-2.6-sunburst",
                ..
            }
        ));
        // Snapshots follow their model; other models that share a prefix do not.
        assert!(matches!(
            lifecycle(OpenAi, "gpt-image-1.5-2025-12-16", on),
            Lifecycle::Retired { .. }
        ));
        assert!(matches!(
            lifecycle(OpenAi, "gpt-image-1-mini", before),
            Lifecycle::Deprecated { .. }
        ));
        assert!(matches!(
            lifecycle(OpenAi, "gpt-image-1", before),
            Lifecycle::Retired { .. }
        ));
        for current in [
            "gpt-image-2",
            "gpt-image-2-2026-04-21",
            "gpt-image-2.5-sunburst",
            "gpt-image-2.6-flare",
            "gpt-image-1.5x",
        ] {
            assert_eq!(
                lifecycle(OpenAi, current, on),
                Lifecycle::Current,
                "{current}"
            );
        }
        assert!(matches!(
            lifecycle(Gemini, "imagen-4.0-generate-001", on),
            Lifecycle::Retired { .. }
        ));
        // Google gave only the earliest date: a warning, never a refusal.
        let far = day("2030-01-01");
        assert!(matches!(
            lifecycle(Gemini, "gemini-2.5-flash-image", far),
            Lifecycle::Deprecated { earliest: true, .. }
        ));
        assert_eq!(
            lifecycle(Gemini, "gemini-3.1-flash-image", far),
            Lifecycle::Current
        );
        // A compatible server's models have no lifecycle.
        assert_eq!(
            lifecycle(OpenAiCompatible, "gpt-image-1", far),
            Lifecycle::Current
        );
    }

    #[test]
    fn messages_name_the_date_and_the_replacement() {
        let retired = lifecycle(ProviderKind::OpenAi, "dall-e-3", day("2026-11-29"));
        let message = retired
            .refusal("dall-e-3", "the directive's `model`")
            .unwrap();
        assert!(message.contains("2026-05-12"), "{message}");
        assert!(message.contains("`gpt-image-2`"), "{message}");
        assert!(retired.warning("dall-e-3", "x").is_none());
        let deprecated = lifecycle(ProviderKind::OpenAi, "gpt-image-1.5", day("2026-11-29"));
        assert!(deprecated.refusal("gpt-image-1.5", "x").is_none());
        let warning = deprecated.warning("gpt-image-1.5", "x").unwrap();
        assert!(warning.contains("2026-12-01"), "{warning}");
    }

    #[test]
    fn options_are_checked_per_model() {
        use ProviderKind::*;
        let check = |kind, model, quality, settings: &[(&str, &str)]| {
            let params = settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            check_options(kind, model, quality, &params).map_err(|(key, _)| key)
        };
        let none: &[(&str, &str)] = &[];
        let transparent = [("background", "transparent")];
        type Case<'a> = (
            ProviderKind,
            &'a str,
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            Result<(), &'a str>,
        );
        let cases: &[Case<'_>] = &[
            (OpenAi, "gpt-image-2", Some("xhigh"), none, Err("quality")),
            (OpenAi, "gpt-image-2.5-flare", Some("max"), none, Ok(())),
            (
                OpenAi,
                "gpt-image-2.6-sunburst",
                Some("xhigh"),
                none,
                Ok(()),
            ),
            // A model this version does not know gets no option only some models list.
            (OpenAi, "gpt-image-3", Some("max"), none, Err("quality")),
            (OpenAi, "gpt-image-2", None, &transparent, Err("background")),
            (
                OpenAi,
                "gpt-image-2.6-flare",
                None,
                &[("background", "transparent"), ("output-format", "jpeg")],
                Err("background"),
            ),
            (
                OpenAi,
                "gpt-image-2.6-flare",
                None,
                &[("background", "transparent"), ("output-format", "webp")],
                Ok(()),
            ),
            (
                OpenAi,
                "gpt-image-2.6-flare",
                None,
                &[("complexity", "low")],
                Ok(()),
            ),
            (
                OpenAi,
                "gpt-image-2.5-flare",
                None,
                &[("complexity", "low")],
                Err("complexity"),
            ),
            (
                OpenAi,
                "gpt-image-2.6-flare",
                None,
                &[("output-format", "svg")],
                Ok(()),
            ),
            (
                OpenAi,
                "gpt-image-2",
                None,
                &[("output-format", "svg")],
                Err("output-format"),
            ),
            (
                OpenAi,
                "gpt-image-2",
                None,
                &[("input-fidelity", "high")],
                Err("input-fidelity"),
            ),
            (
                OpenAi,
                "gpt-image-2.5-sunburst",
                None,
                &[("input-fidelity", "high")],
                Ok(()),
            ),
            (OpenAiCompatible, "x", Some("max"), none, Ok(())),
            (
                OpenAiCompatible,
                "x",
                None,
                &[("output-format", "svg")],
                Err("output-format"),
            ),
            (
                Stability,
                "sd3.5-large",
                None,
                &[("output-format", "webp")],
                Err("output-format"),
            ),
            (
                Stability,
                "core",
                None,
                &[("output-format", "webp")],
                Ok(()),
            ),
            (
                Stability,
                "core",
                None,
                &[("style-preset", "pixel-art")],
                Ok(()),
            ),
            (
                Stability,
                "core",
                None,
                &[("style-preset", "watercolor")],
                Err("style-preset"),
            ),
        ];
        for (kind, model, quality, settings, want) in cases {
            assert_eq!(
                check(*kind, model, *quality, settings),
                *want,
                "{model} {settings:?}"
            );
        }
    }

    #[test]
    fn prompt_limits_follow_the_family() {
        assert_eq!(openai_model("gpt-image-2.6-flare").max_prompt_chars, 32_000);
        assert_eq!(openai_model("dall-e-3").max_prompt_chars, 4_000);
        assert!(openai_model("gpt-image-2").auto_size);
        assert!(!openai_model("dall-e-2").auto_size);
    }

    /// Every size a directive may ask for, fitted for every model of the family, obeys every
    /// rule; a size that already obeys is sent as it is.
    #[test]
    fn flexible_sizes_obey_every_rule() {
        let rules = GPT_IMAGE_2_SIZES;
        let sides = [
            16, 17, 64, 255, 512, 600, 800, 1000, 1024, 1536, 2048, 3000, 3840, 4000, 4096,
        ];
        for &w in &sides {
            for &h in &sides {
                let fitted = fit_size(size(w, h), rules);
                assert!(obeys(fitted, rules), "{w}x{h} -> {fitted}");
                if obeys(size(w, h), rules) {
                    assert_eq!(fitted, size(w, h));
                }
            }
        }
    }

    #[test]
    fn flexible_sizes_keep_the_shape() {
        let fit = |w, h| fit_size(size(w, h), GPT_IMAGE_2_SIZES).to_string();
        assert_eq!(fit(16, 16), "816x816");
        assert_eq!(fit(512, 512), "816x816");
        assert_eq!(fit(800, 600), "960x720");
        assert_eq!(fit(1024, 1536), "1024x1536");
        assert_eq!(fit(4000, 3000), "3312x2480");
        assert_eq!(fit(4096, 4096), "2880x2880");
        assert_eq!(fit(4096, 256), "1776x592");
        assert_eq!(fit(256, 4096), "592x1776");
    }

    #[test]
    fn flux_1_sizes_are_multiples_of_32_within_its_edges() {
        for (w, h) in [
            (1600, 900),
            (16, 4096),
            (4096, 16),
            (1024, 1024),
            (300, 2000),
        ] {
            let sent = bfl_size("flux-pro-1.1", size(w, h));
            assert!(obeys(sent, FLUX_1_SIZES), "{w}x{h} -> {sent}");
            assert!((256..=1440).contains(&sent.width) && (256..=1440).contains(&sent.height));
        }
        assert_eq!(
            bfl_size("flux-2-pro", size(1600, 900)).to_string(),
            "1600x896"
        );
    }

    #[test]
    fn listed_sizes_pick_the_closest_shape() {
        let rules = openai_model("gpt-image-1.5").sizes;
        let fit = |w, h| fit_size(size(w, h), rules).to_string();
        assert_eq!(fit(800, 600), "1536x1024");
        assert_eq!(fit(600, 800), "1024x1536");
        assert_eq!(fit(1100, 1000), "1024x1024");
    }
}
