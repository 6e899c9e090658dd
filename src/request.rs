//! From a directive and the book's settings to a job: the exact request a provider receives and
//! the cache key that names its image.
//!
//! The cache key ([`CacheKey`]) is blake3 over a canonical, length-prefixed encoding
//! ([`KeyHasher`]) of [`CACHE_VERSION`] and
//! every input that changes the image: provider kind, model, the prompt as sent (after prefix,
//! style and suffix), negative prompt, size, quality, seed and the profile's image settings
//! (steps, sampler, background, …). It never covers API keys, base URLs, timeouts, prices or
//! the rest of `book.toml`, so `mdbook serve` (which changes the config it passes) and teammates
//! with other local servers or output settings share images. Reference images count by the
//! hash of their bytes, in order (a file's, or for `#id` its master's), never by their path;
//! a candidate other than the first counts by its number. No I/O here: reference images come
//! in read and checked (see `pipeline::references`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::key::{CACHE_VERSION, CacheKey, KeyHasher};
use crate::config::Config;
use crate::directive::{Directive, Reference};
use crate::vocab::fold_whitespace;
use crate::vocab::{ProviderKind, Size, SizeSetting};

pub(crate) mod dark;

/// Everything a provider needs to generate one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Which implementation generates it.
    pub(crate) kind: ProviderKind,
    /// The profile's name, for messages only (not hashed: two profiles of the same kind and
    /// model share images).
    pub(crate) profile: String,
    pub(crate) model: String,
    /// The prompt exactly as sent.
    pub(crate) prompt: String,
    pub(crate) negative: Option<String>,
    /// The size asked for; with `auto_size`, only what the image is planned and priced at.
    pub(crate) size: Size,
    /// `size = "auto"` for a model that chooses its own size: `auto` is sent and hashed, the
    /// figure takes the image's own size, and nothing is cropped.
    pub(crate) auto_size: bool,
    pub(crate) quality: Option<String>,
    pub(crate) seed: Option<u64>,
    /// The profile's settings that change the image, by their `book.toml` names.
    pub(crate) params: BTreeMap<String, String>,
    /// Images given with the prompt, in order (the style's, then the directive's; or, for an
    /// edit, the image to edit).
    pub(crate) references: Vec<RefImage>,
    /// With an edit: the PNG whose transparent pixels mark where the first image may change.
    pub(crate) mask: Option<RefImage>,
    /// Which of a directive's `variants` this is, from 0; only a later one changes the key,
    /// so the first candidate is the image the directive had before it asked for variants.
    pub(crate) candidate: u32,
    /// With `[judge] mode = "gate"`: which new attempt at a figure below `min-score` this is
    /// (from 1; 0 for the figure's own request). Its prompt carries the corrections.
    pub(crate) retry: u32,
    /// For a dark twin: the hash of the light image's master it is the twin of (a twin is
    /// made again whenever its light image is).
    pub(crate) dark_of: Option<String>,
}

impl Request {
    /// The prompt with the negative prompt folded in, for providers that have no field for it.
    pub(crate) fn prompt_with_negative(&self) -> String {
        match &self.negative {
            Some(negative) => format!("{}\n\nAvoid: {negative}.", self.prompt),
            None => self.prompt.clone(),
        }
    }

    /// The size as the cache key and the record hold it: `WIDTHxHEIGHT`, or `auto`.
    pub(crate) fn size_label(&self) -> String {
        if self.auto_size {
            "auto".to_owned()
        } else {
            self.size.to_string()
        }
    }
}

/// A reference image, read and checked: its bytes as they are sent, and the hash the cache
/// key covers.
#[derive(Clone)]
pub(crate) struct RefImage {
    /// As the author wrote it (`#keeper`, `../art/sketch.png`), for messages and programs.
    pub(crate) label: String,
    /// The blake3 hash of the bytes, 64 hex digits (for `#id`, the master's name).
    pub(crate) hash: String,
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub(crate) media_type: &'static str,
    pub(crate) bytes: Arc<Vec<u8>>,
    /// Where the bytes were read, for a `command` program.
    pub(crate) path: PathBuf,
}

impl RefImage {
    /// The file extension of its type.
    pub(crate) fn extension(&self) -> &'static str {
        crate::vocab::extension_of(self.media_type)
    }
}

impl PartialEq for RefImage {
    fn eq(&self, other: &RefImage) -> bool {
        self.hash == other.hash && self.label == other.label
    }
}

impl Eq for RefImage {}

impl fmt::Debug for RefImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RefImage({} {})",
            self.label,
            &self.hash[..self.hash.len().min(16)]
        )
    }
}

/// A reference a directive asks for, before it is read: where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// A file, relative to the book's root (a style's reference).
    Book(String),
    /// A file, relative to the chapter's file.
    Chapter(String),
    /// The image of the directive with this `id`.
    Directive(String),
}

