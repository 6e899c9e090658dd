//! Judgements: a vision model checks a generated image against its prompt. It splits the prompt
//! into atomic yes/no questions (objects, attributes, counts, relations, text to draw), answers
//! each, lists defects and reads back any drawn text, in one answer. The score is ours, not the
//! model's: the share of questions answered yes, lowered by major defects (see [`score`]).
//! What the judge is asked, the JSON it must answer, how an answer is checked, the score, and
//! the record a judgement is kept in. Pure: no I/O here (the wire formats are
//! `provider::describer`'s, the files `cache::notes`').

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::note::{self, Note, NoteKind};
use crate::outside::{self, Secrets};
use crate::vocab::{ProviderKind, edit_distance};

/// The version of what judges are asked ([`INSTRUCTIONS`], [`question`], [`schema`]) and of
/// the score's formula. Part of every judgement's name: changing either means bumping it.
pub(crate) const INSTRUCTIONS_VERSION: u32 = 1;

/// The most questions (and defects) an answer keeps.
pub(crate) const MAX_CHECKS: usize = 40;

/// The most characters of a question, a defect's place or the text seen.
pub(crate) const MAX_TEXT_CHARS: usize = 300;

/// How much one major defect lowers the score.
pub(crate) const MAJOR_PENALTY: f64 = 0.25;

/// The normalised edit distance above which the text drawn is not the text asked for.
pub(crate) const TEXT_TOLERANCE: f64 = 0.2;

/// The defect kinds an answer may name.
pub(crate) const DEFECT_KINDS: [&str; 7] = [
    "text", "anatomy", "artifact", "missing", "extra", "style", "other",
];

/// What every judge is told, before the image.
pub(crate) const INSTRUCTIONS: &str = "You check images generated for a book against what was asked for. \
First split the request into atomic facts a viewer can check in the picture: each object, each attribute (colour, material, shape, style), \
each count, each spatial relation, and each piece of text to be drawn. Write one yes/no question per fact, at most 40, in the order of the request. \
Then look at the image and answer each question: \"yes\" only when the image clearly shows it, else \"no\". \
List the image's defects: \"text\" (drawn text misspelled, garbled or not the text asked for), \"anatomy\" (extra or missing fingers, limbs, faces), \
\"artifact\" (glitches, seams, smears, watermarks), \"missing\" (something asked for is absent), \"extra\" (something not asked for that spoils the image), \
\"style\" (ignores the style asked for), \"other\"; each \"minor\" or \"major\" (a reader would notice and be misled or put off), with where it is. \
In `text_seen` write all legible text in the image exactly as drawn, or null when there is none. \
Answer with JSON {\"checks\": [{\"question\", \"answer\"}], \"defects\": [{\"kind\", \"severity\", \"where\"}], \"text_seen\"}.";

/// What the judge knows about the image besides its pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    /// The directive's prompt, as the author wrote it.
    pub(crate) prompt: &'a str,
    /// The prompt of the directive's style, when it has one.
    pub(crate) style: Option<&'a str>,
    pub(crate) caption: Option<&'a str>,
}

/// The text that goes with the image.
pub(crate) fn question(about: &About<'_>) -> String {
    let mut text = String::from("The image was generated for a book from this request: ");
    text.push_str(about.prompt);
    if let Some(style) = about.style.filter(|s| !s.trim().is_empty()) {
        text.push_str("\nThe book's house style, which it should follow: ");
        text.push_str(style);
    }
    if let Some(caption) = about.caption {
        text.push_str("\nCaption shown under it (context, not a requirement): ");
        text.push_str(caption);
    }
    text.push_str("\nWrite the questions, answer them, list the defects and the text you see.");
    text
}

