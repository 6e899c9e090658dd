//! The preprocessor against an attacker: a provider (or a proxy) that answers with crafted text,
//! a pull request that adds crafted files to the book's repository, a mistyped `book.toml`.
//! Each test covers a class with several cases: nothing reaches a page unescaped or on more
//! than one line, no secret leaks, nothing is read, written or deleted outside the book.

use std::path::Path;
use std::process::Output;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TestBook;
use crate::support::books::{lights, toml};
use crate::support::fixtures::{assert_nowhere, ok, walk};

/// The key the book's profile uses.
const KEY: &str = "sk-proj-HARDENING-ab12cd34ef56";

/// A second key in the environment, of a profile the build does not call.
const OTHER_KEY: &str = "AIzaOtherKeyThatMustNeverShow-7788";

/// The example book with an `openai` profile at `base_url` and `settings` in the main table.
fn openai_book(base_url: &str, settings: &str) -> TestBook {
    let openai = format!("kind = \"openai\"\nbase-url = \"{base_url}/v1\"");
    lights(
        "openai",
        settings,
        &[("openai", &openai), ("gemini", "kind = \"gemini\"")],
    )
}

async fn build(book: &TestBook) -> Output {
    book.build_with(&[("OPENAI_API_KEY", KEY), ("GEMINI_API_KEY", OTHER_KEY)])
        .await
}

/// Every file under `root` and everything printed must be free of both keys.
fn assert_no_secret(root: &Path, outputs: &[&Output]) {
    assert_nowhere(root, outputs, &[&KEY[..12], &OTHER_KEY[..12]]);
}

/// Hostile error texts become one escaped, capped line in every page and the search index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_text_never_escapes_its_figure() {
    let long = "A".repeat(2 << 20);
    for message in [
        "bad request\n\n[click](javascript:alert(1))\n\n# Heading".to_owned(),
        "x</figure><script>alert(1)</script><figure>".to_owned(),
        "x\r\n-->\n<img src=x onerror=alert(1)>\u{2028}* item\u{1b}[31m".to_owned(),
        format!("start {long} end"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/images/generations"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null }
            })))
            .mount(&server)
            .await;
        let book = openai_book(&server.uri(), "on-error = \"placeholder\"");
        let output = build(&book).await;
        let stderr = ok(&output);
        for page in [
            "book/index.html",
            "book/print.html",
            "book/coast/lighthouses.html",
        ] {
            let html = book.read(page);
            let main = crate::support::main_of(&html);
            // The words may show, as text; never as a link, a script or an element.
            assert!(!main.contains("href=\"javascript"), "{page}");
            assert!(!main.contains("<script>alert"), "{page}");
            assert!(!main.contains("<img src=x"), "{page}");
            assert!(!main.contains("<h1 id=\"heading\""), "{page}");
            assert_eq!(
                main.matches("<figure").count(),
                main.matches("</figure>").count(),
                "{page}"
            );
            assert!(main.len() < 200_000, "{page} holds {} bytes", main.len());
        }
        let index = std::fs::read_dir(book.root().join("book"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.to_string_lossy().contains("searchindex")
                    && p.extension().is_some_and(|e| e == "js")
            })
            .expect("a search index");
        assert!(std::fs::metadata(index).unwrap().len() < 1 << 20);
        assert!(!stderr.contains('\u{1b}'), "an escape reached the terminal");
        assert!(stderr.len() < 64 << 10, "{} bytes of log", stderr.len());
    }
}

