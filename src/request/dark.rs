//! A figure's dark twin as requests: which twin a directive asks for ([`Twin::of`]), whether its
//! profile can make it ([`check`], before anything is paid for), and the chain that makes it
//! from the figure's light image ([`chain`]). Pure: the light image comes in read.
//!
//! A twin's key covers the light master's hash (`dark_of`), the instruction and the profile's
//! request, so a twin is its own cache entry, and a light image made again gets a new twin.

use super::{Chain, RefImage, Request, api_takes, cache_key, candidate_chain, fits_a_record};
use crate::config::{Config, DarkMode};
use crate::directive::{DarkAttr, Directive};

/// The label the light image has among a twin's references (in records and `list`).
pub(crate) const LIGHT: &str = "(the light image)";

/// The twin a directive asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Twin {
    /// `Edit` or `Prompt`, never `Off`.
    pub(crate) mode: DarkMode,
    pub(crate) instruction: String,
    /// The directive itself said `dark="edit"`: a profile that cannot edit is an error, not a
    /// twin made from the prompt instead.
    pub(crate) explicit: bool,
}

impl Twin {
    /// The directive's twin, from its `dark=` and the book's `[dark]`; `None` for none.
    /// A directive with `edit` gets an edit (its prompt does not describe the edited image).
    pub(crate) fn of(directive: &Directive, config: &Config) -> Option<Twin> {
        let book = &config.dark;
        let (mode, instruction, explicit) = match &directive.attrs.dark {
            Some(DarkAttr::Off) => return None,
            Some(DarkAttr::Edit) => (DarkMode::Edit, book.instruction.clone(), true),
            Some(DarkAttr::Prompt) => (DarkMode::Prompt, book.instruction.clone(), false),
            Some(DarkAttr::Instruction(own)) => match book.mode {
                DarkMode::Prompt => (DarkMode::Prompt, own.clone(), false),
                DarkMode::Off | DarkMode::Edit => (DarkMode::Edit, own.clone(), false),
            },
            None if book.mode == DarkMode::Off => return None,
            None => (book.mode, book.instruction.clone(), false),
        };
        let mode = if directive.attrs.edit.is_some() {
            DarkMode::Edit
        } else {
            mode
        };
        Some(Twin {
            mode,
            instruction,
            explicit,
        })
    }
}

/// Whether the directive's twin can be made as it asks, said when the book is planned (before
/// its light image is paid for): `dark="edit"` on a profile that takes no image is an error.
pub(crate) fn check(directive: &Directive, config: &Config) -> Result<(), String> {
    let Some(twin) = Twin::of(directive, config) else {
        return Ok(());
    };
    if !twin.explicit {
        return Ok(());
    }
    let stand_in = stand_in();
    let base = base(directive, config, None)?;
    edit_links(&base, config, &twin, &stand_in)
        .map(drop)
        .map_err(|e| {
            format!("`dark=\"edit\"` sends the image to its profile: {e}; or use `dark=\"prompt\"`")
        })
}

/// A light image not read (for [`check`]): only its place in a request counts.
fn stand_in() -> RefImage {
    RefImage {
        label: LIGHT.to_owned(),
        hash: "0".repeat(64),
        media_type: "image/png",
        bytes: std::sync::Arc::default(),
        path: std::path::PathBuf::new(),
    }
}

/// The chain that makes a directive's twin: its figure's chain (`shown`, the one whose image
/// the figure shows), or the `[dark] profile`'s, turned into an edit of `light` (the light
/// image's master) or a new generation from the prompt with the instruction. An edit that the
/// profile cannot make becomes a generation, unless the directive asked for the edit itself.
pub(crate) fn chain(
    directive: &Directive,
    config: &Config,
    twin: &Twin,
    shown: &Chain,
    light: &RefImage,
) -> Result<Chain, String> {
    let base = base(directive, config, Some(shown))?;
    if twin.mode == DarkMode::Edit {
        match edit_links(&base, config, twin, light) {
            Ok(chain) => return Ok(chain),
            // An edit's prompt does not describe the edited picture: no prompt twin for it.
            Err(message) if twin.explicit || directive.attrs.edit.is_some() => {
                return Err(message);
            }
            Err(message) => tracing::debug!("dark twin made from the prompt: {message}"),
        }
    }
    prompt_links(&base, config, twin, light)
}

/// The requests a twin starts from: the figure's own chain, or, with `[dark] profile`, the
/// directive's request to that profile (then the fallbacks), with the figure's references
/// (none for an edit directive, whose twin edits its result).
fn base(directive: &Directive, config: &Config, shown: Option<&Chain>) -> Result<Chain, String> {
    let own = shown.and_then(|chain| chain.first()).map(|(_, r)| r);
    let Some(profile) = &config.dark.profile else {
        return match shown {
            Some(chain) => Ok(chain.clone()),
            None => candidate_chain(directive, config, &[], 0),
        };
    };
    let mut asked = directive.clone();
    asked.attrs.provider = Some(profile.clone());
    // A directive's `model` names a model of its own profile's provider.
    asked.attrs.model = None;
    asked.attrs.edit = None;
    asked.attrs.mask = None;
    let references = match own {
        Some(request) if directive.attrs.edit.is_none() => request.references.clone(),
        _ => Vec::new(),
    };
    candidate_chain(
        &asked,
        config,
        &references,
        own.map_or(0, |request| request.candidate),
    )
}

