//! Alt text and long descriptions written by a vision model from the generated image: what the
//! model is asked, the JSON it must answer, how an answer is checked, and the record a
//! description is kept in. Pure: no I/O here (the wire formats are in `provider::describer`,
//! the files in `cache::descriptions`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::note::{self, Note, NoteKind};
use crate::outside::{self, Secrets};
use crate::vocab::ProviderKind;

/// The version of what describers are asked ([`INSTRUCTIONS`], [`question`], [`schema`]).
/// Part of every description's name: changing the wording means bumping it, and every image is
/// described again.
pub(crate) const INSTRUCTIONS_VERSION: u32 = 1;

/// The most characters of alt text, the common advice for screen readers (and what the
/// describer is asked for).
pub(crate) const ALT_MAX_CHARS: usize = 125;

/// The most characters of a long description.
pub(crate) const DESCRIPTION_MAX_CHARS: usize = 1500;

/// What every describer is told, before the image.
pub(crate) const INSTRUCTIONS: &str = "You write text alternatives for images in a book, following WCAG 1.1.1. \
Look at the image and answer with JSON {\"alt\": ..., \"description\": ...}. \
`alt` is at most 125 characters: one plain sentence or phrase that says what the image is there to show the reader, \
in the language of the chapter title. Do not start with \"Image of\" or \"Picture of\", do not mention that it was generated, \
and describe what is actually in the image, not what the prompt asked for. \
`description` is empty unless the image is complex (a diagram, a chart, a map, a scene whose details matter); \
then it is a longer description of at most 1500 characters, in plain sentences, without Markdown.";

/// What the describer knows about the image besides its pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    /// The directive's prompt.
    pub(crate) prompt: &'a str,
    pub(crate) caption: Option<&'a str>,
    /// The chapter's title, when mdBook gives one.
    pub(crate) chapter: Option<&'a str>,
}

/// The text that goes with the image.
pub(crate) fn question(about: &About<'_>) -> String {
    let mut text = String::from("The image was generated for a book from this prompt: ");
    text.push_str(about.prompt);
    if let Some(chapter) = about.chapter {
        text.push_str("\nChapter title: ");
        text.push_str(chapter);
    }
    if let Some(caption) = about.caption {
        text.push_str("\nCaption shown under the image: ");
        text.push_str(caption);
    }
    text.push_str("\nWrite its alt text and, if it is complex, its long description.");
    text
}

/// The JSON schema of an answer, for the providers' structured-output options.
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "alt": {
                "type": "string",
                "description": "At most 125 characters: what the image is there to show."
            },
            "description": {
                "type": "string",
                "description": "A long description for a complex image, or an empty string."
            }
        },
        "required": ["alt", "description"],
        "additionalProperties": false
    })
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    pub(crate) alt: String,
    /// Empty when the image needs none.
    pub(crate) description: String,
}

/// Why an answer is not a description, and whether asking again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unusable {
    pub(crate) message: String,
}

/// Reads a describer's answer text: JSON `{"alt", "description"}` (possibly inside a Markdown
/// code fence, as some local models wrap it), the book's secrets redacted, each field on one
/// line without control characters, the alt non-empty and at most [`ALT_MAX_CHARS`], the
/// description at most [`DESCRIPTION_MAX_CHARS`]. Never panics.
pub(crate) fn read_answer(text: &str, secrets: &Secrets) -> Result<Text, Unusable> {
    let unusable = |message: String| Unusable { message };
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed);
    let value: Value = serde_json::from_str(inner.trim()).map_err(|_| {
        unusable(format!(
            "the answer is not the JSON asked for: {}",
            secrets.clean(text, 120)
        ))
    })?;
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    let Some(alt) = field("alt") else {
        return Err(unusable(format!(
            "the answer has no `alt` string: {}",
            secrets.clean(text, 120)
        )));
    };
    // Cleaned with room to spare, so that an over-long alt is refused rather than cut.
    let alt = secrets.clean(alt, ALT_MAX_CHARS * 4);
    let description = secrets.clean(
        field("description").unwrap_or(""),
        DESCRIPTION_MAX_CHARS * 4,
    );
    if alt.is_empty() {
        return Err(unusable("the answer's `alt` is empty".into()));
    }
    let chars = alt.chars().count();
    if chars > ALT_MAX_CHARS {
        return Err(unusable(format!(
            "the answer's `alt` has {chars} characters, more than {ALT_MAX_CHARS}"
        )));
    }
    let chars = description.chars().count();
    if chars > DESCRIPTION_MAX_CHARS {
        return Err(unusable(format!(
            "the answer's `description` has {chars} characters, more than {DESCRIPTION_MAX_CHARS}"
        )));
    }
    Ok(Text { alt, description })
}

