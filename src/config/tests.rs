use super::*;
use serde_json::json;

fn error(table: serde_json::Value) -> String {
    Config::from_table(Some(&table)).unwrap_err().to_string()
}

#[test]
fn defaults_need_no_table() {
    let config = Config::from_table(None).unwrap();
    assert_eq!(config.default_profile, "placeholder");
    assert_eq!(config.cache_dir, PathBuf::from(".imagegen"));
    assert_eq!(config.assets_dir, "imagegen");
    assert_eq!(config.on_error, OnError::Fail);
    assert!(!config.offline);
    assert_eq!(config.max_concurrency, 4);
    assert_eq!(
        config.default_size,
        Size {
            width: 1024,
            height: 1024
        }
    );
    assert_eq!(
        config.profiles["placeholder"].kind,
        ProviderKind::Placeholder
    );
}

#[test]
fn reads_every_key_and_accepts_mdbooks_own() {
    let config = Config::from_table(Some(&json!({
        "command": "mdbook-imagegen", "renderers": ["html"], "before": [], "after": ["links"], "optional": true,
        "provider": "drafts", "cache-dir": "cache", "assets-dir": "/img/gen/", "on-error": "placeholder",
        "offline": true, "max-concurrency": 8, "size": "640x480",
        "providers": { "drafts": { "kind": "placeholder", "model": "m" } },
        "styles": { "ink": "ink drawing" }
    })))
    .unwrap();
    assert_eq!(config.default_profile, "drafts");
    assert_eq!(config.assets_dir, "img/gen");
    assert_eq!(config.on_error, OnError::Placeholder);
    assert!(config.offline);
    assert_eq!(config.max_concurrency, 8);
    assert_eq!(config.profiles["drafts"].model, "m");
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let message = error(json!({ "cache-directory": "x" }));
    assert!(message.starts_with("in `book.toml`, `preprocessor.imagegen`: unknown field `cache-directory`, expected one of `provider`, `cache-dir`, `assets-dir`"), "{message}");
}

#[test]
fn bad_values_say_how_to_fix_them() {
    let cases = [
        (
            json!({ "on-error": "ignore" }),
            "in `book.toml`, `preprocessor.imagegen.on-error`: `ignore` is not a choice; use `\"fail\"` or `\"placeholder\"`",
        ),
        (
            json!({ "provider": "openai" }),
            "in `book.toml`, `preprocessor.imagegen.provider`: no profile named `openai`; define `[preprocessor.imagegen.providers.openai]` or use one of: `placeholder`",
        ),
        (
            json!({ "providers": { "x": { "kind": "dalle" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.x.kind`: unknown provider kind `dalle`; this version knows: `placeholder`",
        ),
        (
            json!({ "max-concurrency": 0 }),
            "in `book.toml`, `preprocessor.imagegen.max-concurrency`: 0 is out of range; use 1 to 64",
        ),
        (
            json!({ "assets-dir": "../outside" }),
            "in `book.toml`, `preprocessor.imagegen.assets-dir`: `../outside` must be a relative path inside the book's source directory, such as `imagegen`",
        ),
        (
            json!({ "size": "huge" }),
            "in `book.toml`, `preprocessor.imagegen.size`: `huge` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels",
        ),
        (
            json!({ "styles": { "ink": " " } }),
            "in `book.toml`, `preprocessor.imagegen.styles.ink`: the style is empty; write the words it adds to the prompt",
        ),
    ];
    for (table, expected) in cases {
        assert_eq!(error(table), expected);
    }
}