impl Wanted {
    /// How the author wrote it.
    pub(crate) fn label(&self) -> String {
        match self {
            Wanted::Book(path) | Wanted::Chapter(path) => path.clone(),
            Wanted::Directive(id) => format!("#{id}"),
        }
    }
}

/// The references a directive asks for, in order: its style's, then its own.
pub(crate) fn wanted(directive: &Directive, config: &Config) -> Result<Vec<Wanted>, String> {
    let style = style_of(directive.attrs.style.as_deref(), config)?;
    let mut wanted: Vec<Wanted> = style
        .map(|s| s.reference.iter().cloned().map(Wanted::Book).collect())
        .unwrap_or_default();
    wanted.extend(directive.attrs.reference.iter().map(|r| match r {
        Reference::Directive(id) => Wanted::Directive(id.clone()),
        Reference::File(path) => Wanted::Chapter(path.clone()),
    }));
    if wanted.len() > crate::directive::MAX_REFERENCES {
        return Err(format!(
            "with its style's, the directive gives {} reference images; providers take at most {}",
            wanted.len(),
            crate::directive::MAX_REFERENCES
        ));
    }
    Ok(wanted)
}

/// Whether a directive needs reading files or other images before its chain can be made: it
/// has references (its own or its style's), or edits its image.
/// One whose references cannot be listed (too many) needs them too, so that its error reaches it.
pub(crate) fn needs_references(directive: &Directive, config: &Config) -> bool {
    directive.attrs.edit.is_some() || !matches!(wanted(directive, config), Ok(w) if w.is_empty())
}

/// The requests tried for one directive, in order: its profile, then each fallback profile.
pub(crate) type Chain = Vec<(CacheKey, Request)>;

/// Builds the request for a directive with its own profile, then with each fallback profile,
/// or says why it cannot be built. `references` are the images [`wanted`] named, read.
/// A fallback whose kind cannot take reference images is left out of a chain that has some;
/// the directive's own profile must take them.
pub(crate) fn chain(
    directive: &Directive,
    config: &Config,
    references: &[RefImage],
) -> Result<Chain, String> {
    candidate_chain(directive, config, references, 0)
}

/// The chain that edits `image` (the directive's own) with the directive's `edit` instruction:
/// the instruction is the whole prompt, the image the only reference, and `mask` (the
/// directive's, read) marks where it may change. A fallback that takes no mask is left out.
pub(crate) fn edit_chain(
    directive: &Directive,
    config: &Config,
    image: RefImage,
    mask: Option<&RefImage>,
) -> Result<Chain, String> {
    let instruction = directive
        .attrs
        .edit
        .as_ref()
        .ok_or("the directive has no `edit`")?;
    if let Some(mask) = mask {
        check_mask(mask, &image)?;
    }
    let mut chain = candidate_chain(directive, config, std::slice::from_ref(&image), 0)?;
    let mut edits = Vec::with_capacity(chain.len());
    for (link, (_, mut request)) in chain.drain(..).enumerate() {
        // The instruction alone: what the style and the book add to a prompt stays out.
        request.prompt.clone_from(instruction);
        request.negative = None;
        if let Some(mask) = mask {
            let rules = config
                .profiles
                .get(&request.profile)
                .map_or(request.kind, |p| p.rules());
            if !matches!(rules, ProviderKind::OpenAi | ProviderKind::OpenAiCompatible) {
                if link == 0 {
                    return Err(format!(
                        "`mask` goes to OpenAI's edits (kinds `openai` and `openai-compatible`); profile `{}` is of kind `{}`. Remove `mask`, or use such a profile",
                        request.profile,
                        request.kind.as_str()
                    ));
                }
                continue;
            }
            request.mask = Some(mask.clone());
        }
        edits.push((cache_key(&request), request));
    }
    Ok(edits)
}

/// Checks a mask against the image it masks: a PNG with an alpha channel (its transparent
/// pixels mark where the edit may change the image), of the image's size. The image's size is
/// known only once it is made: before that (a stand-in), only the mask is checked. Pure.
pub(crate) fn check_mask(mask: &RefImage, image: &RefImage) -> Result<(), String> {
    let label = &mask.label;
    if mask.media_type != "image/png" {
        return Err(format!(
            "mask `{label}` is not a PNG; a mask is a PNG whose transparent pixels mark where the edit may change the image"
        ));
    }
    use image::ImageDecoder as _;
    let decoder = image::codecs::png::PngDecoder::new(std::io::Cursor::new(mask.bytes.as_slice()))
        .map_err(|e| format!("mask `{label}` cannot be read ({e})"))?;
    if !decoder.color_type().has_alpha() {
        return Err(format!(
            "mask `{label}` has no alpha channel; make the area the edit may change transparent, and save it as a PNG with alpha"
        ));
    }
    let masked = decoder.dimensions();
    let image_size = image::ImageReader::new(std::io::Cursor::new(image.bytes.as_slice()))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok());
    if let Some((width, height)) = image_size
        && masked != (width, height)
    {
        return Err(format!(
            "mask `{label}` is {}x{}, and the image it masks is {width}x{height}; make the mask the image's size",
            masked.0, masked.1
        ));
    }
    Ok(())
}

