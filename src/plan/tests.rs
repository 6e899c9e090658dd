use super::*;
use crate::directive::{Attrs, Directive};

fn request() -> Request {
    Request {
        kind: ProviderKind::Placeholder,
        profile: "placeholder".into(),
        model: "placeholder-1".into(),
        prompt: "A lighthouse on a cliff at dusk".into(),
        negative: None,
        size: Size {
            width: 1536,
            height: 1024,
        },
        quality: None,
        seed: None,
        params: Default::default(),
    }
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
    let chain = super::chain(&directive(Attrs::default()), &config).unwrap();
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
    use crate::models::Day;
    let config = Config::from_table(Some(&serde_json::json!({
        "provider": "a",
        "fallback": ["b"],
        "providers": {
            "a": { "kind": "openai", "model": "gpt-image-1.5" },
            "b": { "kind": "gemini", "model": "gemini-2.5-flash-image" },
        }
    })))
    .unwrap();
    let chain = super::chain(&directive(Attrs::default()), &config).unwrap();
    let before = Day::parse("2026-11-30").unwrap();
    let after = Day::parse("2026-12-01").unwrap();
    assert_eq!(super::retired(&chain, &config, before), None);
    let warnings = super::deprecations(&chain, &config, before);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("is shut down by OpenAI on 2026-12-01"));
    let refusal = super::retired(&chain, &config, after).unwrap();
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
    )
    .unwrap();
    assert!(
        super::retired(&chain, &config, before)
            .unwrap()
            .contains("change the directive's `model` attribute")
    );
}
