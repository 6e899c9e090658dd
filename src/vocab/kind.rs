//! The provider kinds and, for each, its spec: one table of everything this version knows
//! about a kind that is not its wire format. Config, key redaction, the price of a request,
//! planning and describing read it. A kind is declared once, in `kinds!`: its spec must
//! exist (the match in [`ProviderKind::spec`] is exhaustive) and it is in [`ProviderKind::ALL`].
//!
//! What a model of a kind takes may depend on the model (DALL·E took no references, Recraft V4
//! reads no negative prompt field): such facts are functions of the model name. Sources and
//! dates of the reference limits are in `docs/art-direction.md`, "What providers take".

/// The model name placeholder images are recorded with. Change it when the drawing changes, so
/// cached placeholders are drawn again.
pub(crate) const PLACEHOLDER_MODEL: &str = "placeholder-1";

/// The most reference images a directive (with its style's) may give.
pub(crate) const MAX_REFERENCES: usize = 16;

/// Declares the kinds: the enum, [`ProviderKind::ALL`] and [`ProviderKind::spec`], from one
/// list, so that a kind cannot be left out of either.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident => $spec:ident,)*) => {
        /// The provider implementations this build knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum ProviderKind {
            $($(#[$doc])* $kind,)*
        }

        impl ProviderKind {
            /// Every kind, in the order `book.toml` errors list them.
            pub(crate) const ALL: &'static [ProviderKind] = &[$(ProviderKind::$kind,)*];

            /// Everything this version knows about the kind besides its wire format.
            pub(crate) fn spec(self) -> &'static ProviderSpec {
                match self {
                    $(ProviderKind::$kind => &$spec,)*
                }
            }
        }
    };
}

kinds! {
    /// Draws a labelled placeholder image locally.
    Placeholder => PLACEHOLDER,
    /// OpenAI's Images API.
    OpenAi => OPENAI,
    /// A server that speaks OpenAI's Images API (stable-diffusion.cpp, LocalAI, Together, …).
    OpenAiCompatible => OPENAI_COMPATIBLE,
    /// Google's Gemini API, `generateContent` with an image response.
    Gemini => GEMINI,
    /// Stability AI's v2beta stable-image API.
    Stability => STABILITY,
    /// The AUTOMATIC1111 / Forge web UI API, `/sdapi/v1/txt2img`.
    Automatic1111 => AUTOMATIC1111,
    /// A program the user configures.
    Command => COMMAND,
    /// Black Forest Labs' FLUX API: submit, poll, download.
    Bfl => BFL,
    /// OpenRouter's chat completions with image output: one key for many models.
    OpenRouter => OPENROUTER,
    /// Recraft's image API, whose vector models answer in SVG.
    Recraft => RECRAFT,
    /// Ideogram's API: strong at lettering.
    Ideogram => IDEOGRAM,
    /// xAI's Grok Imagine image models.
    Xai => XAI,
}

/// What this version knows about a provider kind.
pub(crate) struct ProviderSpec {
    /// The name in `book.toml`, records and cache keys: never change one (every image it
    /// named would be made again).
    pub(crate) name: &'static str,
    /// Who answers for the models, in messages ("retired by Google on …").
    pub(crate) vendor: &'static str,
    /// The model used when a profile names none; `None` when the user must name it (the model
    /// is part of the cache key, and only the user knows what a local server runs).
    pub(crate) default_model: Option<&'static str>,
    pub(crate) base_url: BaseUrl,
    pub(crate) key: Key,
    /// The settings a profile of this kind may have besides the common ones; part of the
    /// cache key.
    pub(crate) params: &'static [&'static str],
    /// Whether a request sends a quality. Only those kinds have it in their cache key, so that
    /// `quality="high"` for a provider with no such setting never pays for the same image.
    pub(crate) quality: bool,
    /// Whether a profile may give `extra` fields, merged into the JSON body.
    pub(crate) extra: bool,
    /// How many reference images a model takes with its prompt (`None`: none); `None` here
    /// when no model of the kind takes any.
    pub(crate) references: Option<fn(&str) -> Option<usize>>,
    /// Whether one request may ask a model for several images (`n`).
    pub(crate) n: fn(&str) -> bool,
    /// Whether a seed is sent (else it only names the cache entry).
    pub(crate) seed: bool,
    /// How a model is given the negative prompt.
    pub(crate) negative: fn(&str) -> Negative,
    /// How the kind describes images, when it can.
    pub(crate) describe: Option<Describe>,
    /// Whether a model makes the images: every kind but the placeholder. Such images cost time
    /// or money to make again, so they are committed with the cache, count against budgets,
    /// stand in for one another in a fallback chain, and are what `offline = true` forbids.
    pub(crate) is_model: bool,
}