/// The chain of one candidate of a directive's `variants` (from 0).
pub(crate) fn candidate_chain(
    directive: &Directive,
    config: &Config,
    references: &[RefImage],
    candidate: u32,
) -> Result<Chain, String> {
    let first = directive
        .attrs
        .provider
        .as_deref()
        .unwrap_or(&config.default_profile);
    let mut names = vec![first];
    names.extend(
        config
            .fallback
            .iter()
            .map(String::as_str)
            .filter(|name| *name != first),
    );
    let mut chain = Vec::with_capacity(names.len());
    for (link, name) in names.into_iter().enumerate() {
        let mut request = request_with(directive, config, name, link == 0)?;
        if !references.is_empty() {
            if let Err(message) = takes_references(&request, references.len()) {
                if link == 0 {
                    return Err(message);
                }
                tracing::debug!("fallback `{name}` left out: {message}");
                continue;
            }
            request.references = references.to_vec();
        }
        let rules = config
            .profiles
            .get(name)
            .map_or(request.kind, |p| p.rules());
        if let Err(message) = api_takes(&request, rules) {
            if link == 0 {
                return Err(message);
            }
            tracing::debug!("fallback `{name}` left out: {message}");
            continue;
        }
        request.candidate = candidate;
        // Seeded providers would draw every candidate alike: each gets the next seed.
        request.seed = request
            .seed
            .map(|seed| seed.wrapping_add(u64::from(candidate)));
        fits_a_record(&request)?;
        chain.push((cache_key(&request), request));
    }
    Ok(chain)
}

/// A new attempt at an image a judge scored below `min-score` (`[judge] mode = "gate"`): each
/// link of its chain with `corrections` after the prompt, a seed of its own, and the attempt's
/// number (from 1) hashed in its key. A link whose record would be too large is left out.
pub(crate) fn retry_chain(chain: &Chain, retry: u32, corrections: &str) -> Chain {
    chain
        .iter()
        .filter_map(|(_, request)| {
            let mut request = request.clone();
            request.retry = retry;
            if !corrections.is_empty() {
                request.prompt = format!("{} {corrections}", request.prompt);
            }
            request.seed = request
                .seed
                .map(|seed| seed.wrapping_add(1_000 * u64::from(retry)));
            fits_a_record(&request).ok()?;
            api_takes(&request, request.kind).ok()?;
            Some((cache_key(&request), request))
        })
        .collect()
}

/// The most characters of a prompt (as sent, with the book's prefix, style and suffix) or of a
/// negative prompt: what a record keeps and reads back.
pub(crate) const MAX_PROMPT_CHARS: usize = 64 << 10;

/// What a record holds beyond the request's own text, at most: the provider's revised prompt,
/// ids and versions (capped by `outside`), the master's facts and the JSON around them.
const RECORD_RESERVE_BYTES: usize = 32 << 10;

/// The most bytes of a record file; `cache::record` reads no larger one back.
pub(crate) const MAX_RECORD_BYTES: usize = 256 << 10;

/// Refuses a request whose record the cache would not read back (its prompt, negative prompt or
/// settings too long), before anything is paid for: an image whose record is skipped would be
/// paid for again on every build.
pub(crate) fn fits_a_record(request: &Request) -> Result<(), String> {
    let assembled = " with the book's prefix, style and suffix";
    for (what, text, context) in [
        ("prompt", Some(&request.prompt), assembled),
        ("negative prompt", request.negative.as_ref(), assembled),
        ("model name", Some(&request.model), ""),
    ] {
        let chars = text.map_or(0, |t| t.chars().count());
        if chars > MAX_PROMPT_CHARS {
            return Err(format!(
                "the {what} is {chars} characters{context}; the cache keeps at most {MAX_PROMPT_CHARS}. Shorten it"
            ));
        }
    }
    let json = |text: &str| serde_json::to_string(text).map_or(0, |t| t.len());
    let bytes = json(&request.prompt)
        + json(&request.model)
        + request.negative.as_deref().map_or(0, json)
        + request
            .params
            .iter()
            .map(|(k, v)| json(k) + json(v) + 8)
            .sum::<usize>()
        + request
            .references
            .iter()
            .map(|r| json(&r.label) + r.hash.len() + 32)
            .sum::<usize>();
    if bytes + RECORD_RESERVE_BYTES > MAX_RECORD_BYTES {
        return Err(format!(
            "the prompt, negative prompt, model and profile settings (`extra` among them) take {} KB; a record holds at most {} KB of them. Shorten them",
            bytes.div_ceil(1024),
            (MAX_RECORD_BYTES - RECORD_RESERVE_BYTES) / 1024
        ));
    }
    Ok(())
}

