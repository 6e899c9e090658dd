//! mdBook's preprocessor protocol: the `[context, book]` JSON on stdin, the book on stdout.
//!
//! We read the JSON as untyped values rather than through mdBook's types, so that one binary
//! serves mdBook 0.4 (chapters under `sections`) and 0.5 (under `items`), and answers in the shape
//! it received with every field we do not touch passed through as it came.

use std::path::PathBuf;

use serde_json::Value;

use crate::error::{Error, Result};

/// The mdBook versions whose protocol this build speaks.
pub(crate) const SUPPORTED_MDBOOK: &str = ">=0.4.21, <0.6.0";

/// What we use of mdBook's context.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    /// The book's root directory (where `book.toml` is).
    pub(crate) root: PathBuf,
    /// The renderer this run prepares the book for (`html`, `markdown`, `test`, …).
    pub(crate) renderer: &'a str,
    pub(crate) mdbook_version: &'a str,
    /// The source directory, relative to the root (`book.src`).
    pub(crate) src: &'a str,
    /// The build directory, relative to the root (`book`), which every build empties.
    pub(crate) build_dir: &'a str,
    /// Our `[preprocessor.imagegen]` table.
    pub(crate) table: Option<&'a Value>,
}

/// One chapter, borrowed from the book.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chapter<'a> {
    /// The chapter's position in a depth-first walk of the book.
    pub(crate) ordinal: usize,
    pub(crate) content: &'a str,
    /// The chapter's output path relative to the source directory (`guide/intro.md`).
    pub(crate) path: Option<&'a str>,
    /// The chapter's source file relative to the source directory.
    pub(crate) source_path: Option<&'a str>,
    /// The chapter's title.
    pub(crate) name: Option<&'a str>,
}

/// Splits mdBook's input into its context and its book.
pub(crate) fn parse(input: &str) -> Result<(Value, Value)> {
    let value: Value =
        serde_json::from_str(input).map_err(|e| Error::Input(format!("invalid JSON ({e})")))?;
    match value {
        Value::Array(pair) if pair.len() == 2 => {
            let mut pair = pair.into_iter();
            let context = pair.next().unwrap_or_default();
            let book = pair.next().unwrap_or_default();
            Ok((context, book))
        }
        _ => Err(Error::Input(
            "expected a JSON array of two elements; this program is run by mdBook".into(),
        )),
    }
}

impl<'a> Context<'a> {
    /// Reads what we need from the context object.
    pub(crate) fn read(context: &'a Value) -> Result<Context<'a>> {
        let text = |pointer: &str| context.pointer(pointer).and_then(Value::as_str);
        let root = text("/root")
            .ok_or_else(|| Error::Input("the context has no `root`".into()))?
            .into();
        Ok(Context {
            root,
            renderer: text("/renderer").unwrap_or("html"),
            mdbook_version: text("/mdbook_version").unwrap_or(""),
            src: text("/config/book/src").unwrap_or("src"),
            build_dir: text("/config/build/build-dir").unwrap_or("book"),
            table: context
                .pointer("/config/preprocessor/imagegen")
                .filter(|v| !v.is_null()),
        })
    }
}

/// The key that holds the book's items: `items` (mdBook 0.5) or `sections` (0.4).
pub(crate) fn items_key(book: &Value) -> Result<&'static str> {
    ["items", "sections"]
        .into_iter()
        .find(|key| book.get(key).is_some_and(Value::is_array))
        .ok_or_else(|| Error::Input("the book has neither `items` nor `sections`".into()))
}

/// Every chapter of the book, depth first, drafts included.
pub(crate) fn chapters<'a>(book: &'a Value, key: &str) -> Vec<Chapter<'a>> {
    fn walk<'a>(items: &'a [Value], out: &mut Vec<Chapter<'a>>) {
        for item in items {
            let Some(chapter) = item.get("Chapter") else {
                continue;
            };
            out.push(Chapter {
                ordinal: out.len(),
                content: chapter.get("content").and_then(Value::as_str).unwrap_or(""),
                path: chapter.get("path").and_then(Value::as_str),
                source_path: chapter.get("source_path").and_then(Value::as_str),
                name: chapter.get("name").and_then(Value::as_str),
            });
            if let Some(Value::Array(sub_items)) = chapter.get("sub_items") {
                walk(sub_items, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = book.get(key) {
        walk(items, &mut out);
    }
    out
}

/// Replaces the content of the chapters at the given ordinals (sorted ascending).
pub(crate) fn set_contents(book: &mut Value, key: &str, mut contents: Vec<(usize, String)>) {
    fn walk(
        items: &mut [Value],
        ordinal: &mut usize,
        contents: &mut std::iter::Peekable<std::vec::IntoIter<(usize, String)>>,
    ) {
        for item in items {
            let Some(chapter) = item.get_mut("Chapter") else {
                continue;
            };
            if contents.peek().is_some_and(|(o, _)| o == ordinal)
                && let Some((_, content)) = contents.next()
            {
                chapter["content"] = Value::String(content);
            }
            *ordinal += 1;
            if let Some(Value::Array(sub_items)) = chapter.get_mut("sub_items") {
                walk(sub_items, ordinal, contents);
            }
        }
    }
    if contents.is_empty() {
        return;
    }
    contents.sort_by_key(|(ordinal, _)| *ordinal);
    if let Some(Value::Array(items)) = book.get_mut(key) {
        walk(items, &mut 0, &mut contents.into_iter().peekable());
    }
}

/// Whether a version of mdBook speaks a protocol this build understands; unknown versions
/// (unparseable) are given the benefit of the doubt.
pub(crate) fn is_supported(mdbook_version: &str) -> bool {
    let requirement = semver::VersionReq::parse(SUPPORTED_MDBOOK).expect("a valid requirement");
    semver::Version::parse(mdbook_version).map_or(true, |v| requirement.matches(&v))
}

/// Reads mdBook's `[context, book]` JSON from `reader` as it arrives, rather than after the
/// last byte: mdBook writes the book in many small pieces, and a preprocessor that waits for
/// all of them before starting wastes that time. `on_context` gets the context as soon as it is
/// parsed, and `on_content` every chapter's content in the order it arrives (depth first).
pub(crate) fn read<R: std::io::Read>(
    reader: R,
    on_context: impl FnOnce(&Value),
    on_content: &mut dyn FnMut(&str),
) -> Result<(Value, Value)> {
    use serde::de::DeserializeSeed;
    let mut deserializer =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, reader));
    let hook = std::cell::RefCell::new(on_content);
    let pair = stream::Pair {
        on_context: std::cell::Cell::new(Some(on_context)),
        on_content: &hook,
    };
    let parsed = pair
        .deserialize(&mut deserializer)
        .and_then(|pair| deserializer.end().map(|()| pair));
    parsed.map_err(|e| {
        if e.is_io() {
            Error::Pipe {
                action: "read mdBook's input on stdin",
                source: e.into(),
            }
        } else if e.is_data() {
            Error::Input(
                "expected a JSON array of two elements; this program is run by mdBook".into(),
            )
        } else {
            Error::Input(format!("invalid JSON ({e})"))
        }
    })
}