/// Each link of `base` as an edit of `light` with the instruction; a fallback that takes no
/// image is left out, the first link's refusal is the error.
fn edit_links(
    base: &Chain,
    config: &Config,
    twin: &Twin,
    light: &RefImage,
) -> Result<Chain, String> {
    if light.media_type == "image/svg+xml" {
        return Err(
            "the light image is an SVG, which providers do not take to edit; use `dark=\"prompt\"`"
                .into(),
        );
    }
    links(base, config, |request| {
        request.references = vec![light.clone()];
        request.prompt.clone_from(&twin.instruction);
        request.negative = None;
        request.mask = None;
        request.candidate = 0;
        request.retry = 0;
        request.dark_of = Some(light.hash.clone());
        super::takes_references(request, 1)
    })
}

/// Each link of `base` with the instruction after its prompt.
fn prompt_links(
    base: &Chain,
    config: &Config,
    twin: &Twin,
    light: &RefImage,
) -> Result<Chain, String> {
    links(base, config, |request| {
        request.prompt = format!("{} {}", request.prompt, twin.instruction);
        request.dark_of = Some(light.hash.clone());
        Ok(())
    })
}

/// `change` applied to each link, each checked as every request is; a fallback that fails is
/// left out, the first link's failure is the error.
fn links(
    base: &Chain,
    config: &Config,
    change: impl Fn(&mut Request) -> Result<(), String>,
) -> Result<Chain, String> {
    let mut chain = Vec::with_capacity(base.len());
    for (link, (_, request)) in base.iter().enumerate() {
        let mut request = request.clone();
        let rules = config
            .profiles
            .get(&request.profile)
            .map_or(request.kind, |p| p.rules());
        let checked = change(&mut request)
            .and_then(|()| api_takes(&request, rules))
            .and_then(|()| fits_a_record(&request));
        match checked {
            Ok(()) => chain.push((cache_key(&request), request)),
            Err(message) if link == 0 => return Err(message),
            Err(message) => tracing::debug!(
                "fallback `{}` left out of a dark twin: {message}",
                request.profile
            ),
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directive::Attrs;

    fn config(dark: serde_json::Value) -> Config {
        Config::from_table(Some(&serde_json::json!({
            "providers": {
                "o": { "kind": "openai", "model": "gpt-image-2" },
                "s": { "kind": "stability", "model": "sd3.5-large" },
                "a": { "kind": "automatic1111", "model": "sd-turbo" }
            },
            "dark": dark
        })))
        .unwrap()
    }

    fn directive(attrs: Attrs) -> Directive {
        Directive {
            span: 0..0,
            line: 3,
            top_level: true,
            prompt: "A lighthouse at dusk".into(),
            attrs,
        }
    }

    fn light(hash: char) -> RefImage {
        let mut image = stand_in();
        image.hash = hash.to_string().repeat(64);
        image
    }

    fn twin_of(attrs: Attrs, config: &Config) -> (Twin, Chain) {
        let d = directive(attrs);
        let twin = Twin::of(&d, config).unwrap();
        let shown = super::super::chain(&d, config, &[]).unwrap();
        let chain = chain(&d, config, &twin, &shown, &light('a')).unwrap();
        (twin, chain)
    }

    #[test]
    fn the_directive_says_which_twin_over_the_book() {
        let off = config(serde_json::json!({}));
        let edit = config(serde_json::json!({ "mode": "edit" }));
        let prompt =
            config(serde_json::json!({ "mode": "prompt", "instruction": "night  colours" }));
        let with = |dark: Option<DarkAttr>, edit: Option<&str>| Attrs {
            dark,
            edit: edit.map(str::to_owned),
            ..Attrs::default()
        };
        assert_eq!(Twin::of(&directive(with(None, None)), &off), None);
        assert_eq!(
            Twin::of(&directive(with(Some(DarkAttr::Off), None)), &edit),
            None
        );
        let twin = Twin::of(&directive(with(None, None)), &prompt).unwrap();
        assert_eq!(
            (twin.mode, twin.instruction.as_str(), twin.explicit),
            (DarkMode::Prompt, "night colours", false)
        );
        let own = Some(DarkAttr::Instruction("keep the sky orange".into()));
        let twin = Twin::of(&directive(with(own.clone(), None)), &off).unwrap();
        assert_eq!(
            (twin.mode, twin.instruction.as_str()),
            (DarkMode::Edit, "keep the sky orange")
        );
        assert_eq!(
            Twin::of(&directive(with(own, None)), &prompt).unwrap().mode,
            DarkMode::Prompt
        );
        let twin = Twin::of(&directive(with(Some(DarkAttr::Edit), None)), &off).unwrap();
        assert!(twin.explicit && twin.mode == DarkMode::Edit);
        // An edit directive's twin edits its result.
        let twin = Twin::of(&directive(with(None, Some("at night"))), &prompt).unwrap();
        assert_eq!(twin.mode, DarkMode::Edit);
    }

    #[test]
    fn an_edit_twin_sends_the_light_image_with_the_instruction_and_is_keyed_by_it() {
        let config = config(serde_json::json!({ "mode": "edit" }));
        let attrs = Attrs {
            provider: Some("o".into()),
            negative: Some("text".into()),
            ..Attrs::default()
        };
        let (_, chain) = twin_of(attrs.clone(), &config);
        let request = &chain[0].1;
        assert_eq!(request.prompt, config.dark.instruction);
        assert!(
            request
                .prompt
                .starts_with("The same picture for a dark web page")
        );
        assert_eq!(request.references.len(), 1);
        assert_eq!(request.references[0].hash, "a".repeat(64));
        assert_eq!(request.negative, None);
        assert_eq!(request.dark_of.as_deref(), Some("a".repeat(64).as_str()));
        // Another light image, another twin.
        let d = directive(attrs);
        let twin = Twin::of(&d, &config).unwrap();
        let shown = super::super::chain(&d, &config, &[]).unwrap();
        let other = super::chain(&d, &config, &twin, &shown, &light('b')).unwrap();
        assert_ne!(other[0].0, chain[0].0);
        assert_ne!(chain[0].0, shown[0].0);
    }

    #[test]
    fn a_prompt_twin_adds_the_instruction_and_keeps_the_rest() {
        let config = config(serde_json::json!({ "mode": "prompt", "instruction": "dark ground" }));
        let attrs = Attrs {
            provider: Some("s".into()),
            seed: Some(7),
            ..Attrs::default()
        };
        let (_, chain) = twin_of(attrs, &config);
        let request = &chain[0].1;
        assert_eq!(request.prompt, "A lighthouse at dusk dark ground");
        assert!(request.references.is_empty());
        assert_eq!(request.seed, Some(7));
        assert_eq!(request.dark_of.as_deref(), Some("a".repeat(64).as_str()));
    }

    #[test]
    fn an_edit_the_profile_cannot_make_is_a_generation_unless_the_directive_asked() {
        let config = config(serde_json::json!({ "mode": "edit" }));
        let attrs = Attrs {
            provider: Some("a".into()),
            ..Attrs::default()
        };
        let (_, chain) = twin_of(attrs.clone(), &config);
        assert!(chain[0].1.references.is_empty());
        assert!(chain[0].1.prompt.ends_with(&config.dark.instruction));
        let asked = Attrs {
            dark: Some(DarkAttr::Edit),
            ..attrs
        };
        let message = check(&directive(asked), &config).unwrap_err();
        assert!(
            message.contains("cannot take reference images"),
            "{message}"
        );
        assert!(check(&directive(Attrs::default()), &config).is_ok());
    }

    #[test]
    fn an_svg_light_image_gets_a_twin_from_the_prompt_unless_an_edit_is_asked_for() {
        let config = config(serde_json::json!({ "mode": "edit" }));
        let mut svg = light('c');
        svg.media_type = "image/svg+xml";
        let attrs = Attrs {
            provider: Some("o".into()),
            ..Attrs::default()
        };
        let d = directive(attrs.clone());
        let shown = super::super::chain(&d, &config, &[]).unwrap();
        let twin = Twin::of(&d, &config).unwrap();
        let chain = chain(&d, &config, &twin, &shown, &svg).unwrap();
        assert!(chain[0].1.references.is_empty());
        assert!(chain[0].1.prompt.starts_with("A lighthouse at dusk "));
        let asked = directive(Attrs {
            dark: Some(DarkAttr::Edit),
            ..attrs
        });
        let twin = Twin::of(&asked, &config).unwrap();
        let message = super::chain(&asked, &config, &twin, &shown, &svg).unwrap_err();
        assert!(message.contains("is an SVG"), "{message}");
    }

    #[test]
    fn the_dark_profile_makes_every_twin() {
        let config = config(serde_json::json!({ "mode": "edit", "profile": "o" }));
        let (_, chain) = twin_of(Attrs::default(), &config);
        assert_eq!(chain[0].1.profile, "o");
        assert_eq!(chain[0].1.model, "gpt-image-2");
        let message = Config::from_table(Some(&serde_json::json!({
            "providers": { "a": { "kind": "automatic1111", "model": "sd-turbo" } },
            "dark": { "mode": "edit", "profile": "a" }
        })))
        .unwrap_err()
        .to_string();
        assert!(message.contains("dark.profile"), "{message}");
    }
}