/// Refuses what the provider's API refuses whatever the image (a prompt longer than the model
/// reads, an SVG answer to a request with images), before anything is sent or paid for. `rules`
/// is the kind whose rules apply ([`crate::config::Profile::rules`]).
pub(crate) fn api_takes(request: &Request, rules: ProviderKind) -> Result<(), String> {
    if rules != ProviderKind::OpenAi {
        return Ok(());
    }
    let model = crate::models::openai_model(&request.model);
    let chars = request.prompt_with_negative().chars().count();
    if chars > model.max_prompt_chars {
        return Err(format!(
            "the prompt is {chars} characters as sent (with the book's prefix, style and suffix, and the negative prompt); `{}` reads at most {}. Shorten it",
            request.model, model.max_prompt_chars
        ));
    }
    if !request.references.is_empty()
        && request.params.get("output-format").map(String::as_str) == Some("svg")
    {
        return Err(format!(
            "profile `{}` asks for SVG (`output-format = \"svg\"`), which OpenAI makes from a prompt alone; this directive gives images (references or `edit`). Use a profile that answers in png, jpeg or webp for it",
            request.profile
        ));
    }
    Ok(())
}

/// Whether a request's provider takes `count` reference images; if not, why, naming the
/// kinds that do.
pub(crate) fn takes_references(request: &Request, count: usize) -> Result<(), String> {
    let limit = request.kind.reference_limit(&request.model);
    match limit {
        Some(limit) if count <= limit => Ok(()),
        Some(limit) => Err(format!(
            "profile `{}` ({} {}) takes at most {limit} reference image{}, and this directive gives {count}",
            request.profile,
            request.kind.as_str(),
            request.model,
            if limit == 1 { "" } else { "s" }
        )),
        None => Err(format!(
            "profile `{}` is of kind `{}` with model `{}`, which cannot take reference images; use a profile of one of the kinds {}",
            request.profile,
            request.kind.as_str(),
            request.model,
            ProviderKind::names_where(|s| s.references.is_some())
        )),
    }
}

/// Builds the request for a directive with its own profile.
#[cfg(test)]
pub(crate) fn request(directive: &Directive, config: &Config) -> Result<Request, String> {
    chain(directive, config, &[]).map(|mut chain| chain.swap_remove(0).1)
}

/// Builds the request for a directive sent to the profile `profile_name`; `own` when that is
/// the directive's own profile rather than a fallback.
fn request_with(
    directive: &Directive,
    config: &Config,
    profile_name: &str,
    own: bool,
) -> Result<Request, String> {
    let attrs = &directive.attrs;
    let profile = config.profile(profile_name)?;
    let style = style_of(attrs.style.as_deref(), config)?;

    let mut prompt = directive.prompt.clone();
    if let Some(style) = style.filter(|s| !s.prompt.trim().is_empty()) {
        prompt = format!("{prompt}, {}", fold_whitespace(&style.prompt));
    }
    if let Some(prefix) = &config.prompt_prefix {
        prompt = format!("{prefix} {prompt}");
    }
    if let Some(suffix) = &config.prompt_suffix {
        if suffix.starts_with([',', '.', ';', ':']) {
            prompt.push_str(suffix);
        } else {
            prompt = format!("{prompt} {suffix}");
        }
    }

    let negatives: Vec<String> = [
        attrs.negative.clone(),
        style.and_then(|s| s.negative.as_deref().map(fold_whitespace)),
        config.negative_prompt.clone(),
    ]
    .into_iter()
    .flatten()
    .filter(|n| !n.is_empty())
    .collect();
    let negative = (!negatives.is_empty()).then(|| negatives.join(", "));

    let mut params = profile.params.clone();
    if !profile.extra.is_empty() {
        params.insert(
            "extra".to_owned(),
            canonical_json(&serde_json::Value::Object(profile.extra.clone())),
        );
    }

    let quality = profile
        .kind
        .spec()
        .quality
        .then(|| attrs.quality.clone().or_else(|| profile.quality.clone()))
        .flatten();

    // A directive's `model` names a model of its own provider, not of the fallbacks.
    let model = match &attrs.model {
        Some(model) if own => model.clone(),
        _ => profile.model.clone(),
    };
    let (size, auto_size) = size_of(attrs.size.unwrap_or(config.default_size), profile, &model);
    crate::models::check_options(profile.rules(), &model, quality.as_deref(), &params)
        .map_err(|(_, message)| format!("profile `{profile_name}`: {message}"))?;

    Ok(Request {
        kind: profile.kind,
        profile: profile_name.to_owned(),
        model,
        prompt,
        negative,
        size,
        auto_size,
        quality,
        seed: attrs.seed,
        params,
        references: Vec::new(),
        mask: None,
        candidate: 0,
        retry: 0,
        dark_of: None,
    })
}