/// Keys are redacted before anything else is done to a text: straddling the cut, echoed in a
/// successful answer's metadata, printed by a program, or another profile's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_page_a_record_or_the_terminal() {
    // A 401 that echoes the key where the old cut fell, and the other profile's key.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": { "message": format!("{}{KEY} and {OTHER_KEY}", "x".repeat(180)),
                       "type": "invalid_request_error", "code": "invalid_api_key" }
        })))
        .mount(&server)
        .await;
    let book = openai_book(&server.uri(), "on-error = \"placeholder\"");
    let failed = build(&book).await;
    assert!(failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("[redacted]"));
    assert_no_secret(book.root(), &[&failed]);

    // A success whose metadata echoes the keys: nothing of them in the committed records.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", format!("req-{KEY}").as_str())
                .set_body_json(json!({
                    "created": 1,
                    "data": [{ "b64_json": crate::support::fixtures::png_base64(64, 64), "revised_prompt": format!("A lighthouse\n{OTHER_KEY}\u{1b}[2J") }],
                    "usage": { "input_tokens": 1e300, "output_tokens": -5 }
                })),
        )
        .mount(&server)
        .await;
    let book = openai_book(&server.uri(), "");
    let built = build(&book).await;
    ok(&built);
    assert_no_secret(book.root(), &[&built]);
    let records = walk(&book.root().join(".imagegen/records"));
    assert!(!records.is_empty());
    for record in records {
        let text = std::fs::read_to_string(record).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(value["request-id"].as_str().unwrap().contains("[redacted]"));
        let revised = value["revised-prompt"].as_str().unwrap();
        assert!(
            !revised.contains('\n') && !revised.contains('\u{1b}'),
            "{revised}"
        );
        // An absurd usage is not believed: the estimate is kept.
        assert!(value["cost-usd"].as_f64().unwrap() < 1.0);
    }

    // A program that prints the keys to stderr and fails.
    let book = TestBook::example();
    book.write(
        "book.toml",
        &toml("Program", r#"provider = "local"
on-error = "placeholder"

[preprocessor.imagegen.providers.local]
kind = "command"
model = "m"
command = ["sh", "-c", "echo \"using $OPENAI_API_KEY\" >&2; echo \"and $GEMINI_API_KEY\" >&2; exit 1"]
"#),
    );
    let output = build(&book).await;
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("using [redacted]"));
    assert_no_secret(book.root(), &[&output]);
}

/// The cache directory stays inside the book, out of its source and build directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_directory_stays_inside_the_book() {
    for (dir, says) in [
        ("book/.imagegen", "overlaps the book's build directory"),
        ("src/.imagegen", "overlaps the book's source directory"),
        ("../outside", "is not a directory inside the book"),
        ("/tmp/imagegen-cache", "is not a directory inside the book"),
    ] {
        let book = openai_book("http://127.0.0.1:9", &format!("cache-dir = \"{dir}\""));
        let output = build(&book).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{dir}");
        assert!(
            stderr.contains("`preprocessor.imagegen.cache-dir`") && stderr.contains(says),
            "{dir}: {stderr}"
        );
        assert!(!book.root().join(dir).exists() || dir.starts_with('/'));
    }
    assert!(!Path::new("/tmp/imagegen-cache").exists());
}

/// `nan` and `inf` in `book.toml` are refused, naming the key, never read as "no limit".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_that_are_not_numbers_are_refused() {
    for (setting, key) in [
        ("max-cost-per-build = nan", "max-cost-per-build"),
        ("max-cost-per-build = inf", "max-cost-per-build"),
        (
            "[preprocessor.imagegen.prices]\n\"gpt-image-2\" = -inf",
            "prices.gpt-image-2",
        ),
    ] {
        let book = openai_book("http://127.0.0.1:9", setting);
        let output = build(&book).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{setting}");
        assert!(
            stderr.contains(&format!("`preprocessor.imagegen.{key}`")),
            "{setting}: {stderr}"
        );
    }
}

#[cfg(unix)]
mod links {
    use super::*;
    use std::os::unix::fs::symlink;

    fn placeholder_book() -> TestBook {
        TestBook::example()
    }

    fn imagegen(book: &TestBook, args: &[&str]) -> Output {
        book.imagegen(args)
    }

