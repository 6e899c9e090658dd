//! The `[preprocessor.imagegen]` table read end to end through `Config::from_table`: defaults,
//! every key, and the exact message of each mistake.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::limits::{MAX_EXTRA_BYTES, MAX_SETTING_CHARS};
use super::*;

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
        crate::vocab::SizeSetting::Exact(Size {
            width: 1024,
            height: 1024
        })
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
fn settings_that_would_outgrow_a_record_are_refused_naming_the_key() {
    let long = "x".repeat(MAX_SETTING_CHARS + 1);
    let extra: serde_json::Map<String, serde_json::Value> =
        [("blob".to_owned(), json!("y".repeat(MAX_EXTRA_BYTES)))]
            .into_iter()
            .collect();
    for (table, key) in [
        (json!({ "prompt-prefix": long }), "prompt-prefix"),
        (json!({ "prompt-suffix": long }), "prompt-suffix"),
        (json!({ "negative-prompt": long }), "negative-prompt"),
        (json!({ "styles": { "ink": long } }), "styles.ink"),
        (
            json!({ "styles": { "ink": { "prompt": "ink", "negative": long } } }),
            "styles.ink.negative",
        ),
        (
            json!({ "providers": { "art": { "kind": "openai", "extra": extra } } }),
            "providers.art.extra",
        ),
    ] {
        let message = error(table);
        assert!(
            message.starts_with(&format!("in `book.toml`, `preprocessor.imagegen.{key}`:")),
            "{message}"
        );
    }
    let fits = "x".repeat(MAX_SETTING_CHARS);
    Config::from_table(Some(&json!({ "prompt-prefix": fits }))).unwrap();
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let message = error(json!({ "cache-directory": "x" }));
    assert!(message.starts_with("in `book.toml`, `preprocessor.imagegen.cache-directory`: unknown field `cache-directory`, expected one of `provider`, `fallback`, `cache-dir`, `assets-dir`"), "{message}");
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
            "in `book.toml`, `preprocessor.imagegen.providers.x.kind`: unknown provider kind `dalle`; this version knows: `placeholder`, `openai`, `openai-compatible`, `gemini`, `stability`, `automatic1111`, `command`, `bfl`, `openrouter`, `recraft`, `ideogram`, `xai`",
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
            "in `book.toml`, `preprocessor.imagegen.size`: `huge` is not a size; write WIDTHxHEIGHT such as `1024x1024`, each side 16 to 4096 pixels, or `auto` to let the model choose",
        ),
        (
            json!({ "providers": { "local": { "kind": "automatic1111" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.local.model`: a profile of kind `automatic1111` needs `model`: the name of the model the server runs, such as `sd-turbo` (it is part of every image's cache key)",
        ),
        (
            json!({ "providers": { "sd": { "kind": "openai-compatible", "model": "sd" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.sd.base-url`: a profile of kind `openai-compatible` needs `base-url`, the server's address, such as `http://127.0.0.1:8080/v1`",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "api-key-env": "sk-abc123 secret" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.api-key-env`: `sk-abc123 secret` is not an environment variable's name; keys are read only from the environment, never written in `book.toml`",
        ),
        (
            json!({ "providers": { "g": { "kind": "gemini", "steps": 20 } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.g.steps`: a profile of kind `gemini` has no `steps` setting; it takes none",
        ),
        (
            json!({ "providers": { "c": { "kind": "command", "model": "m" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.c.command`: a profile of kind `command` needs `command`, the program and its arguments, such as `[\"python3\", \"scripts/draw.py\"]`",
        ),
        (
            json!({ "fallback": ["nope"] }),
            "in `book.toml`, `preprocessor.imagegen.fallback`: no profile named `nope`; define `[preprocessor.imagegen.providers.nope]` or use one of: `placeholder`",
        ),
        (
            json!({ "timeout": "soon" }),
            "in `book.toml`, `preprocessor.imagegen.timeout`: `soon` is not a duration; write it like `90s` or `10m`",
        ),
        (
            json!({ "styles": { "ink": " " } }),
            "in `book.toml`, `preprocessor.imagegen.styles.ink`: the style is empty; write the words it adds to the prompt, or its `reference` images",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "background": "clear" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.background`: `clear` is not a choice; use `transparent`, `opaque`, `auto`",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "moderation": "high" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.moderation`: `high` is not a choice; use `low`, `auto`",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "output-format": "gif" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.output-format`: `gif` is not a choice; use `png`, `jpeg`, `webp`, `svg`",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "background": "transparent" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.background`: `gpt-image-2` cannot make a transparent background; use `opaque` or `auto`, or a model that can, such as `gpt-image-2.6-sunburst`",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "model": "gpt-image-2.5-flare", "background": "transparent", "output-format": "jpeg" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.background`: a transparent background needs `output-format = \"png\"` or `\"webp\"`; JPEG has no transparency",
        ),
        (
            json!({ "providers": { "o": { "kind": "openai", "quality": "max" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.o.quality`: `gpt-image-2` does not take quality `max` (only GPT Image 2.5 and 2.6 models do); use `low`, `medium`, `high` or `auto`, or a model that does, such as `gpt-image-2.6-sunburst`",
        ),
    ];
    for (table, expected) in cases {
        assert_eq!(error(table), expected);
    }
}

#[test]
fn profiles_get_their_kinds_defaults() {
    let config = Config::from_table(Some(&json!({
        "provider": "openai", "fallback": ["gemini", "local"],
        "prompt-prefix": "  A drawing of ", "negative-prompt": "text, watermark",
        "retries": 5, "max-retry-wait": "30s", "timeout": "2m",
        "prices": { "gpt-image-1.5:high": 0.2 },
        "providers": {
            "openai": { "kind": "openai", "quality": "high", "background": "opaque" },
            "gemini": { "kind": "gemini", "api-key-env": "MY_GEMINI" },
            "local": { "kind": "automatic1111", "model": "sdxl", "steps": 30, "cfg-scale": 6.5,
                       "base-url": "http://127.0.0.1:7860/", "timeout": "30m" },
        },
        "styles": { "ink": { "prompt": "ink drawing", "negative": "colour" } }
    })))
    .unwrap();
    let openai = &config.profiles["openai"];
    assert_eq!(openai.model, "gpt-image-2");
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.api_key_env, ["OPENAI_API_KEY"]);
    assert!(openai.key_required);
    assert_eq!(openai.quality.as_deref(), Some("high"));
    assert_eq!(openai.params["background"], "opaque");
    let gemini = &config.profiles["gemini"];
    assert_eq!(gemini.api_key_env, ["MY_GEMINI"]);
    let local = &config.profiles["local"];
    assert_eq!(local.base_url, "http://127.0.0.1:7860");
    assert!(!local.key_required);
    assert_eq!(local.params["steps"], "30");
    assert_eq!(local.params["cfg-scale"], "6.5");
    assert_eq!(local.timeout, Some(Duration::from_secs(1800)));
    assert_eq!(config.fallback, ["gemini", "local"]);
    assert_eq!(config.prompt_prefix.as_deref(), Some("A drawing of"));
    assert_eq!(config.retry.retries, 5);
    assert_eq!(config.retry.max_wait, Duration::from_secs(30));
    assert_eq!(config.retry.timeout, Duration::from_secs(120));
    assert_eq!(config.styles["ink"].negative.as_deref(), Some("colour"));
}

#[test]
fn storage_reads_each_scheme_with_defaults() {
    let config = Config::from_table(Some(&json!({
    "storage": {"scheme": "s3", "bucket": "my-book", "region": "eu-west-1",
                "endpoint": "https://s3.example.com/", "public-url": "https://img.example.com/x/"}
})))
.unwrap();
    let storage = config.storage.unwrap();
    assert_eq!(storage.scheme, Scheme::S3);
    assert_eq!(storage.bucket, "my-book");
    assert_eq!(storage.root, "imagegen");
    assert_eq!(storage.endpoint.as_deref(), Some("https://s3.example.com"));
    assert_eq!(
        storage.public_url.as_deref(),
        Some("https://img.example.com/x")
    );
    assert_eq!(storage.mode, Mode::ReadWrite);

    let fs = Config::from_table(Some(
        &json!({"storage": {"scheme": "fs", "root": "../shared/"}}),
    ))
    .unwrap()
    .storage
    .unwrap();
    assert_eq!((fs.scheme, fs.root.as_str()), (Scheme::Fs, "../shared"));
    assert_eq!((fs.claim_ttl, fs.claim_wait), (super::CLAIM_TTL, None));
    let claims = Config::from_table(Some(&json!({
        "storage": {"scheme": "fs", "root": "x", "claim-ttl": "90s", "claim-wait": "20m"}
    })))
    .unwrap()
    .storage
    .unwrap();
    assert_eq!(
        (claims.claim_ttl, claims.claim_wait),
        (
            std::time::Duration::from_secs(90),
            Some(std::time::Duration::from_secs(1200))
        )
    );
    let azure = Config::from_table(Some(&json!({
        "storage": {"scheme": "azblob", "bucket": "c", "root": "/books/a/", "mode": "read-only"}
    })))
    .unwrap()
    .storage
    .unwrap();
    assert_eq!(
        (azure.root.as_str(), azure.mode),
        ("books/a", Mode::ReadOnly)
    );
}

#[test]
fn storage_mistakes_say_how_to_fix_them() {
    let cases = [
        (
            json!({"scheme": "ftp", "bucket": "b"}),
            "storage.scheme`: `ftp` is not a store",
        ),
        (
            json!({"scheme": "s3"}),
            "storage.bucket`: the `s3` store needs the name of its bucket",
        ),
        (
            json!({"scheme": "azblob"}),
            "needs the name of its container",
        ),
        (
            json!({"scheme": "fs"}),
            "the `fs` store needs its directory",
        ),
        (
            json!({"scheme": "fs", "root": "x", "bucket": "b"}),
            "the `fs` store has no bucket",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "endpoint": "s3.example.com"}),
            "is not an `http://` or `https://` URL",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "endpoint": "https://key:secret@s3.example.com"}),
            "without a user name or password",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "mode": "rw"}),
            "`rw` is not a mode",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "anonymous": true}),
            "anonymous access can only read",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "root": "a/../b"}),
            "must be a plain prefix",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "claim-ttl": "1s"}),
            "storage.claim-ttl`: `1s` is out of range; give a duration from `\"2s\"` to `\"1h\"`",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "claim-wait": "soon"}),
            "storage.claim-wait`: `soon` is not a duration",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "key": "x"}),
            "unknown field `key`",
        ),
        (
            json!({"scheme": "s3", "bucket": "b", "endpoint": "https://h/?sig=1"}),
            "must not have a query or fragment",
        ),
        (
            json!({"scheme": "fs", "root": "x", "endpoint": "https://h"}),
            "the `fs` store has no endpoint",
        ),
        (
            json!({"scheme": "fs", "root": "x", "mode": "read-only", "anonymous": true}),
            "the `fs` store has no credentials",
        ),
    ];
    for (table, expected) in cases {
        let message = error(json!({ "storage": table }));
        assert!(
            message.contains(expected),
            "{message}\nshould contain: {expected}"
        );
        assert!(!message.contains("secret"), "{message}");
    }
}