/// The size a request asks for, and whether it is `auto`: `auto` goes to the models that choose
/// their size; the others draw the default size.
fn size_of(setting: SizeSetting, profile: &crate::config::Profile, model: &str) -> (Size, bool) {
    match setting {
        SizeSetting::Exact(size) => (size, false),
        SizeSetting::Auto => (
            Size::default(),
            profile.rules() == ProviderKind::OpenAi && crate::models::openai_model(model).auto_size,
        ),
    }
}

/// The book's style a directive names (`none` for none), else the book's default style; an
/// unknown name is an error that lists the book's styles.
pub(crate) fn style_of<'c>(
    style: Option<&str>,
    config: &'c Config,
) -> Result<Option<&'c crate::config::Style>, String> {
    Ok(match style.or(config.default_style.as_deref()) {
        None => None,
        Some(crate::config::NO_STYLE) => None,
        Some(style) => Some(config.styles.get(style).ok_or_else(|| {
            if config.styles.is_empty() {
                format!(
                    "unknown style `{style}`; define it in `[preprocessor.imagegen.styles]`, e.g. {style} = \"flat vector illustration\""
                )
            } else {
                format!(
                    "unknown style `{style}`; the book defines {}",
                    crate::vocab::list(config.styles.keys())
                )
            }
        })?),
    })
}

/// Where a request's model was chosen, as the fix for a retired model says it
/// ([`models::retired`], [`models::deprecations`]).
pub(crate) fn model_setting(request: &Request, config: &Config) -> String {
    match config.profiles.get(&request.profile) {
        Some(profile) if profile.model == request.model => format!(
            "set `model` in `[preprocessor.imagegen.providers.{}]`",
            request.profile
        ),
        _ => "change the directive's `model` attribute".to_owned(),
    }
}

/// JSON with every object's keys sorted, so that the same value always hashes the same.
fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<_> = map.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The cache key of a request.
pub(crate) fn cache_key(request: &Request) -> CacheKey {
    let mut hasher = KeyHasher::default();
    let mut field = |name: &str, value: &[u8]| hasher.field(name, value);
    let seed = request.seed.map(|s| s.to_string());
    field("cache-version", &CACHE_VERSION.to_le_bytes());
    field("provider", request.kind.as_str().as_bytes());
    field("model", request.model.as_bytes());
    field("prompt", request.prompt.as_bytes());
    field("negative", optional(&request.negative));
    field("size", request.size_label().as_bytes());
    field("quality", optional(&request.quality));
    field("seed", optional(&seed));
    field("params", &(request.params.len() as u64).to_le_bytes());
    for (name, value) in &request.params {
        field(name, value.as_bytes());
    }
    // Hashed only when present, so every key made before references and variants existed
    // keeps its meaning (no `CACHE_VERSION` bump, no image made again).
    if !request.references.is_empty() {
        field(
            "references",
            &(request.references.len() as u64).to_le_bytes(),
        );
        for reference in &request.references {
            field("reference", reference.hash.as_bytes());
        }
    }
    if let Some(mask) = &request.mask {
        field("mask", mask.hash.as_bytes());
    }
    if request.candidate > 0 {
        field("candidate", &request.candidate.to_le_bytes());
    }
    if request.retry > 0 {
        field("retry", &request.retry.to_le_bytes());
    }
    if let Some(light) = &request.dark_of {
        field("dark-of", light.as_bytes());
    }
    hasher.finish()
}