/// Where a kind's server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseUrl {
    /// It has none (a local drawing, a program): a profile may not give one.
    None,
    /// The profile must give it.
    Given,
    /// This, unless the profile gives another.
    Default(&'static str),
}

/// Whether a kind needs an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// It takes none: a profile may not name one.
    None,
    /// It may take one (a local server may want one): read when a profile names its variable.
    Optional,
    /// It must have one, from the first of these variables that is set, unless the profile
    /// names another.
    Required(&'static [&'static str]),
}

/// How a model is given the negative prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negative {
    /// In a field of its own.
    Field,
    /// Appended to the prompt ("Avoid: …").
    Folded,
    /// Not at all (the placeholder draws no content).
    Ignored,
}

/// How a kind describes images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Describe {
    pub(crate) wire: DescribeWire,
    /// The describer model used when the describe profile's model is the kind's default image
    /// model.
    pub(crate) default_model: Option<&'static str>,
}

/// The wire formats describers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DescribeWire {
    /// OpenAI's Responses API with a JSON schema.
    Responses,
    /// Gemini's `generateContent` with a response schema.
    Gemini,
    /// Chat completions with an image part.
    Chat,
    /// The profile's program.
    Program,
}

impl ProviderKind {
    /// The name used in `book.toml`, records and cache keys.
    pub(crate) fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// See [`ProviderSpec::is_model`].
    pub(crate) fn is_model(self) -> bool {
        self.spec().is_model
    }

    /// The kind of a `book.toml` name.
    pub(crate) fn parse(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }

    /// The names of the kinds whose spec says so, for messages.
    pub(crate) fn names_where(has: impl Fn(&ProviderSpec) -> bool) -> String {
        super::list(
            ProviderKind::ALL
                .iter()
                .filter(|k| has(k.spec()))
                .map(|k| k.as_str()),
        )
    }

    /// How many reference images `model` takes, `None` when it takes none.
    pub(crate) fn reference_limit(self, model: &str) -> Option<usize> {
        self.spec().references.and_then(|limit| limit(model))
    }

    /// Whether one request may ask `model` for several images.
    pub(crate) fn takes_n(self, model: &str) -> bool {
        (self.spec().n)(model)
    }
}

impl Key {
    /// The variables read for the key when a profile names none.
    pub(crate) fn vars(self) -> &'static [&'static str] {
        match self {
            Key::Required(vars) => vars,
            Key::None | Key::Optional => &[],
        }
    }
}

fn never(_: &str) -> bool {
    false
}

fn folded(_: &str) -> Negative {
    Negative::Folded
}

fn field(_: &str) -> Negative {
    Negative::Field
}

static PLACEHOLDER: ProviderSpec = ProviderSpec {
    name: "placeholder",
    vendor: "mdbook-imagegen",
    default_model: Some(PLACEHOLDER_MODEL),
    base_url: BaseUrl::None,
    key: Key::None,
    params: &[],
    quality: true,
    extra: false,
    // It draws the references' count, which lets a book try art direction with no account.
    references: Some(|_| Some(MAX_REFERENCES)),
    n: never,
    seed: false,
    negative: |_| Negative::Ignored,
    describe: None,
    is_model: false,
};

static OPENAI: ProviderSpec = ProviderSpec {
    name: "openai",
    vendor: "OpenAI",
    default_model: Some("gpt-image-2"),
    base_url: BaseUrl::Default("https://api.openai.com/v1"),
    key: Key::Required(&["OPENAI_API_KEY"]),
    params: &[
        "background",
        "moderation",
        "output-format",
        "complexity",
        "input-fidelity",
    ],
    quality: true,
    extra: true,
    // The edits endpoint: up to 16 `image[]` parts for the GPT image models; DALL·E 2 edited
    // one square PNG with a mask, DALL·E 3 edited nothing (both retired).
    references: Some(|model| (!model.starts_with("dall-e")).then_some(16)),
    // GPT image models take 1 to 10 (DALL·E 3 took 1).
    n: |model| !model.starts_with("dall-e"),
    seed: false,
    negative: folded,
    describe: Some(Describe {
        wire: DescribeWire::Responses,
        default_model: Some("gpt-6-luna"),
    }),
    is_model: true,
};