#[test]
fn every_error_names_the_full_key() {
    let cases = [
        (
            json!({ "providers": { "oa": { "kind": "openai", "timeout": -1 } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.oa.timeout`: invalid type: integer `-1`, expected a string",
        ),
        (
            json!({ "providers": { "oa": { "model": "x" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.oa`: missing field `kind`",
        ),
        (
            json!({ "providers": { "oa": { "kind": "openai", "tiemout": "1s" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.oa.tiemout`: unknown field `tiemout`, expected one of",
        ),
        (
            json!({ "max-concurrency": -1 }),
            "in `book.toml`, `preprocessor.imagegen.max-concurrency`: invalid value: integer `-1`, expected usize",
        ),
        (
            json!({ "output": { "widths": [480, "wide"] } }),
            "in `book.toml`, `preprocessor.imagegen.output.widths[1]`: invalid type: string \"wide\", expected i64",
        ),
        // `nan` and `inf` reach a preprocessor as JSON null.
        (
            json!({ "max-cost-per-build": null }),
            "in `book.toml`, `preprocessor.imagegen.max-cost-per-build`: not a number mdbook-imagegen can use",
        ),
        (
            json!({ "providers": { "oa": { "kind": "openai", "price": null } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.oa.price`: not a number",
        ),
        (
            json!({ "timeout": "0s" }),
            "in `book.toml`, `preprocessor.imagegen.timeout`: `0s` is no time at all",
        ),
        (
            json!({ "providers": { "oa": { "kind": "openai", "timeout": "0ms" } } }),
            "in `book.toml`, `preprocessor.imagegen.providers.oa.timeout`: `0ms` is no time at all",
        ),
        (
            json!({ "max-retry-wait": "0s" }),
            "in `book.toml`, `preprocessor.imagegen.max-retry-wait`: `0s` is no time at all",
        ),
        (
            json!({ "max-cost-per-build": -2.0 }),
            "in `book.toml`, `preprocessor.imagegen.max-cost-per-build`: -2 is not an amount",
        ),
        (
            json!({ "cache-dir": "../elsewhere" }),
            "in `book.toml`, `preprocessor.imagegen.cache-dir`: `../elsewhere` is not a directory inside the book",
        ),
        (
            json!({ "cache-dir": "/tmp/cache" }),
            "in `book.toml`, `preprocessor.imagegen.cache-dir`: `/tmp/cache` is not a directory inside the book",
        ),
        (
            json!({ "cache-dir": "a/../.." }),
            "in `book.toml`, `preprocessor.imagegen.cache-dir`: `a/../..` is not a directory inside the book",
        ),
        (
            json!({ "cache-dir": "." }),
            "in `book.toml`, `preprocessor.imagegen.cache-dir`: `.` is not a directory inside the book",
        ),
    ];
    for (table, expected) in cases {
        let message = error(table.clone());
        assert!(message.starts_with(expected), "{table}:\n{message}");
    }
}

#[test]
fn the_cache_stays_out_of_the_source_and_build_directories() {
    let layout = |cache: &str, src: &str, build: &str| {
        Config::from_table(Some(&json!({ "cache-dir": cache })))
            .unwrap()
            .check_layout(src, build)
            .map_err(|e| e.to_string())
    };
    assert!(layout(".imagegen", "src", "book").is_ok());
    assert!(layout("cache/images", "./src/", "out").is_ok());
    for (cache, src, build) in [
        ("book/.imagegen", "src", "book"),
        ("src/.imagegen", "src", "book"),
        ("./src/x/../.imagegen", "src", "book"),
        ("docs", "docs/src", "book"),
        ("out", "src", "out/html"),
    ] {
        let message = layout(cache, src, build).unwrap_err();
        assert!(
            message.contains("overlaps the book's"),
            "{cache}: {message}"
        );
    }
}

#[test]
fn the_judge_is_read_and_its_mistakes_are_named() {
    let vision = json!({ "kind": "openai", "api-key-env": "K" });
    let config = Config::from_table(Some(&json!({
        "providers": { "vision": vision },
        "judge": { "mode": "gate", "profile": "vision", "min-score": 0.7, "retries": 2 },
    })))
    .unwrap();
    let judge = config.judge.as_ref().unwrap();
    assert_eq!(judge.mode, JudgeMode::Gate);
    assert_eq!((judge.min_score, judge.retries), (0.7, 2));
    // The kind's default image model reads nothing: its default vision model judges.
    assert_ne!(judge.with.model, config.profiles["vision"].model);
    assert!(config.judge_id().is_some());
    // Off, or absent: no judge.
    let off = json!({ "providers": { "vision": vision }, "judge": { "mode": "off", "profile": "vision" } });
    assert!(Config::from_table(Some(&off)).unwrap().judge.is_none());
    assert!(Config::from_table(None).unwrap().judge.is_none());
    for (table, wanted) in [
        (
            json!({ "judge": { "mode": "strict", "profile": "x" } }),
            "`preprocessor.imagegen.judge.mode`: unknown value `strict`",
        ),
        (
            json!({ "judge": { "mode": "report" } }),
            "a judge needs a profile",
        ),
        (
            json!({ "providers": { "vision": vision }, "judge": { "mode": "report", "profile": "vision", "min-score": 1.5 } }),
            "`preprocessor.imagegen.judge.min-score`: 1.5 is not a score",
        ),
        (
            json!({ "providers": { "vision": vision }, "judge": { "mode": "gate", "profile": "vision", "retries": 9 } }),
            "`preprocessor.imagegen.judge.retries`: 9 new attempts per figure; at most 5",
        ),
        (
            json!({ "providers": { "art": { "kind": "stability", "api-key-env": "K" } }, "judge": { "mode": "report", "profile": "art" } }),
            "profile `art` is of kind `stability`, which cannot read images",
        ),
        (
            json!({ "judge": { "mode": "report", "profile": "nobody" } }),
            "`preprocessor.imagegen.judge.profile`: no profile named `nobody`",
        ),
        (
            json!({ "judge": { "mode": "report", "profile": "x", "threshold": 1 } }),
            "threshold",
        ),
    ] {
        let e = error(table.clone());
        assert!(e.contains(wanted), "{table}: {e}");
    }
}

#[test]
fn dark_twins_are_read_and_their_mistakes_are_named() {
    let config = Config::from_table(Some(&json!({
        "dark": { "mode": "prompt", "instruction": "night   colours", "themes": ["coal", "my_dark"] }
    })))
    .unwrap();
    assert_eq!(config.dark.mode, DarkMode::Prompt);
    assert_eq!(config.dark.instruction, "night colours");
    assert_eq!(config.dark.themes, ["coal", "my_dark"]);
    let default = Config::from_table(None).unwrap().dark;
    assert_eq!(default.mode, DarkMode::Off);
    assert_eq!(default.themes, ["coal", "navy", "ayu"]);
    for (table, wanted) in [
        (
            json!({ "dark": { "mode": "dusk" } }),
            "`preprocessor.imagegen.dark.mode`: unknown value `dusk`",
        ),
        (
            json!({ "dark": { "instruction": "  " } }),
            "`preprocessor.imagegen.dark.instruction`: is empty",
        ),
        (
            json!({ "dark": { "mode": "edit", "profile": "nobody" } }),
            "`preprocessor.imagegen.dark.profile`: names no profile `nobody`",
        ),
        (
            json!({ "providers": { "art": { "kind": "stability", "api-key-env": "K" } }, "dark": { "mode": "edit", "profile": "art" } }),
            "cannot take an image to edit",
        ),
        (
            json!({ "dark": { "themes": [] } }),
            "`preprocessor.imagegen.dark.themes`: is empty",
        ),
        (
            json!({ "dark": { "themes": ["coal", "x{y}"] } }),
            "`x{y}` is not a theme class",
        ),
        (json!({ "dark": { "colour": "black" } }), "colour"),
    ] {
        let e = error(table.clone());
        assert!(e.contains(wanted), "{table}: {e}");
    }
}
