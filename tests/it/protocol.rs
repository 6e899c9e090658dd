//! The binary over mdBook's stdin/stdout protocol, in both the 0.4 and the 0.5 shapes.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{BIN, TestBook};

fn run(input: &Value) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn chapter(name: &str, content: &str, path: &str) -> Value {
    json!({ "Chapter": {
        "name": name, "content": content, "number": [1], "sub_items": [],
        "path": path, "source_path": path, "parent_names": []
    }})
}

const CHAPTER: &str = "# One\n\n```image-prompt alt=\"A cat\"\nA cat on a mat\n```\n\nText.\n";

fn context(book: &TestBook, renderer: &str, version: &str) -> Value {
    json!({
        "root": book.root(),
        "config": { "book": { "title": "t", "src": "src" }, "preprocessor": { "imagegen": {} } },
        "renderer": renderer,
        "mdbook_version": version
    })
}

#[test]
fn answers_mdbook_0_5_in_its_own_shape() {
    let book = TestBook::example();
    let input = json!([
        context(&book, "html", "0.5.4"),
        { "items": [chapter("One", CHAPTER, "one.md"), "Separator", { "PartTitle": "Part" }] }
    ]);
    let (ok, stdout, stderr) = run(&input);
    assert!(ok, "{stderr}");
    let book_out: Value = serde_json::from_str(&stdout).expect("stdout is only the book JSON");
    assert_eq!(book_out["items"][1], "Separator");
    assert_eq!(book_out["items"][2], json!({ "PartTitle": "Part" }));
    let content = book_out["items"][0]["Chapter"]["content"].as_str().unwrap();
    assert!(
        content.contains(
            "<figure class=\"imagegen\"><picture><source type=\"image/webp\" srcset=\"imagegen/"
        ),
        "{content}"
    );
    assert!(content.ends_with("\n\nText.\n"));
}

#[test]
fn answers_mdbook_0_4_in_its_own_shape() {
    let book = TestBook::example();
    let input = json!([
        context(&book, "html", "0.4.52"),
        { "sections": [chapter("One", CHAPTER, "one.md")], "__non_exhaustive": null }
    ]);
    let (ok, stdout, stderr) = run(&input);
    assert!(ok, "{stderr}");
    let book_out: Value = serde_json::from_str(&stdout).unwrap();
    assert!(book_out.get("items").is_none());
    assert_eq!(book_out["__non_exhaustive"], Value::Null);
    let content = book_out["sections"][0]["Chapter"]["content"]
        .as_str()
        .unwrap();
    assert!(content.contains("<figure class=\"imagegen\">"), "{content}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn warns_once_about_an_unknown_mdbook_version() {
    let book = TestBook::example();
    let input = json!([context(&book, "html", "0.9.0"), { "items": [] }]);
    let (ok, _, stderr) = run(&input);
    assert!(ok);
    assert_eq!(
        stderr.matches("this is mdBook 0.9.0").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn the_test_renderer_gets_no_images_and_calls_no_provider() {
    let book = TestBook::example();
    let input =
        json!([context(&book, "test", "0.5.4"), { "items": [chapter("One", CHAPTER, "one.md")] }]);
    let (ok, stdout, stderr) = run(&input);
    assert!(ok, "{stderr}");
    let book_out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        book_out["items"][0]["Chapter"]["content"],
        "# One\n\n\n\nText.\n"
    );
    assert!(!book.root().join(".imagegen").exists());
}

#[test]
fn other_renderers_get_markdown_images() {
    let book = TestBook::example();
    let input = json!([context(&book, "markdown", "0.5.4"), { "items": [chapter("One", CHAPTER, "dir/one.md")] }]);
    let (ok, stdout, stderr) = run(&input);
    assert!(ok, "{stderr}");
    let book_out: Value = serde_json::from_str(&stdout).unwrap();
    let content = book_out["items"][0]["Chapter"]["content"].as_str().unwrap();
    assert!(content.contains("\n\n![A cat](../imagegen/"), "{content}");
}

#[test]
fn chapters_without_directives_come_back_byte_for_byte() {
    let book = TestBook::example();
    let text = "# Plain\r\n\r\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$$x^2$$ \\* not emphasis \\*\n\n```rust\n# fn main() {}\n```\n";
    let input =
        json!([context(&book, "html", "0.5.4"), { "items": [chapter("Plain", text, "plain.md")] }]);
    let (ok, stdout, _) = run(&input);
    assert!(ok);
    let book_out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(book_out["items"][0]["Chapter"]["content"], text);
}

#[test]
fn rejects_input_that_is_not_mdbooks() {
    let (ok, stdout, stderr) = run(&json!({ "not": "a pair" }));
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("mdBook's input is not a `[context, book]` pair"),
        "{stderr}"
    );
}

#[test]
fn supports_every_renderer() {
    for renderer in ["html", "markdown", "epub", "test"] {
        let status = Command::new(BIN)
            .args(["supports", renderer])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