/// The streaming reader's serde plumbing: a `[context, book]` pair, and a JSON value that hands
/// every string under a `content` key to a hook as it is parsed.
mod stream {
    use std::cell::{Cell, RefCell};
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub(super) type Hook<'h> = RefCell<&'h mut dyn FnMut(&str)>;

    pub(super) struct Pair<'h, 'f, C> {
        pub(super) on_context: Cell<Option<C>>,
        pub(super) on_content: &'h Hook<'f>,
    }

    impl<'de, C: FnOnce(&Value)> DeserializeSeed<'de> for Pair<'_, '_, C> {
        type Value = (Value, Value);

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de, C: FnOnce(&Value)> Visitor<'de> for Pair<'_, '_, C> {
        type Value = (Value, Value);

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of two elements, the context and the book")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let context: Value = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(0, &self))?;
            if let Some(on_context) = self.on_context.take() {
                on_context(&context);
            }
            let book = seq
                .next_element_seed(Tapped {
                    hook: self.on_content,
                    content: false,
                })?
                .ok_or_else(|| de::Error::invalid_length(1, &self))?;
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(3, &self));
            }
            Ok((context, book))
        }
    }

    /// A JSON value; when it is a string under a `content` key, the hook sees it.
    struct Tapped<'h, 'f> {
        hook: &'h Hook<'f>,
        content: bool,
    }

    impl<'de> DeserializeSeed<'de> for Tapped<'_, '_> {
        type Value = Value;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Tapped<'_, '_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            if self.content {
                (self.hook.borrow_mut())(v);
            }
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            if self.content {
                (self.hook.borrow_mut())(&v);
            }
            Ok(Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(Tapped {
                hook: self.hook,
                content: false,
            })? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(Tapped {
                    hook: self.hook,
                    content: key == "content",
                })?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    const INPUT: &str = r#"[{"root":"/b","config":{"x":{"content":"not a chapter"}},"n":1.5},{"items":[{"Chapter":{"name":"a","content":"A","number":[1],"sub_items":[{"Chapter":{"name":"b","content":"B","sub_items":[]}}]}},"Separator",{"PartTitle":"P"},{"Chapter":{"name":"c","content":"C\n```image-prompt\nx\n```","sub_items":[]}}],"__non_exhaustive":null}]"#;

    #[test]
    fn read_hands_over_the_context_then_each_content_in_book_order() {
        let seen = RefCell::new(Vec::new());
        let (context, book) = read(
            INPUT.as_bytes(),
            |context| {
                seen.borrow_mut()
                    .push(format!("context {}", context["root"]))
            },
            &mut |content| seen.borrow_mut().push(content.to_owned()),
        )
        .unwrap();
        assert_eq!(
            seen.into_inner(),
            ["context \"/b\"", "A", "B", "C\n```image-prompt\nx\n```"]
        );
        // The values are what a plain parse gives, key order and all.
        let (plain_context, plain_book) = parse(INPUT).unwrap();
        assert_eq!(context, plain_context);
        assert_eq!(book, plain_book);
        assert_eq!(
            serde_json::to_string(&[&context, &book]).unwrap(),
            serde_json::to_string(&serde_json::from_str::<Value>(INPUT).unwrap()).unwrap()
        );
        let chapters = chapters(&book, "items");
        let contents: Vec<&str> = chapters.iter().map(|c| c.content).collect();
        assert_eq!(contents, ["A", "B", "C\n```image-prompt\nx\n```"]);
    }

    #[test]
    fn read_refuses_what_mdbook_never_sends() {
        for (input, expected) in [
            ("{}", "expected a JSON array of two elements"),
            ("[{}, {}, {}]", "expected a JSON array of two elements"),
            ("[{}]", "expected a JSON array of two elements"),
            ("[{}, {\"items\": [", "invalid JSON"),
            ("[{}, {}] trailing", "invalid JSON"),
        ] {
            let error = read(input.as_bytes(), |_| {}, &mut |_| {}).unwrap_err();
            assert!(error.to_string().contains(expected), "{input}: {error}");
        }
    }
}