static OPENAI_COMPATIBLE: ProviderSpec = ProviderSpec {
    name: "openai-compatible",
    vendor: "the server",
    default_model: None,
    base_url: BaseUrl::Given,
    key: Key::Optional,
    params: &["background", "output-format", "steps"],
    quality: true,
    extra: true,
    // What the server's edits route takes is its own; the request is OpenAI's.
    references: Some(|_| Some(16)),
    n: never,
    seed: true,
    negative: field,
    describe: Some(Describe {
        wire: DescribeWire::Chat,
        default_model: None,
    }),
    is_model: true,
};

static GEMINI: ProviderSpec = ProviderSpec {
    name: "gemini",
    vendor: "Google",
    default_model: Some("gemini-3.1-flash-image"),
    base_url: BaseUrl::Default("https://generativelanguage.googleapis.com/v1beta"),
    key: Key::Required(&["GEMINI_API_KEY", "GOOGLE_API_KEY"]),
    params: &[],
    quality: false,
    extra: false,
    // Gemini 3 image models: up to 14 images with the text; 2.5 Flash Image works best with
    // at most 3; text models draw nothing.
    references: Some(|model| {
        if model.starts_with("gemini-2.5") && model.contains("-image") {
            Some(3)
        } else {
            model.contains("-image").then_some(14)
        }
    }),
    // `candidateCount` above 1 is refused by the image models.
    n: never,
    seed: true,
    negative: folded,
    describe: Some(Describe {
        wire: DescribeWire::Gemini,
        default_model: Some("gemini-3.5-flash-lite"),
    }),
    is_model: true,
};

static STABILITY: ProviderSpec = ProviderSpec {
    name: "stability",
    vendor: "Stability AI",
    default_model: Some("core"),
    base_url: BaseUrl::Default("https://api.stability.ai"),
    key: Key::Required(&["STABILITY_API_KEY"]),
    params: &["style-preset", "output-format", "cfg-scale"],
    quality: false,
    extra: false,
    // Image-to-image exists (`image` + `strength`), for one starting image, not references.
    references: None,
    n: never,
    seed: true,
    negative: field,
    describe: None,
    is_model: true,
};

static AUTOMATIC1111: ProviderSpec = ProviderSpec {
    name: "automatic1111",
    vendor: "the server",
    default_model: None,
    base_url: BaseUrl::Default("http://127.0.0.1:7860"),
    key: Key::Optional,
    params: &["steps", "cfg-scale", "sampler", "scheduler"],
    quality: false,
    extra: true,
    // `init_images` is one starting image, not references.
    references: None,
    n: never,
    seed: true,
    negative: field,
    describe: None,
    is_model: true,
};

static COMMAND: ProviderSpec = ProviderSpec {
    name: "command",
    vendor: "the program",
    default_model: None,
    base_url: BaseUrl::None,
    key: Key::None,
    params: &[],
    quality: true,
    extra: false,
    references: Some(|_| Some(MAX_REFERENCES)),
    n: never,
    seed: true,
    negative: field,
    describe: Some(Describe {
        wire: DescribeWire::Program,
        default_model: None,
    }),
    is_model: true,
};

static BFL: ProviderSpec = ProviderSpec {
    name: "bfl",
    vendor: "Black Forest Labs",
    default_model: Some("flux-2-pro"),
    base_url: BaseUrl::Default("https://api.bfl.ai/v1"),
    key: Key::Required(&["BFL_API_KEY"]),
    params: &["output-format", "steps", "cfg-scale"],
    quality: false,
    extra: true,
    // FLUX.2: `input_image` to `input_image_8` (klein: 4); Kontext: one `input_image`.
    references: Some(|model| {
        if model.starts_with("flux-2-klein") {
            Some(4)
        } else if model.starts_with("flux-2") {
            Some(8)
        } else {
            model.contains("kontext").then_some(1)
        }
    }),
    // FLUX has no such field: candidates are separate requests.
    n: never,
    seed: true,
    negative: folded,
    describe: None,
    is_model: true,
};