/// The JSON schema of an answer, for the providers' structured-output options (every property
/// required and no others, as OpenAI's strict mode wants).
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "checks": {
                "type": "array",
                "description": "One atomic yes/no question per fact of the request, answered.",
                "items": {
                    "type": "object",
                    "properties": {
                        "question": { "type": "string" },
                        "answer": { "type": "string", "enum": ["yes", "no"] }
                    },
                    "required": ["question", "answer"],
                    "additionalProperties": false
                }
            },
            "defects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": { "type": "string", "enum": DEFECT_KINDS },
                        "severity": { "type": "string", "enum": ["minor", "major"] },
                        "where": { "type": "string" }
                    },
                    "required": ["kind", "severity", "where"],
                    "additionalProperties": false
                }
            },
            "text_seen": {
                "type": ["string", "null"],
                "description": "All legible text in the image exactly as drawn, or null."
            }
        },
        "required": ["checks", "defects", "text_seen"],
        "additionalProperties": false
    })
}

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    pub(crate) question: String,
    /// `true` for "yes".
    pub(crate) yes: bool,
}

/// One defect the judge saw (or the text check found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defect {
    /// One of [`DEFECT_KINDS`].
    pub(crate) kind: String,
    pub(crate) major: bool,
    #[serde(rename = "where")]
    pub(crate) place: String,
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) checks: Vec<Check>,
    pub(crate) defects: Vec<Defect>,
    pub(crate) text_seen: Option<String>,
}

/// Reads a judge's answer text: the JSON of [`schema`] (possibly inside a Markdown code fence),
/// the book's secrets redacted, every text on one line without control characters and cut at
/// [`MAX_TEXT_CHARS`], at most [`MAX_CHECKS`] questions and defects (the rest dropped), every
/// answer, kind and severity one the schema allows. At least one question. Never panics.
pub(crate) fn read_answer(text: &str, secrets: &Secrets) -> Result<Verdict, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed);
    let value: Value = serde_json::from_str(inner.trim()).map_err(|_| {
        format!(
            "the answer is not the JSON asked for: {}",
            secrets.clean(text, 120)
        )
    })?;
    // One short of the cap: a cut text ends with `…`.
    let clean = |text: &str| secrets.clean(text, MAX_TEXT_CHARS - 1);
    fn field<'v>(item: &'v Value, name: &str) -> Option<&'v str> {
        item.get(name).and_then(Value::as_str).map(str::trim)
    }
    let list = |name: &str| -> Result<&Vec<Value>, String> {
        value
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("the answer has no `{name}` list"))
    };
    let mut checks = Vec::new();
    for item in list("checks")?.iter().take(MAX_CHECKS) {
        let question = clean(field(item, "question").unwrap_or(""));
        let yes = match field(item, "answer")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yes") => true,
            Some("no") => false,
            _ => return Err("a check's `answer` is not \"yes\" or \"no\"".into()),
        };
        if question.is_empty() {
            return Err("a check has no question".into());
        }
        checks.push(Check { question, yes });
    }
    if checks.is_empty() {
        return Err("the answer asks no question about the image".into());
    }
    let mut defects = Vec::new();
    for item in list("defects")?.iter().take(MAX_CHECKS) {
        let kind = field(item, "kind").map(str::to_ascii_lowercase);
        let Some(kind) = kind.filter(|k| DEFECT_KINDS.contains(&k.as_str())) else {
            return Err(format!(
                "a defect's `kind` is not one of {}",
                DEFECT_KINDS.join(", ")
            ));
        };
        let major = match field(item, "severity")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("major") => true,
            Some("minor") => false,
            _ => return Err("a defect's `severity` is not \"minor\" or \"major\"".into()),
        };
        let place = clean(field(item, "where").unwrap_or(""));
        defects.push(Defect { kind, major, place });
    }
    let text_seen = match value.get("text_seen") {
        None | Some(Value::Null) => None,
        Some(Value::String(seen)) => Some(clean(seen)).filter(|s| !s.is_empty()),
        Some(_) => return Err("the answer's `text_seen` is neither text nor null".into()),
    };
    Ok(Verdict {
        checks,
        defects,
        text_seen,
    })
}

