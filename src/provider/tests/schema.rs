//! Every request body this version builds for OpenAI's Images API, checked against the official
//! schemas (`tests/schemas/openai-images.schema.json`): a value the spec refuses fails here, not
//! in a user's build. The spec predates GPT Image 2.5 and 2.6; what their references add
//! (`quality` `xhigh` and `max`, `complexity`, SVG output) is allowed for those models only.

use serde_json::{Value, json};

use crate::config::Config;
use crate::provider::openai;
use crate::request::{Request, api_takes};
use crate::test_support::books::request_of;

const SCHEMAS: &str = include_str!("../../../tests/schemas/openai-images.schema.json");

/// What GPT Image 2.5 and 2.6 take beyond the spec, by their references (read 2026-12-05; see
/// `docs/providers.md`): the schema of `which` widened for `model`.
fn schema_for(which: &str, model: &str) -> Value {
    let mut root: Value = serde_json::from_str(SCHEMAS).unwrap();
    let extended = model.starts_with("gpt-image-2.5") || model.starts_with("gpt-image-2.6");
    if extended {
        for quality in ["quality", "editQuality"] {
            let values = root["$defs"][quality]["anyOf"][0]["enum"]
                .as_array_mut()
                .unwrap();
            values.extend([json!("xhigh"), json!("max")]);
        }
    }
    if model.starts_with("gpt-image-2.6") {
        let formats = root["$defs"]["outputFormat"]["anyOf"][0]["enum"]
            .as_array_mut()
            .unwrap();
        formats.push(json!("svg"));
        for request in ["CreateImageRequest", "CreateImageEditRequest"] {
            root["$defs"][request]["properties"]["complexity"] =
                json!({ "type": "string", "enum": ["low", "medium", "high"] });
        }
    }
    root["$ref"] = json!(format!("#/$defs/{which}"));
    root
}

/// Why `body` does not fit `which` for `model`: the validator's errors, and any field the
/// schema does not name (the spec leaves other properties open, but OpenAI's API refuses an
/// unknown parameter).
fn problems(which: &str, model: &str, body: &Value) -> Vec<String> {
    let schema = schema_for(which, model);
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    let named = &schema["$defs"][which]["properties"];
    for field in body.as_object().unwrap().keys() {
        if named.get(field).is_none() {
            problems.push(format!("`{field}` is not a parameter of {which}"));
        }
    }
    problems
}

/// The body as sent, in the form its endpoint's schema describes: a generation as JSON; an
/// edit's multipart parts as their JSON values, with its image part.
fn sent(request: &Request, config: &Config) -> (&'static str, Value) {
    let profile = &config.profiles[&request.profile];
    let (mut body, _) = openai::body(request, profile, 1);
    if request.references.is_empty() {
        ("CreateImageRequest", body)
    } else {
        body["image"] = json!(["reference-1.png"]);
        ("CreateImageEditRequest", body)
    }
}

/// The profiles a book may write for OpenAI, the sizes a directive may ask for, with and
/// without an image to edit: each either refused when the book is loaded or planned, or sent
/// as the spec takes it.
#[test]
fn every_openai_body_fits_the_official_schema() {
    let models = [
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5-flare",
        "gpt-image-2.6-sunburst",
        "gpt-image-2.6-flare",
    ];
    let settings: Vec<Value> = vec![
        json!({}),
        json!({ "quality": "low" }),
        json!({ "quality": "high", "moderation": "low" }),
        json!({ "quality": "auto" }),
        json!({ "quality": "xhigh" }),
        json!({ "quality": "max", "output-format": "webp" }),
        json!({ "background": "transparent", "output-format": "png" }),
        json!({ "background": "transparent", "output-format": "jpeg" }),
        json!({ "background": "opaque", "output-format": "jpeg" }),
        json!({ "complexity": "low" }),
        json!({ "output-format": "svg" }),
        json!({ "output-format": "svg", "complexity": "medium", "quality": "high" }),
        json!({ "input-fidelity": "high" }),
        json!({ "input-fidelity": "low", "quality": "medium" }),
    ];
    let sizes = [None, Some((800, 600)), Some((4096, 256))];
    let image = crate::request::RefImage {
        label: "a.png".into(),
        hash: "ab".repeat(32),
        media_type: "image/png",
        bytes: Default::default(),
        path: Default::default(),
    };
    let (mut sent_count, mut refused) = (0, 0);
    for model in models {
        for setting in &settings {
            let mut profile = json!({ "kind": "openai", "model": model });
            for (key, value) in setting.as_object().unwrap() {
                profile[key] = value.clone();
            }
            let table = json!({ "providers": { "p": profile } });
            let Ok(config) = Config::from_table(Some(&table)) else {
                refused += 1;
                continue;
            };
            for size in sizes {
                for edit in [false, true] {
                    let mut request = request_of(&config, "p", "A lighthouse at dusk");
                    match size {
                        Some((width, height)) => {
                            request.size = crate::config::Size { width, height }
                        }
                        None => request.auto_size = true,
                    }
                    if edit {
                        request.references = vec![image.clone()];
                    }
                    if api_takes(&request, crate::config::ProviderKind::OpenAi).is_err() {
                        refused += 1;
                        continue;
                    }
                    let (which, body) = sent(&request, &config);
                    let problems = problems(which, model, &body);
                    assert!(
                        problems.is_empty(),
                        "{model} {setting} {body}: {problems:?}"
                    );
                    sent_count += 1;
                }
            }
        }
    }
    // The matrix is what it says: most combinations are sent, some refused before sending.
    assert!(
        sent_count > 150 && refused > 20,
        "{sent_count} sent, {refused} refused"
    );
}

