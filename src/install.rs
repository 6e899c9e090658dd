//! `mdbook-imagegen install`: adds the preprocessor to `book.toml` without disturbing the rest
//! of the file (its comments, order and formatting stay). Pure: text in, text out.

use toml_edit::{Array, DocumentMut, Item, Table, value};

/// What `install` does to a `book.toml`.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// The new text, with `[preprocessor.imagegen]` and `after = ["links"]` added.
    Added(String),
    /// The table was there already; the file is left as it is.
    AlreadyThere,
}

/// Adds `[preprocessor.imagegen]` with `after = ["links"]` (so directives in `{{#include}}`d
/// files are seen) to the text of a `book.toml`.
pub fn install(book_toml: &str) -> Result<Installed, String> {
    let mut document: DocumentMut = book_toml
        .parse()
        .map_err(|e| format!("book.toml is not valid TOML: {e}"))?;
    let preprocessors = document
        .entry("preprocessor")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_mut()
        .ok_or_else(|| "`preprocessor` in book.toml is not a table".to_owned())?;
    if preprocessors.contains_key("imagegen") {
        return Ok(Installed::AlreadyThere);
    }
    let mut table = Table::new();
    let mut after = Array::new();
    after.push("links");
    table.insert("after", value(after));
    preprocessors.insert("imagegen", Item::Table(table));
    Ok(Installed::Added(document.to_string()))
}

/// Writes a `book.toml` that [`install`] changed, atomically (a crash leaves the old file or
/// the new one, never half of either).
pub fn write_book_toml(book_root: &std::path::Path, text: &str) -> std::io::Result<()> {
    crate::files::write_atomic(
        book_root,
        book_root,
        &book_root.join("book.toml"),
        text.as_bytes(),
    )
}

/// Creates the cache directory of a book, with the `.gitignore` that keeps its local parts out
/// of git, when missing. Returns the directory.
pub fn prepare_cache(book_root: &std::path::Path) -> crate::Result<std::path::PathBuf> {
    let root = book_root.join(".imagegen");
    crate::cache::Cache::open(&root).ensure_layout()?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_table_and_keeps_the_rest_byte_for_byte() {
        let before = "[book]\n# The title, shown in the sidebar.\ntitle = \"Notes\"   # aligned comment\nauthors = [ \"Ada\" ]\n\n[output.html]\ndefault-theme = \"light\"\n";
        let Installed::Added(after) = install(before).unwrap() else {
            panic!("not added")
        };
        assert!(after.starts_with(before), "{after}");
        assert_eq!(
            &after[before.len()..],
            "\n[preprocessor.imagegen]\nafter = [\"links\"]\n"
        );
    }

    #[test]
    fn sits_beside_other_preprocessors() {
        let before =
            "[book]\ntitle = \"Notes\"\n\n[preprocessor.admonish]\ncommand = \"mdbook-admonish\"\n";
        let Installed::Added(after) = install(before).unwrap() else {
            panic!("not added")
        };
        assert!(after.starts_with(before), "{after}");
        assert!(after.contains("[preprocessor.imagegen]\nafter = [\"links\"]"));
    }

    #[test]
    fn leaves_an_existing_table_alone() {
        let text = "[preprocessor.imagegen]\nprovider = \"openai\"\n";
        assert_eq!(install(text).unwrap(), Installed::AlreadyThere);
    }

    #[test]
    fn says_what_is_wrong_with_a_broken_file() {
        let error = install("[book\n").unwrap_err();
        assert!(error.starts_with("book.toml is not valid TOML"), "{error}");
        let error = install("preprocessor = 3\n").unwrap_err();
        assert!(error.contains("not a table"), "{error}");
    }
}