/// The id of a describer: its kind, model and instructions' version. A description's file is
/// named by its master and this id, so another model or new instructions describe again.
pub(crate) fn describer_id(kind: ProviderKind, model: &str) -> String {
    note::writer_id(
        "mdbook-imagegen describer",
        kind.as_str(),
        model,
        INSTRUCTIONS_VERSION,
    )
}

/// The format of description records.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// One description, as committed beside the masters
/// (`descriptions/ab/<master 16>-<describer>-<content 8>.json`).
/// Written once, never edited; two teammates who describe the same image at once write two
/// files, and the earliest wins, as with image records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) format: u32,
    /// The blake3 hash of the described master, 64 hex digits.
    pub(crate) master: String,
    /// [`describer_id`] of the describer.
    pub(crate) describer: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// [`INSTRUCTIONS_VERSION`] when it was written.
    pub(crate) instructions: u32,
    pub(crate) alt: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) cost_usd: f64,
    /// When it was written, RFC 3339 in UTC.
    pub(crate) created_at: String,
}

impl Note for Record {
    const KIND: NoteKind = NoteKind::Description;
    const FORMAT: u32 = RECORD_FORMAT;

    fn master(&self) -> &str {
        &self.master
    }

    fn by(&self) -> &str {
        &self.describer
    }

    fn created_at(&self) -> &str {
        &self.created_at
    }

    fn format(&self) -> u32 {
        self.format
    }