    /// Links in the cache or the assets directory, committed by a pull request: no build
    /// writes through them, and `gc` deletes nothing behind them.
    #[test]
    fn links_out_of_the_book_are_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious.png"), b"not ours").unwrap();
        std::fs::write(
            outside.path().join("0123456789abcdef-480w-0badc0de.webp"),
            b"not ours",
        )
        .unwrap();
        for link in [
            ".imagegen",
            ".imagegen/masters",
            ".imagegen/local",
            "src/imagegen",
        ] {
            let book = placeholder_book();
            if link != ".imagegen" {
                std::fs::create_dir_all(book.root().join(".imagegen")).unwrap();
            }
            symlink(outside.path(), book.root().join(link)).unwrap();
            let output = book.mdbook(&["build"]).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success(),
                "{link}: a build through a link succeeded"
            );
            assert!(stderr.contains("symbolic link"), "{link}: {stderr}");
            imagegen(&book, &["gc"]);
            let names: Vec<String> = std::fs::read_dir(outside.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), 2, "{link}: {names:?}");
        }
    }

    /// A chapter that SUMMARY.md reaches through `..` gets no copies outside `src/`.
    #[test]
    fn chapters_outside_the_source_directory_get_no_files_written_beside_them() {
        let book = placeholder_book();
        book.write(
            "src/SUMMARY.md",
            "# Summary\n\n[Introduction](README.md)\n\n- [Outside](sub/../../outside/x.md)\n",
        );
        book.write(
            "outside/x.md",
            "# Outside\n\n```image-prompt alt=\"x\"\nA rock\n```\n",
        );
        std::fs::create_dir_all(book.root().join("src/sub")).unwrap();
        book.write(
            "book.toml",
            "[book]\ntitle = \"x\"\n\n[preprocessor.imagegen]\non-error = \"placeholder\"\n",
        );
        let output = book.mdbook(&["build"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!book.root().join("outside/imagegen").exists(), "{stderr}");
        assert!(!book.root().join("imagegen").exists(), "{stderr}");
    }

    /// Crafted records: a link to `/dev/zero`, a FIFO, a huge file, one that names a master
    /// outside the cache, one filed under another key. Builds skip them at once; `verify`
    /// reports each by the build's rules and one `--fix` leaves a sound cache.
    #[test]
    fn crafted_cache_files_are_refused_and_verify_fixes_them_in_one_run() {
        let book = placeholder_book();
        book.build();
        let records = book.root().join(".imagegen/local/records");
        let shard = std::fs::read_dir(&records)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let real = std::fs::read_dir(&shard)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&real).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let key = value["key"].as_str().unwrap().to_owned();
        let master16 = value["master"].as_str().unwrap()[..16].to_owned();
        let name = |nonce: &str| format!("{key}-{master16}-{nonce}.json");
        symlink("/dev/zero", shard.join(name("00000001"))).unwrap();
        let fifo = shard.join(name("00000002"));
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        std::fs::write(shard.join(name("00000003")), vec![b' '; 1 << 20]).unwrap();
        value["master"] = json!("../../../../../../etc/passwd");
        std::fs::write(shard.join(name("00000004")), value.to_string()).unwrap();
        // Another key's record, filed in this shard.
        let other = std::fs::read_dir(&records)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| *p != shard)
            .unwrap();
        let moved = std::fs::read_dir(&other)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::copy(&moved, shard.join(moved.file_name().unwrap())).unwrap();
        let started = std::time::Instant::now();
        let output = book.mdbook(&["build"]).output().unwrap();
        ok(&output);
        assert!(
            started.elapsed().as_secs() < 60,
            "a crafted file held the build up"
        );
        // A damaged index.
        std::fs::write(book.root().join(".imagegen/index.redb"), b"not a database").unwrap();

        let verify = imagegen(&book, &["verify"]);
        let report = String::from_utf8_lossy(&verify.stdout);
        assert!(!verify.status.success());
        assert!(
            report.matches("a build ignores this record").count() >= 5,
            "{report}"
        );
        assert!(
            report.contains("filed under another key's shard"),
            "{report}"
        );
        assert!(report.contains("the index is unusable"), "{report}");
        let fix = imagegen(&book, &["verify", "--fix"]);
        assert!(
            fix.status.success(),
            "{}",
            String::from_utf8_lossy(&fix.stdout)
        );
        let again = imagegen(&book, &["verify"]);
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stdout)
        );
        assert!(String::from_utf8_lossy(&again.stdout).contains("the cache is sound"));
        assert!(Path::new("/etc/passwd").exists());
    }

    /// An SVG master whose render has no bound, added to a cache (as a pull request could):
    /// `verify` says a build cannot show it, and says so at once.
    #[test]
    fn verify_flags_an_svg_master_whose_render_has_no_bound() {
        let book = placeholder_book();
        book.build();
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><defs><filter id="f"><feTurbulence baseFrequency="0.1" numOctaves="1000"/></filter></defs><rect width="400" height="300" filter="url(#f)"/></svg>"##;
        let hash = blake3::hash(svg.as_bytes()).to_hex().to_string();
        let dir = book.root().join(".imagegen/local/masters").join(&hash[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{hash}.svg")), svg).unwrap();
        let started = std::time::Instant::now();
        let verify = imagegen(&book, &["verify"]);
        let report = String::from_utf8_lossy(&verify.stdout);
        assert!(!verify.status.success(), "{report}");
        assert!(report.contains("numOctaves"), "{report}");
        assert!(report.contains("a build cannot show it"), "{report}");
        assert!(started.elapsed().as_secs() < 30);
    }
}

/// What a crafted text tries to read into the book: a file beside the book, one in `src/`,
/// and (never to be shown) the process's environment.
const SECRET_TEXT: &str = "CONFIDENTIAL-7f3a-do-not-publish";

/// mdBook's own directives, as a hostile provider or describer would write them into a text
/// that reaches a page: from `src/coast/`, `../../secret.txt` is beside the book.
const MDBOOK_DIRECTIVES: &str = "{{#include ../../secret.txt}} {{ #include ../secret.txt }} {{#playground ../secret.txt}} {{#title Owned}} {{#include /proc/self/environ}} \\{{#include ../secret.txt}}";

/// Writes the secret files and sets where imagegen runs: before mdBook's `links` preprocessor
/// (mdBook's default order, no `after`) or after it.
fn with_secrets(book: &TestBook, after_links: bool) {
    book.write("secret.txt", SECRET_TEXT);
    book.write("src/secret.txt", SECRET_TEXT);
    if !after_links {
        let toml = book.read("book.toml").replace("after = [\"links\"]\n", "");
        assert!(!toml.contains("after ="));
        book.write("book.toml", &toml);
    }
}

/// No rendered file, and nothing printed, holds the secret or the environment, and no page's
/// title was changed; the words themselves show as text.
fn assert_nothing_included(book: &TestBook, outputs: &[&Output]) {
    for output in outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains(SECRET_TEXT), "{stderr}");
        assert!(!stderr.contains("OPENAI_API_KEY="), "{stderr}");
    }
    for file in walk(&book.root().join("book")) {
        // mdBook copies the source directory's other files as they are.
        if file.ends_with("book/secret.txt") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET_TEXT),
            "included into {}",
            file.display()
        );
        assert!(!text.contains("OPENAI_API_KEY="), "{}", file.display());
        assert!(!text.contains("<title>Owned"), "{}", file.display());
    }
}

/// A provider's error that holds mdBook directives is shown as text in the error figure, whether
/// imagegen runs before mdBook's `links` preprocessor (which would expand them) or after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_text_never_becomes_an_mdbook_directive() {
    for after_links in [false, true] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/images/generations"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": { "message": format!("Bad request {MDBOOK_DIRECTIVES}"), "type": "invalid_request_error", "param": null, "code": null }
            })))
            .mount(&server)
            .await;
        let book = openai_book(&server.uri(), "on-error = \"placeholder\"");
        with_secrets(&book, after_links);
        let output = build(&book).await;
        ok(&output);
        assert_nothing_included(&book, &[&output]);
        let page = book.read("book/coast/lighthouses.html");
        let main = crate::support::main_of(&page);
        assert!(main.contains("imagegen-error"), "{main}");
        // Shown as the provider wrote it (mdBook 0.5 writes the page's character references
        // out as characters, after `links` has run).
        assert!(
            main.contains("Bad request {{#include ../../secret.txt}} {{ #include ../secret.txt }}"),
            "after links: {after_links}: {main}"
        );
    }
}