/// What this version refuses at load for a model the spec knows, the spec refuses too: the
/// checks are no stricter than they need be where the spec can say.
#[test]
fn what_is_refused_for_gpt_image_2_is_what_the_spec_refuses() {
    for quality in ["xhigh", "max"] {
        let table = json!({ "providers": { "p": { "kind": "openai", "model": "gpt-image-2", "quality": quality } } });
        assert!(Config::from_table(Some(&table)).is_err(), "{quality}");
        let body = json!({ "model": "gpt-image-2", "prompt": "x", "quality": quality });
        assert!(!problems("CreateImageRequest", "gpt-image-2", &body).is_empty());
    }
    let body = json!({ "model": "gpt-image-2", "prompt": "x", "output_format": "svg" });
    assert!(!problems("CreateImageRequest", "gpt-image-2", &body).is_empty());
    // Fields only other servers take are never sent to OpenAI: the check names them.
    let body =
        json!({ "model": "gpt-image-2", "prompt": "x", "seed": 1, "response_format": "b64_json" });
    assert_eq!(
        problems("CreateImageRequest", "gpt-image-2", &body).len(),
        1
    );
}

/// An `openai-compatible` profile pointed at OpenAI's own API sends what OpenAI takes; pointed
/// anywhere else, what compatible servers read.
#[test]
fn a_compatible_profile_on_openai_follows_openai() {
    let on = |base: &str| {
        let table = json!({ "providers": { "p": {
            "kind": "openai-compatible", "model": "gpt-image-2", "base-url": base,
        } } });
        let config = Config::from_table(Some(&table)).unwrap();
        let mut request = request_of(&config, "p", "A lighthouse");
        request.negative = Some("fog".into());
        request.seed = Some(7);
        let (_, body) = sent(&request, &config);
        body
    };
    let openai = on("https://api.openai.com/v1");
    assert!(
        problems("CreateImageRequest", "gpt-image-2", &openai).is_empty(),
        "{openai}"
    );
    assert_eq!(openai["prompt"], "A lighthouse\n\nAvoid: fog.");
    let local = on("http://127.0.0.1:8080/v1");
    assert_eq!(local["response_format"], "b64_json");
    assert_eq!(local["negative_prompt"], "fog");
    assert_eq!(local["seed"], 7);
    // OpenAI's rules at load too.
    let table = json!({ "providers": { "p": {
        "kind": "openai-compatible", "model": "gpt-image-2", "base-url": "https://api.openai.com/v1",
        "quality": "max",
    } } });
    assert!(Config::from_table(Some(&table)).is_err());
    let table = json!({ "providers": { "p": {
        "kind": "openai-compatible", "model": "gpt-image-2", "base-url": "https://api.openai.com/v1",
        "steps": 4,
    } } });
    let error = Config::from_table(Some(&table)).unwrap_err().to_string();
    assert!(error.contains("providers.p.steps"), "{error}");
}