/// The texts a prompt asks to be drawn: what it holds in double quotes, straight (`"…"`) or
/// curly (`“…”`), one to 100 characters each.
pub(crate) fn quoted_texts(prompt: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (at, c) in prompt.char_indices() {
        match (open, c) {
            (None, '"') => open = Some(('"', at + 1)),
            (None, '“') => open = Some(('”', at + c.len_utf8())),
            (Some((close, from)), c) if c == close => {
                let text = prompt[from..at].trim();
                if (1..=100).contains(&text.chars().count()) {
                    texts.push(text.to_owned());
                }
                open = None;
            }
            _ => {}
        }
    }
    texts
}

/// A text folded for comparison: lower case, letters and digits, single spaces.
fn fold(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The normalised edit distance (0 same, 1 nothing alike) between the text asked for and the
/// closest run of words in the text seen, folded: a sign that reads "OPEN 24 HOURS" beside
/// other words still matches "Open 24 hours".
pub(crate) fn text_distance(wanted: &str, seen: &str) -> f64 {
    let wanted = fold(wanted);
    let seen = fold(seen);
    if wanted.is_empty() {
        return 0.0;
    }
    let words: Vec<&str> = seen.split(' ').collect();
    let count = wanted.split(' ').count();
    let chars = wanted.chars().count();
    let mut best = 1.0_f64;
    for length in count.saturating_sub(1).max(1)..=count + 1 {
        for window in words.windows(length.min(words.len()).max(1)) {
            let run = window.join(" ");
            let distance = edit_distance(&wanted, &run) as f64;
            best = best.min(distance / chars.max(run.chars().count()) as f64);
        }
    }
    best
}

/// The defects the text check adds: for each text the prompt quotes that the text seen does
/// not hold (within [`TEXT_TOLERANCE`]), a major `text` defect, unless the judge already
/// reported a major `text` defect (one fault is not counted twice).
pub(crate) fn text_defects(prompt: &str, verdict: &Verdict) -> Vec<Defect> {
    if verdict.defects.iter().any(|d| d.major && d.kind == "text") {
        return Vec::new();
    }
    let seen = verdict.text_seen.as_deref().unwrap_or("");
    quoted_texts(prompt)
        .into_iter()
        .take(MAX_CHECKS)
        .filter(|wanted| seen.is_empty() || text_distance(wanted, seen) > TEXT_TOLERANCE)
        .map(|wanted| Defect {
            kind: "text".into(),
            major: true,
            place: outside::clean(
                &format!(
                    "asked for \"{wanted}\", read {}",
                    if seen.is_empty() {
                        "no text".to_owned()
                    } else {
                        format!("\"{seen}\"")
                    }
                ),
                MAX_TEXT_CHARS - 1,
            ),
        })
        .collect()
}

/// The score, 0 to 1: the share of questions answered yes, less [`MAJOR_PENALTY`] for each
/// major defect (minor ones are listed, not counted), never below 0; rounded to two places.
pub(crate) fn score(checks: &[Check], defects: &[Defect]) -> f64 {
    if checks.is_empty() {
        return 0.0;
    }
    let yes = checks.iter().filter(|c| c.yes).count() as f64 / checks.len() as f64;
    let majors = defects.iter().filter(|d| d.major).count() as f64;
    ((yes - MAJOR_PENALTY * majors).clamp(0.0, 1.0) * 100.0).round() / 100.0
}

/// A figure's verdict under a book's `min-score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mark {
    Pass,
    Review,
}

impl Mark {
    pub(crate) fn of(score: f64, min_score: f64) -> Mark {
        if score >= min_score {
            Mark::Pass
        } else {
            Mark::Review
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mark::Pass => "pass",
            Mark::Review => "review",
        }
    }
}

