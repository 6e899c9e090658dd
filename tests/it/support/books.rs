//! The "Lights of the Coast" book with the settings and providers a test gives it.

use super::TestBook;

/// The example book whose `book.toml` uses `provider`, has `settings` in its table, and defines
/// each `(name, body)` of `profiles` as a provider profile.
pub(crate) fn lights(provider: &str, settings: &str, profiles: &[(&str, &str)]) -> TestBook {
    let mut toml = toml(
        "Lights of the Coast",
        &format!("provider = \"{provider}\"\nretries = 0\n{settings}\n"),
    );
    for (name, body) in profiles {
        toml += &format!("\n[preprocessor.imagegen.providers.{name}]\n{body}\n");
    }
    toml += r#"
[preprocessor.imagegen.styles]
engraving = "black and white copperplate engraving, fine cross-hatching"
"#;
    let book = TestBook::example();
    book.write("book.toml", &toml);
    book
}

/// A `book.toml` titled `title` whose `[preprocessor.imagegen]` runs after `links` and holds
/// `rest` (which may open further tables).
pub(crate) fn toml(title: &str, rest: &str) -> String {
    format!("[book]\ntitle = \"{title}\"\n\n[preprocessor.imagegen]\nafter = [\"links\"]\n{rest}")
}