/// An absent value hashes as a single 0xFF byte, which no UTF-8 text can equal.
fn optional(value: &Option<String>) -> &[u8] {
    value.as_deref().map_or(&[0xFF], str::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directive::{Attrs, Directive};
    use crate::test_support::books::bare_request;

    fn request() -> Request {
        bare_request(
            ProviderKind::Placeholder,
            "placeholder",
            "placeholder-1",
            "A lighthouse on a cliff at dusk",
            (1536, 1024),
        )
    }

    fn directive(attrs: Attrs) -> Directive {
        Directive {
            span: 0..0,
            line: 1,
            top_level: true,
            prompt: "A cat".into(),
            attrs,
        }
    }

    /// Fails whenever the cache key of a fixed request changes. If the change is deliberate, bump
    /// `CACHE_VERSION` and update the hex here: every cached image will be generated again.
    #[test]
    fn golden_cache_key() {
        assert_eq!(
            cache_key(&request()).to_hex(),
            "b8687a1ab0f392ac850fdc74e0e3d0ec7dd637fb9e0396404593400a19fbfc5b"
        );
    }

    fn reference(label: &str, bytes: &[u8]) -> RefImage {
        RefImage {
            label: label.into(),
            hash: blake3::hash(bytes).to_hex().to_string(),
            media_type: "image/png",
            bytes: std::sync::Arc::new(bytes.to_vec()),
            path: label.into(),
        }
    }

    #[test]
    fn references_count_by_their_bytes_in_order_and_candidates_by_number() {
        let base = cache_key(&request());
        let with = |refs: Vec<RefImage>| {
            let mut r = request();
            r.references = refs;
            cache_key(&r)
        };
        let (a, b) = (reference("a.png", b"one"), reference("b.png", b"two"));
        let ab = with(vec![a.clone(), b.clone()]);
        assert_ne!(ab, base);
        assert_ne!(ab, with(vec![b.clone(), a.clone()]), "order counts");
        assert_ne!(ab, with(vec![a.clone()]));
        // A renamed or moved file is the same reference.
        assert_eq!(
            ab,
            with(vec![reference("art/renamed.png", b"one"), b.clone()])
        );
        assert_ne!(ab, with(vec![reference("a.png", b"one!"), b]));
        let mut first = request();
        first.candidate = 0;
        assert_eq!(
            cache_key(&first),
            base,
            "the first candidate is the image it had"
        );
        let mut second = request();
        second.candidate = 1;
        assert_ne!(cache_key(&second), base);
    }

    #[test]
    fn a_kind_without_references_fails_and_a_fallback_without_them_is_left_out() {
        let config = Config::from_table(Some(&serde_json::json!({
            "provider": "sd",
            "fallback": ["sd", "flux", "pixels"],
            "providers": {
                "sd": { "kind": "stability", "model": "sd3.5-large" },
                "flux": { "kind": "bfl", "model": "flux-2-klein-4b" },
                "pixels": { "kind": "placeholder" },
            }
        })))
        .unwrap();
        let refs = [reference("a.png", b"a")];
        let message = chain(&directive(Attrs::default()), &config, &refs).unwrap_err();
        assert!(
            message.contains("profile `sd` is of kind `stability`"),
            "{message}"
        );
        assert!(message.contains("one of the kinds `placeholder`, `openai`, `openai-compatible`, `gemini`, `command`, `bfl`, `openrouter`"), "{message}");
        let flux = Attrs {
            provider: Some("flux".into()),
            ..Attrs::default()
        };
        let chain_ = chain(&directive(flux.clone()), &config, &refs).unwrap();
        let names: Vec<_> = chain_.iter().map(|(_, r)| r.profile.as_str()).collect();
        assert_eq!(names, ["flux", "pixels"], "stability is left out");
        let five: Vec<RefImage> = (0..5).map(|i| reference("x.png", &[i])).collect();
        let message = chain(&directive(flux), &config, &five).unwrap_err();
        assert!(
            message.contains("takes at most 4 reference images"),
            "{message}"
        );
    }

    #[test]
    fn an_edit_sends_the_instruction_alone_with_the_image() {
        let config = Config::from_table(Some(&serde_json::json!({
            "prompt-prefix": "A drawing of",
            "negative-prompt": "text",
            "style": "house",
            "styles": { "house": { "prompt": "ink", "reference": ["art/h.png"] } },
        })))
        .unwrap();
        let d = directive(Attrs {
            edit: Some("make it night".into()),
            ..Attrs::default()
        });
        let image = reference("#keeper", b"master");
        let edit = edit_chain(&d, &config, image.clone(), None).unwrap();
        let (key, request) = &edit[0];
        assert_eq!(request.prompt, "make it night");
        assert_eq!(request.negative, None);
        assert_eq!(request.references, [image]);
        assert_eq!(*key, cache_key(request));
        // The directive's own request has the book's additions and the style's reference.
        assert_eq!(
            wanted(&d, &config).unwrap(),
            [Wanted::Book("art/h.png".into())]
        );
        let none = directive(Attrs {
            style: Some("none".into()),
            ..Attrs::default()
        });
        assert!(wanted(&none, &config).unwrap().is_empty());
        assert_eq!(
            super::request(&none, &config).unwrap().prompt,
            "A drawing of A cat"
        );
        assert_eq!(
            super::request(&d, &config).unwrap().prompt,
            "A drawing of A cat, ink"
        );
    }

    /// A request whose record would be over what the cache reads back is refused before it is
    /// sent: the image would be paid for on every build.
    #[test]
    fn a_request_too_large_for_its_record_is_refused_before_it_is_sent() {
        let config = Config::from_table(None).unwrap();
        let mut d = directive(Attrs::default());
        d.prompt = "a harbour ".repeat(30_000);
        let error = super::request(&d, &config).unwrap_err();
        assert!(error.contains("the prompt is 300000 characters"), "{error}");
        // Under the character cap, but over the record's bytes (four-byte characters).
        d.prompt = "🌊".repeat(60_000);
        let error = super::request(&d, &config).unwrap_err();
        assert!(error.contains("a record holds at most"), "{error}");
        d.prompt = "a harbour ".repeat(3_000);
        let request = super::request(&d, &config).unwrap();
        assert!(fits_a_record(&request).is_ok());
    }

    #[test]
    fn every_generation_input_changes_the_key() {
        let base = cache_key(&request());
        let variants: [fn(&mut Request); 9] = [
            |r| r.model = "other".into(),
            |r| r.prompt.push('!'),
            |r| r.negative = Some("blur".into()),
            |r| {
                r.size = Size {
                    width: 1024,
                    height: 1536,
                }
            },
            |r| r.quality = Some("high".into()),
            |r| r.seed = Some(0),
            |r| r.negative = Some(String::new()),
            |r| {
                r.params.insert("steps".into(), "30".into());
            },
            |r| {
                r.params.insert("extra".into(), "{}".into());
            },
        ];
        let mut keys = vec![base];
        for change in variants {
            let mut r = request();
            change(&mut r);
            keys.push(cache_key(&r));
        }
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "two different requests share a key");
    }

    #[test]
    fn the_profile_name_is_not_part_of_the_key() {
        let mut renamed = request();
        renamed.profile = "drafts".into();
        assert_eq!(cache_key(&renamed), cache_key(&request()));
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let key = cache_key(&request());
        assert_eq!(CacheKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(CacheKey::from_hex("nope"), None);
    }

    #[test]
    fn requests_take_profile_model_size_and_style() {
        let config = Config::from_table(Some(&serde_json::json!({
            "size": "800x600",
            "styles": { "ink": "ink   drawing" },
            "providers": { "drafts": { "kind": "placeholder", "model": "custom" } }
        })))
        .unwrap();
        let r = request_for(
            &config,
            Attrs {
                style: Some("ink".into()),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(
            (r.prompt.as_str(), r.size.to_string(), r.model.as_str()),
            ("A cat, ink drawing", "800x600".into(), "placeholder-1")
        );
        let r = request_for(
            &config,
            Attrs {
                provider: Some("drafts".into()),
                model: None,
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!((r.profile.as_str(), r.model.as_str()), ("drafts", "custom"));
        let r = request_for(
            &config,
            Attrs {
                model: Some("m2".into()),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(r.model, "m2");
    }

    #[test]
    fn unknown_profiles_and_styles_say_what_exists() {
        let config = Config::default();
        assert_eq!(
            request_for(
                &config,
                Attrs {
                    provider: Some("openai".into()),
                    ..Attrs::default()
                }
            )
            .unwrap_err(),
            "unknown provider `openai`; define `[preprocessor.imagegen.providers.openai]` or use one of: `placeholder`"
        );
        assert_eq!(
            request_for(
                &config,
                Attrs {
                    style: Some("ink".into()),
                    ..Attrs::default()
                }
            )
            .unwrap_err(),
            "unknown style `ink`; define it in `[preprocessor.imagegen.styles]`, e.g. ink = \"flat vector illustration\""
        );
    }

    fn request_for(config: &Config, attrs: Attrs) -> Result<Request, String> {
        super::request(&directive(attrs), config)
    }

    #[test]
    fn prompts_are_assembled_from_prefix_style_suffix_and_negatives() {
        let config = Config::from_table(Some(&serde_json::json!({
            "prompt-prefix": "A drawing of",
            "prompt-suffix": ", soft light",
            "negative-prompt": "watermark",
            "styles": { "ink": { "prompt": "ink drawing", "negative": "colour" } },
            "providers": { "local": { "kind": "automatic1111", "model": "sdxl", "steps": 20,
                                      "extra": { "b": 1, "a": { "z": 1, "y": 2 } } } }
        })))
        .unwrap();
        let r = request_for(
            &config,
            Attrs {
                style: Some("ink".into()),
                negative: Some("blur".into()),
                provider: Some("local".into()),
                ..Attrs::default()
            },
        )
        .unwrap();
        assert_eq!(r.prompt, "A drawing of A cat, ink drawing, soft light");
        assert_eq!(r.negative.as_deref(), Some("blur, colour, watermark"));
        assert_eq!(r.params["steps"], "20");
        assert_eq!(r.params["extra"], r#"{"a":{"y":2,"z":1},"b":1}"#);
    }

    #[test]
    fn chains_follow_the_fallback_order_without_repeating_the_first() {
        let config = Config::from_table(Some(&serde_json::json!({
            "provider": "a",
            "fallback": ["b", "a", "placeholder"],
            "providers": {
                "a": { "kind": "openai" },
                "b": { "kind": "gemini" },
            }
        })))
        .unwrap();
        let chain = super::chain(&directive(Attrs::default()), &config, &[]).unwrap();
        let names: Vec<_> = chain.iter().map(|(_, r)| r.profile.as_str()).collect();
        assert_eq!(names, ["a", "b", "placeholder"]);
        assert_eq!(chain[1].0, cache_key(&chain[1].1));
        let chain = super::chain(
            &directive(Attrs {
                provider: Some("b".into()),
                model: Some("gemini-3-pro-image".into()),
                quality: Some("high".into()),
                ..Attrs::default()
            }),
            &config,
            &[],
        )
        .unwrap();
        let names: Vec<_> = chain.iter().map(|(_, r)| r.profile.as_str()).collect();
        assert_eq!(names, ["b", "a", "placeholder"]);
        // The directive's model is its own profile's; Gemini takes no quality, OpenAI does.
        let models: Vec<_> = chain.iter().map(|(_, r)| r.model.as_str()).collect();
        assert_eq!(
            models,
            ["gemini-3-pro-image", "gpt-image-2", "placeholder-1"]
        );
        assert_eq!(chain[0].1.quality, None);
        assert_eq!(chain[1].1.quality.as_deref(), Some("high"));
    }

    #[test]
    fn a_directive_is_checked_against_the_model_it_names() {
        let config = Config::from_table(Some(&serde_json::json!({
        "provider": "a",
        "providers": { "a": { "kind": "openai", "model": "gpt-image-2.6-sunburst", "background": "transparent" } }
    })))
    .unwrap();
        assert!(request_for(&config, Attrs::default()).is_ok());
        let max = Attrs {
            quality: Some("max".into()),
            ..Attrs::default()
        };
        assert!(request_for(&config, max.clone()).is_ok());
        let older = |attrs: Attrs| {
            request_for(
                &config,
                Attrs {
                    model: Some("gpt-image-2".into()),
                    ..attrs
                },
            )
            .unwrap_err()
        };
        assert!(
            older(max).contains("`gpt-image-2` does not take quality `max`"),
            "{}",
            older(Attrs::default())
        );
        assert!(older(Attrs::default()).contains("cannot make a transparent background"));
    }

    #[test]
    fn retired_and_deprecated_models_are_told_apart_by_the_day() {
        use crate::models::{self, Day};
        let uses = |chain: &Chain, config: &Config| -> Vec<(ProviderKind, String, String)> {
            chain
                .iter()
                .map(|(_, r)| (r.kind, r.model.clone(), super::model_setting(r, config)))
                .collect()
        };
        let retired = |chain: &Chain, config: &Config, day| {
            let uses = uses(chain, config);
            models::retired(
                uses.iter().map(|(k, m, s)| (*k, m.as_str(), s.clone())),
                day,
            )
        };
        let config = Config::from_table(Some(&serde_json::json!({
            "provider": "a",
            "fallback": ["b"],
            "providers": {
                "a": { "kind": "openai", "model": "gpt-image-1.5" },
                "b": { "kind": "gemini", "model": "gemini-2.5-flash-image" },
            }
        })))
        .unwrap();
        let chain = super::chain(&directive(Attrs::default()), &config, &[]).unwrap();
        let before = Day::parse("2026-11-30").unwrap();
        let after = Day::parse("2026-12-01").unwrap();
        assert_eq!(retired(&chain, &config, before), None);
        let chain_uses = uses(&chain, &config);
        let warnings = models::deprecations(
            chain_uses
                .iter()
                .map(|(k, m, s)| (*k, m.as_str(), s.clone())),
            before,
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("is shut down by OpenAI on 2026-12-01"));
        let refusal = retired(&chain, &config, after).unwrap();
        assert!(
            refusal.contains("retired by OpenAI on 2026-12-01")
                && refusal.contains("`gpt-image-2.6-sunburst`")
                && refusal.contains("set `model` in `[preprocessor.imagegen.providers.a]`"),
            "{refusal}"
        );
        // A directive's own model is named as the thing to change.
        let chain = super::chain(
            &directive(Attrs {
                model: Some("dall-e-3".into()),
                ..Attrs::default()
            }),
            &config,
            &[],
        )
        .unwrap();
        assert!(
            retired(&chain, &config, before)
                .unwrap()
                .contains("change the directive's `model` attribute")
        );
    }
}