/// What a gated figure's next attempt adds to its prompt: the failed questions and the major
/// defects of the attempt before, as corrections, at most 600 characters. Empty when there is
/// nothing to correct.
pub(crate) fn corrections(record: &Record) -> String {
    let failed: Vec<&str> = record
        .checks
        .iter()
        .filter(|c| !c.yes)
        .map(|c| c.question.as_str())
        .collect();
    let avoid: Vec<String> = record
        .defects
        .iter()
        .filter(|d| d.major)
        .map(|d| format!("{} ({})", d.kind, d.place))
        .collect();
    let mut text = String::new();
    if !failed.is_empty() {
        text.push_str("Make sure the answer to each of these is yes: ");
        text.push_str(&failed.join(" "));
    }
    if !avoid.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str("Avoid these defects of an earlier attempt: ");
        text.push_str(&avoid.join("; "));
        text.push('.');
    }
    outside::clean(&text, 600)
}

/// The id of a judge: its kind, model and instructions' version.
pub(crate) fn judge_id(kind: ProviderKind, model: &str) -> String {
    note::writer_id(
        "mdbook-imagegen judge",
        kind.as_str(),
        model,
        INSTRUCTIONS_VERSION,
    )
}

/// The format of judgement records.
pub(crate) const RECORD_FORMAT: u32 = 1;

/// One judgement, as committed beside the masters
/// (`judgements/ab/<master 16>-<judge>-<content 8>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) format: u32,
    /// The blake3 hash of the judged master, 64 hex digits.
    pub(crate) master: String,
    /// [`judge_id`] of the judge.
    pub(crate) judge: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// [`INSTRUCTIONS_VERSION`] when it was written.
    pub(crate) instructions: u32,
    /// [`score`] of the checks and defects.
    pub(crate) score: f64,
    pub(crate) checks: Vec<Check>,
    /// The judge's defects, then the text check's.
    pub(crate) defects: Vec<Defect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) cost_usd: f64,
    /// When it was written, RFC 3339 in UTC.
    pub(crate) created_at: String,
}

impl Record {
    /// The questions answered no.
    pub(crate) fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.yes)
    }
}

impl Note for Record {
    const KIND: NoteKind = NoteKind::Judgement;
    const FORMAT: u32 = RECORD_FORMAT;

    fn master(&self) -> &str {
        &self.master
    }

    fn by(&self) -> &str {
        &self.judge
    }

    fn created_at(&self) -> &str {
        &self.created_at
    }

    fn format(&self) -> u32 {
        self.format
    }