    /// Texts a figure can take (one line, no control characters, within the lengths asked
    /// for), names and a cost.
    fn check(&self) -> Result<(), String> {
        let record = self;
        let clean = outside::is_clean;
        if record.alt.is_empty()
            || !clean(&record.alt, ALT_MAX_CHARS)
            || record.alt.chars().count() > ALT_MAX_CHARS
        {
            return Err("its alt text is empty, too long or not one clean line".into());
        }
        if !clean(&record.description, DESCRIPTION_MAX_CHARS)
            || record.description.chars().count() > DESCRIPTION_MAX_CHARS
        {
            return Err("its description is too long or not one clean line".into());
        }
        if [&record.provider, &record.model, &record.created_at]
            .into_iter()
            .chain(&record.model_version)
            .chain(&record.request_id)
            .any(|t| !clean(t, outside::ID_CHARS))
        {
            return Err("a name in it is too long or not one clean line".into());
        }
        if !(record.cost_usd.is_finite() && record.cost_usd >= 0.0) {
            return Err("its cost is not an amount".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::of_book(["TEST_KEY"], &|name: &str| {
            (name == "TEST_KEY").then(|| "sk-secret-123456".to_owned())
        })
    }

    #[test]
    fn answers_are_checked() {
        let s = secrets();
        let ok = read_answer(r#"{"alt": "A red lighthouse", "description": ""}"#, &s).unwrap();
        assert_eq!(ok.alt, "A red lighthouse");
        let fenced = read_answer(
            "```json\n{\"alt\": \"A\\nlamp\", \"description\": \"d\"}\n```",
            &s,
        )
        .unwrap();
        assert_eq!(
            (fenced.alt.as_str(), fenced.description.as_str()),
            ("A lamp", "d")
        );
        for (answer, wanted) in [
            ("I cannot help with that.", "not the JSON"),
            (r#"{"description": "x"}"#, "no `alt`"),
            (r#"{"alt": "  ", "description": ""}"#, "empty"),
            (
                &format!(r#"{{"alt": "{}", "description": ""}}"#, "a".repeat(126)),
                "126 characters",
            ),
            (
                &format!(r#"{{"alt": "a", "description": "{}"}}"#, "d".repeat(1501)),
                "1501 characters",
            ),
        ] {
            let e = read_answer(answer, &s).unwrap_err();
            assert!(e.message.contains(wanted), "{answer}: {}", e.message);
        }
        let leaked = read_answer(
            r#"{"alt": "key sk-secret-123456\u0007", "description": ""}"#,
            &s,
        )
        .unwrap();
        assert_eq!(leaked.alt, "key [redacted]");
        let leaked = read_answer("no json sk-secret-123456", &s).unwrap_err();
        assert!(!leaked.message.contains("sk-secret"), "{}", leaked.message);
    }

    #[test]
    fn records_round_trip_and_crafted_ones_are_refused() {
        let record = Record {
            format: RECORD_FORMAT,
            master: "ab".repeat(32),
            describer: describer_id(ProviderKind::OpenAi, "gpt-5-mini"),
            provider: "openai".into(),
            model: "gpt-5-mini".into(),
            instructions: INSTRUCTIONS_VERSION,
            alt: "A lighthouse".into(),
            description: String::new(),
            model_version: None,
            request_id: Some("resp_1".into()),
            attempts: 1,
            cost_usd: 0.0004,
            created_at: "2026-11-30T00:00:00Z".into(),
        };
        let name = record.file_name();
        assert!(name.starts_with(&format!("{}-{}-", &record.master[..16], record.describer)));
        // A cost whose shortest printing does not read back bit for bit still names its file.
        let odd = Record {
            cost_usd: 0.000_193_600_000_000_000_02,
            ..record.clone()
        };
        assert!(Record::parse(&odd.to_json(), &odd.file_name()).is_ok());
        assert_eq!(Record::parse(&record.to_json(), &name).unwrap(), record);
        assert!(Record::parse(&record.to_json(), "other.json").is_err());
        // Edited in place: the name no longer matches the content.
        let edited = Record {
            alt: "Edited".into(),
            ..record.clone()
        };
        assert!(Record::parse(&edited.to_json(), &name).is_err());
        for crafted in [
            Record {
                alt: "a\u{1b}[2Jb".into(),
                ..record.clone()
            },
            Record {
                alt: "x".repeat(126),
                ..record.clone()
            },
            Record {
                alt: String::new(),
                ..record.clone()
            },
            Record {
                description: "line\nbreak".into(),
                ..record.clone()
            },
            Record {
                cost_usd: -1.0,
                ..record.clone()
            },
            Record {
                master: "zz".into(),
                ..record.clone()
            },
        ] {
            assert!(
                Record::parse(&crafted.to_json(), &crafted.file_name()).is_err(),
                "{crafted:?}"
            );
        }
    }

    #[test]
    fn another_model_or_new_instructions_describe_again() {
        let a = describer_id(ProviderKind::OpenAi, "gpt-5-mini");
        assert_ne!(a, describer_id(ProviderKind::OpenAi, "gpt-5-nano"));
        assert_ne!(a, describer_id(ProviderKind::Gemini, "gpt-5-mini"));
        assert_eq!(a.len(), 16);
        let q = question(&About {
            prompt: "A lamp",
            caption: Some("Fig. 1"),
            chapter: Some("Lights"),
        });
        assert!(q.contains("A lamp") && q.contains("Fig. 1") && q.contains("Lights"));
    }
}