static OPENROUTER: ProviderSpec = ProviderSpec {
    name: "openrouter",
    vendor: "OpenRouter",
    // One key reaches hundreds of models: the author names the one they chose.
    default_model: None,
    base_url: BaseUrl::Default("https://openrouter.ai/api/v1"),
    key: Key::Required(&["OPENROUTER_API_KEY"]),
    params: &[],
    quality: false,
    extra: true,
    // Chat completions with `image_url` parts; what a model takes is its own (Gemini's image
    // models, by far the most used there, take 14).
    references: Some(|_| Some(14)),
    n: never,
    seed: true,
    negative: folded,
    describe: None,
    is_model: true,
};

static RECRAFT: ProviderSpec = ProviderSpec {
    name: "recraft",
    vendor: "Recraft",
    default_model: Some("recraftv3"),
    base_url: BaseUrl::Default("https://external.api.recraft.ai/v1"),
    key: Key::Required(&["RECRAFT_API_KEY"]),
    params: &[],
    quality: false,
    extra: true,
    // `imageToImage` is one starting image, not references.
    references: None,
    n: never,
    seed: false,
    // V2 and V3 read a negative prompt; V4 is told in the prompt.
    negative: |model| {
        if model.starts_with("recraftv4") {
            Negative::Folded
        } else {
            Negative::Field
        }
    },
    describe: None,
    is_model: true,
};

static IDEOGRAM: ProviderSpec = ProviderSpec {
    name: "ideogram",
    vendor: "Ideogram",
    default_model: Some("ideogram-v3"),
    base_url: BaseUrl::Default("https://api.ideogram.ai"),
    key: Key::Required(&["IDEOGRAM_API_KEY"]),
    params: &[],
    // As `rendering_speed`: `low` is TURBO, `medium` DEFAULT, `high` QUALITY.
    quality: true,
    extra: true,
    // Style and character references are Ideogram's own, not a prompt's references.
    references: None,
    n: never,
    seed: true,
    // 3.0 reads a negative prompt; the vector model is told in the prompt.
    negative: |model| {
        if model.contains("vector") {
            Negative::Folded
        } else {
            Negative::Field
        }
    },
    describe: None,
    is_model: true,
};

static XAI: ProviderSpec = ProviderSpec {
    name: "xai",
    vendor: "xAI",
    default_model: Some("grok-imagine-image-2.0"),
    base_url: BaseUrl::Default("https://api.x.ai/v1"),
    key: Key::Required(&["XAI_API_KEY"]),
    params: &[],
    // `low` or `medium`, for the 2.0 models.
    quality: true,
    extra: true,
    // The edits route: five images for 2.0, one for the first model.
    references: Some(|model| {
        if model.starts_with("grok-imagine-image-2") {
            Some(5)
        } else {
            Some(1)
        }
    }),
    n: never,
    seed: false,
    negative: folded,
    describe: None,
    is_model: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_cache_keys_were_made_with() {
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "placeholder",
                "openai",
                "openai-compatible",
                "gemini",
                "stability",
                "automatic1111",
                "command",
                "bfl",
                "openrouter",
                "recraft",
                "ideogram",
                "xai"
            ]
        );
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(*kind));
        }
    }

    #[test]
    fn specs_are_consistent() {
        for kind in ProviderKind::ALL {
            let spec = kind.spec();
            for var in spec.key.vars() {
                assert!(
                    var.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                );
            }
            if let BaseUrl::Default(url) = spec.base_url {
                assert!(url.starts_with("http") && !url.ends_with('/'), "{url}");
            }
            // Only OpenAI's wire format sends `n`.
            assert!(*kind == ProviderKind::OpenAi || !kind.takes_n("any-model"));
            assert_eq!(spec.is_model, *kind != ProviderKind::Placeholder);
        }
        assert_eq!(
            ProviderKind::names_where(|s| s.describe.is_some()),
            "`openai`, `openai-compatible`, `gemini`, `command`"
        );
    }
}
