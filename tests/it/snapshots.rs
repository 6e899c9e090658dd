//! Snapshots of rewritten chapters: each `tests/fixtures/chapters/*.md` goes through the
//! preprocessor with the placeholder provider, and the result is compared with its snapshot.
//! Review changes with `cargo insta review`.

use mdbook_imagegen::ImageGen;
use serde_json::json;

#[test]
fn rewritten_chapters() {
    insta::glob!("../fixtures/chapters", "*.md", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let root = tempfile::tempdir().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let input = json!([
            {
                "root": root.path(),
                "config": { "book": { "src": "src" }, "preprocessor": { "imagegen": {
                    "on-error": "placeholder",
                    "styles": { "ink": "ink drawing" }
                } } },
                "renderer": "html",
                "mdbook_version": "0.5.4"
            },
            { "items": [{ "Chapter": {
                "name": name, "content": text, "number": null, "sub_items": [],
                "path": format!("guide/{name}"), "source_path": format!("guide/{name}"), "parent_names": []
            }}] }
        ]);
        let output = ImageGen::default().run_json(&input.to_string()).unwrap();
        let book: serde_json::Value = serde_json::from_str(&output).unwrap();
        let content = book["items"][0]["Chapter"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        insta::assert_snapshot!(content);
    });
}