    /// Every text one clean line within its length, at most [`MAX_CHECKS`] questions (and
    /// twice as many defects, the text check's included), defects of known kinds, a score that
    /// is the formula's.
    fn check(&self) -> Result<(), String> {
        let record = self;
        let clean = outside::is_clean;
        let texts = record
            .checks
            .iter()
            .map(|c| c.question.as_str())
            .chain(record.defects.iter().map(|d| d.place.as_str()))
            .chain(record.text_seen.as_deref());
        if record.checks.is_empty()
            || record.checks.len() > MAX_CHECKS
            || record.defects.len() > MAX_CHECKS * 2
        {
            return Err(
                "it has no question, or more questions or defects than a judge gives".into(),
            );
        }
        if texts
            .into_iter()
            .any(|t| !clean(t, MAX_TEXT_CHARS) || t.chars().count() > MAX_TEXT_CHARS)
        {
            return Err("a text in it is too long or not one clean line".into());
        }
        if record
            .defects
            .iter()
            .any(|d| !DEFECT_KINDS.contains(&d.kind.as_str()))
        {
            return Err("a defect in it is of no known kind".into());
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
        if record.score != score(&record.checks, &record.defects) {
            return Err("its score is not the one its checks and defects give".into());
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

    fn check(question: &str, yes: bool) -> Check {
        Check {
            question: question.into(),
            yes,
        }
    }

    fn defect(kind: &str, major: bool) -> Defect {
        Defect {
            kind: kind.into(),
            major,
            place: "left".into(),
        }
    }

    #[test]
    fn the_score_is_the_share_of_yes_less_a_quarter_per_major_defect() {
        let four = [
            check("a", true),
            check("b", true),
            check("c", true),
            check("d", false),
        ];
        assert_eq!(score(&four, &[]), 0.75);
        assert_eq!(score(&four, &[defect("artifact", false)]), 0.75);
        assert_eq!(score(&four, &[defect("anatomy", true)]), 0.5);
        let majors: Vec<Defect> = (0..5).map(|_| defect("text", true)).collect();
        assert_eq!(score(&four, &majors), 0.0);
        assert_eq!(score(&[check("a", true)], &[]), 1.0);
        assert_eq!(score(&[], &[]), 0.0);
        let thirds = [check("a", true), check("b", true), check("c", false)];
        assert_eq!(score(&thirds, &[]), 0.67);
        assert_eq!(Mark::of(0.8, 0.8), Mark::Pass);
        assert_eq!(Mark::of(0.79, 0.8), Mark::Review);
    }

    #[test]
    fn answers_are_checked_capped_and_cleaned() {
        let s = secrets();
        let ok = read_answer(
            r#"```json
{"checks": [{"question": "Is there a lighthouse?", "answer": "Yes"}, {"question": "Is it red?", "answer": "no"}],
 "defects": [{"kind": "artifact", "severity": "minor", "where": "sky"}], "text_seen": null}
```"#,
            &s,
        )
        .unwrap();
        assert_eq!(ok.checks.len(), 2);
        assert!(ok.checks[0].yes && !ok.checks[1].yes);
        assert_eq!(ok.defects[0].kind, "artifact");
        assert_eq!(ok.text_seen, None);
        let many: Vec<Value> = (0..100)
            .map(|i| json!({"question": format!("q{i} {}", "x".repeat(400)), "answer": "yes"}))
            .collect();
        let capped = read_answer(
            &json!({"checks": many, "defects": [], "text_seen": "sk-secret-123456\u{1b}[2J"})
                .to_string(),
            &s,
        )
        .unwrap();
        assert_eq!(capped.checks.len(), MAX_CHECKS);
        assert!(capped.checks[0].question.chars().count() <= MAX_TEXT_CHARS);
        assert_eq!(capped.text_seen.as_deref(), Some("[redacted] [2J"));
        for (answer, wanted) in [
            ("I cannot judge this.", "not the JSON"),
            (r#"{"defects": [], "text_seen": null}"#, "no `checks`"),
            (
                r#"{"checks": [], "defects": [], "text_seen": null}"#,
                "no question",
            ),
            (
                r#"{"checks": [{"question": "a", "answer": "maybe"}], "defects": [], "text_seen": null}"#,
                "\"yes\" or \"no\"",
            ),
            (
                r#"{"checks": [{"question": "a", "answer": "yes"}], "defects": [{"kind": "vibes", "severity": "major", "where": ""}], "text_seen": null}"#,
                "kind",
            ),
            (
                r#"{"checks": [{"question": "a", "answer": "yes"}], "defects": [], "text_seen": 3}"#,
                "text_seen",
            ),
        ] {
            let e = read_answer(answer, &s).unwrap_err();
            assert!(e.contains(wanted), "{answer}: {e}");
        }
        let leaked = read_answer("no json sk-secret-123456", &s).unwrap_err();
        assert!(!leaked.contains("sk-secret"), "{leaked}");
    }

    #[test]
    fn drawn_text_is_read_back_and_compared() {
        assert_eq!(
            quoted_texts(r#"A sign reading "OPEN 24 HOURS" and a mug saying “Café”, "" ignored"#),
            ["OPEN 24 HOURS", "Café"]
        );
        assert_eq!(
            text_distance("Open 24 hours", "WELCOME! OPEN 24 HOURS."),
            0.0
        );
        assert!(text_distance("Lighthouse Keeper", "Lighthuose Keeper") <= TEXT_TOLERANCE);
        assert!(text_distance("Lighthouse Keeper", "Ligtohuse Kepeer") > TEXT_TOLERANCE);
        assert!(text_distance("Rust", "") > TEXT_TOLERANCE);
        // As docs/judge.md says.
        assert!(text_distance("Lighthouse", "LIGHTHUOSE") <= TEXT_TOLERANCE);
        assert!(text_distance("Lighthouse", "Ligtohuse") > TEXT_TOLERANCE);
        let verdict = |seen: Option<&str>, defects: Vec<Defect>| Verdict {
            checks: vec![check("a", true)],
            defects,
            text_seen: seen.map(str::to_owned),
        };
        let prompt = r#"A shop sign that says "Bakery""#;
        assert!(text_defects(prompt, &verdict(Some("BAKERY"), vec![])).is_empty());
        let wrong = text_defects(prompt, &verdict(Some("BKAERY SHOPP"), vec![]));
        assert_eq!(wrong.len(), 1);
        assert!(wrong[0].major && wrong[0].place.contains("asked for \"Bakery\""));
        assert_eq!(text_defects(prompt, &verdict(None, vec![])).len(), 1);
        // The judge saw it already: counted once.
        assert!(text_defects(prompt, &verdict(None, vec![defect("text", true)])).is_empty());
        assert!(text_defects("A quiet lake", &verdict(None, vec![])).is_empty());
    }

    fn record() -> Record {
        let checks = vec![
            check("Is there a lighthouse?", true),
            check("Is it red?", false),
        ];
        let defects = vec![defect("text", true)];
        Record {
            format: RECORD_FORMAT,
            master: "ab".repeat(32),
            judge: judge_id(ProviderKind::OpenAi, "gpt-5-mini"),
            provider: "openai".into(),
            model: "gpt-5-mini".into(),
            instructions: INSTRUCTIONS_VERSION,
            score: score(&checks, &defects),
            checks,
            defects,
            text_seen: Some("LIGTHOUSE".into()),
            model_version: None,
            request_id: Some("resp_1".into()),
            attempts: 1,
            cost_usd: 0.0021,
            created_at: "2026-12-05T00:00:00Z".into(),
        }
    }

    #[test]
    fn records_round_trip_and_crafted_ones_are_refused() {
        let record = record();
        let name = record.file_name();
        assert_eq!(Record::parse(&record.to_json(), &name).unwrap(), record);
        assert!(Record::parse(&record.to_json(), "other.json").is_err());
        for crafted in [
            Record {
                score: 1.0,
                ..record.clone()
            },
            Record {
                checks: vec![check("a\u{1b}[2Jb", true)],
                score: 0.75,
                ..record.clone()
            },
            Record {
                checks: Vec::new(),
                score: 0.0,
                ..record.clone()
            },
            Record {
                defects: vec![defect("vibes", false)],
                score: 0.5,
                ..record.clone()
            },
            Record {
                cost_usd: f64::NAN,
                ..record.clone()
            },
            Record {
                text_seen: Some("x".repeat(301)),
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
    fn corrections_name_the_failed_checks_and_major_defects() {
        let text = corrections(&record());
        assert_eq!(
            text,
            "Make sure the answer to each of these is yes: Is it red? Avoid these defects of an earlier attempt: text (left)."
        );
        let passed = Record {
            checks: vec![check("a", true)],
            defects: vec![],
            ..record()
        };
        assert_eq!(corrections(&passed), "");
        // Another domain than the describer's: a judge never names a description's file.
        assert_ne!(
            judge_id(ProviderKind::OpenAi, "gpt-5-mini"),
            note::writer_id("mdbook-imagegen describer", "openai", "gpt-5-mini", 1)
        );
        let q = question(&About {
            prompt: "A lamp",
            style: Some("ink"),
            caption: Some("Fig. 1"),
        });
        assert!(q.contains("A lamp") && q.contains("ink") && q.contains("Fig. 1"));
    }
}
