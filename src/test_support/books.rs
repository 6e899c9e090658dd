//! Books (their `[preprocessor.imagegen]` table as JSON) and the requests their directives make.

use std::path::Path;

use serde_json::{Value, json};

use super::images::png;
use crate::config::{Config, ProviderKind, Size};
use crate::request::Request;

/// The book whose table is `base` with the keys of `extra` set over it.
pub(crate) fn merged(mut base: Value, extra: Value) -> Config {
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    Config::from_table(Some(&base)).unwrap()
}

/// A book whose profile `p` is `profile`, with `global` keys beside it.
pub(crate) fn config(profile: Value, global: Value) -> Config {
    merged(json!({ "providers": { "p": profile } }), global)
}

/// The request a directive with `prompt` makes of profile `p`.
pub(crate) fn request(config: &Config, prompt: &str) -> Request {
    request_of(config, "p", prompt)
}

/// The request a directive with `prompt` makes of the profile `name`: 1024 square, with the
/// profile's quality and parameters.
pub(crate) fn request_of(config: &Config, name: &str, prompt: &str) -> Request {
    let profile = &config.profiles[name];
    Request {
        quality: profile.quality.clone(),
        params: profile.params.clone(),
        ..bare_request(profile.kind, name, &profile.model, prompt, (1024, 1024))
    }
}

/// A request of `kind`'s `model` through `profile` at `size`, with nothing else set.
pub(crate) fn bare_request(
    kind: ProviderKind,
    profile: &str,
    model: &str,
    prompt: &str,
    (width, height): (u32, u32),
) -> Request {
    Request {
        kind,
        profile: profile.into(),
        model: model.into(),
        prompt: prompt.into(),
        negative: None,
        size: Size { width, height },
        auto_size: false,
        quality: None,
        seed: None,
        params: Default::default(),
        references: Vec::new(),
        mask: None,
        candidate: 0,
        retry: 0,
        dark_of: None,
    }
}

/// A book whose profile `p` runs `sh draw.sh` in `dir`, the script being `body`; a 20×10
/// `fixture.png` sits beside it.
pub(crate) fn command_book(dir: &Path, body: &str, global: Value) -> Config {
    let path = dir.join("draw.sh");
    std::fs::write(&path, body).unwrap();
    std::fs::write(dir.join("fixture.png"), png(20, 10)).unwrap();
    config(
        json!({ "kind": "command", "model": "my-sd", "command": ["sh", path.to_str().unwrap()] }),
        global,
    )
}
