//! Text from outside, made safe to show.
//!
//! A provider's answers and errors, a `command` program's stderr, a remote store's errors and
//! the files of a book's repository are written by someone else, and may be written to attack:
//! to leak a key, to break out of a figure into the page, to hide text in a terminal. Whatever
//! of them reaches a page, a record, a log line or the terminal passes through here first:
//!
//! 1. every secret this build knows is redacted, before anything else is done to the text (so
//!    that a cut never leaves half a key behind);
//! 2. control characters, line and paragraph separators and bidirectional overrides become
//!    spaces, and runs of white space fold to one: the text is one line;
//! 3. it is capped in length.
//!
//! HTML escaping is left to where the text lands (`figure`); this module only decides what the
//! text may say. No I/O: the environment comes in as a function.

use std::borrow::Cow;

use crate::vocab::ProviderKind;

/// The most characters of outside text in a message, a figure or a log line.
pub(crate) const SHOWN_CHARS: usize = 300;

/// The most characters kept of a provider's metadata in a record (a revised prompt).
pub(crate) const KEPT_CHARS: usize = 4000;

/// The most characters kept of a short provider value in a record (an id, a model version).
pub(crate) const ID_CHARS: usize = 200;

/// Secrets shorter than this are not redacted: they would blank out ordinary words, and no
/// provider issues keys that short.
const MIN_SECRET_CHARS: usize = 8;

/// Environment variables that hold secrets whatever the book says, besides the provider kinds'
/// key variables ([`well_known`]): other image services' keys and the object stores'
/// credentials.
const OTHER_SECRETS: &[&str] = &[
    "REPLICATE_API_TOKEN",
    "FAL_KEY",
    "TOGETHER_API_KEY",
    "HF_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
];

/// Environment variables that hold secrets whatever the book says: every provider kind's key
/// variables, and [`OTHER_SECRETS`].
pub(crate) fn well_known() -> impl Iterator<Item = &'static str> {
    ProviderKind::ALL
        .iter()
        .flat_map(|kind| kind.spec().key.vars())
        .copied()
        .chain(OTHER_SECRETS.iter().copied())
}

/// The secret values one build knows, longest first (so that a key that contains another is
/// redacted whole).
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    values: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// The values of a book's key variables (every profile's) and of the well-known ones, read
    /// through `var`.
    pub(crate) fn of_book<'a>(
        key_vars: impl IntoIterator<Item = &'a str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Secrets {
        Secrets::of_vars(
            key_vars
                .into_iter()
                .chain(well_known().map(|var| -> &'a str { var })),
            var,
        )
    }

    /// The values of these variables; each `name=value` part of one (connection strings, SAS
    /// tokens, which a server may echo one parameter at a time) counts too.
    pub(crate) fn of_vars<'a>(
        names: impl IntoIterator<Item = &'a str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Secrets {
        let mut secrets = Secrets::default();
        for name in names {
            if let Some(value) = var(name) {
                secrets.add(&value);
            }
        }
        secrets
    }

    /// Adds one secret value (and its parts, as above).
    pub(crate) fn add(&mut self, value: &str) {
        let value = value.trim();
        let mut found = vec![value.to_owned()];
        for part in value.split([';', '&']) {
            if let Some((_, inner)) = part.split_once('=') {
                found.push(inner.to_owned());
            }
        }
        for secret in found {
            // Percent-encoded, as a URL or a form would carry it.
            let encoded = percent_encode(&secret);
            for form in [secret, encoded] {
                if form.chars().count() >= MIN_SECRET_CHARS && !self.values.contains(&form) {
                    self.values.push(form);
                }
            }
        }
        self.values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// The text with every secret replaced by `[redacted]`, also where white space, a control
    /// character or an escaped line break (`\n` as two characters, as a JSON body carries it)
    /// splits a secret: a server that folds long lines, or echoes a key with a line break in
    /// it, must not show its halves.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.values {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), "[redacted]"));
            }
        }
        if self.values.is_empty() || !text.chars().any(|c| is_filler(c) || c == '\\') {
            return text;
        }
        match self.redact_split(&text) {
            Some(redacted) => Cow::Owned(redacted),
            None => text,
        }
    }

    /// Redacts the secrets found once fillers (see [`fillers_at`]) are taken out of `text`;
    /// `None` when there is none.
    fn redact_split(&self, text: &str) -> Option<String> {
        // The text without fillers, and for each of its bytes the span of the original
        // character it comes from.
        // (Four bytes a byte: an answer of many megabytes costs a few times its size, once.)
        let mut squeezed = String::with_capacity(text.len());
        let mut starts: Vec<u32> = Vec::with_capacity(text.len());
        for (at, c) in kept_chars(text) {
            squeezed.push(c);
            let start = u32::try_from(at).unwrap_or(u32::MAX);
            starts.extend(std::iter::repeat_n(start, c.len_utf8()));
        }
        let span = |i: usize| {
            let start = starts[i] as usize;
            let len = text[start..].chars().next().map_or(1, char::len_utf8);
            (start, start + len)
        };
        let mut found: Vec<(usize, usize)> = Vec::new();
        for secret in &self.values {
            let secret: String = secret.chars().filter(|c| !is_filler(*c)).collect();
            if secret.chars().count() < MIN_SECRET_CHARS {
                continue;
            }
            for (start, matched) in squeezed.match_indices(secret.as_str()) {
                found.push((span(start).0, span(start + matched.len() - 1).1));
            }
        }
        if found.is_empty() {
            return None;
        }
        found.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (start, end) in found {
            if end <= from {
                continue;
            }
            if start >= from {
                out.push_str(&text[from..start]);
                out.push_str("[redacted]");
            }
            from = end;
        }
        out.push_str(&text[from..]);
        Some(out)
    }

    /// Outside text as it may be shown: see [`clean`]. Only the part that can be shown is
    /// redacted (with room for a secret that straddles the cut), so a huge text costs no more
    /// than a short one.
    pub(crate) fn clean(&self, text: &str, max: usize) -> String {
        let longest = self
            .values
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        let shown = shown_prefix(text, max.saturating_add(longest).saturating_add(2));
        clean(&self.redact(shown), max)
    }
}

/// Text on one line: control characters, line and paragraph separators and bidirectional
/// controls become spaces, white space folds to one space, and the result is cut at `max`
/// characters (with `…`). Redact secrets *before* this (see [`Secrets::clean`]).
pub(crate) fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut shown = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || is_hidden(c) {
            pending_space = !out.is_empty();
            continue;
        }
        let extra = usize::from(pending_space);
        if shown + extra + 1 > max {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            shown += 1;
            pending_space = false;
        }
        out.push(c);
        shown += 1;
    }
    out
}

/// Whether [`clean`] leaves `text` as it is (`clean(text, max) == text`), without building the
/// cleaned text: what readers of committed files check every text with.
pub(crate) fn is_clean(text: &str, max: usize) -> bool {
    let mut count = 0;
    let (mut before, mut last) = (None, None);
    for c in text.chars() {
        let space = c == ' ';
        if is_hidden(c) || (c.is_whitespace() && !space) || (space && last.is_none_or(|l| l == ' '))
        {
            return false;
        }
        count += 1;
        (before, last) = (last, Some(c));
    }
    // A text cut at `max` ends with `…` right after its last character shown.
    let cut = count == max + 1 && last == Some('…') && before != Some(' ');
    last != Some(' ') && (count <= max || cut)
}

/// The start of `text` that holds its first `count` characters other than fillers (all of it
/// when it has fewer): what [`clean`] can show of it, whatever the white space.
fn shown_prefix(text: &str, count: usize) -> &str {
    // Counted as redaction counts: fillers and escaped line breaks are no characters.
    kept_chars(text)
        .nth(count)
        .map_or(text, |(at, _)| &text[..at])
}

/// The characters of `text` that are not fillers (see [`fillers_at`]), with where each starts.
fn kept_chars(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < text.len() {
            let skip = fillers_at(&text[at..]);
            if skip == 0 {
                let c = text[at..].chars().next()?;
                let start = at;
                at += c.len_utf8();
                return Some((start, c));
            }
            at += skip;
        }
        None
    })
}

/// Characters that may split a secret without being part of it: white space and the
/// characters that act rather than show.
fn is_filler(c: char) -> bool {
    // With the invisible format characters (zero-width spaces and joiners, the word joiner,
    // the byte order mark, the soft hyphen), which a page shows as nothing.
    c.is_whitespace()
        || is_hidden(c)
        || matches!(
            c,
            '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
        )
}

/// How many bytes at the start of `text` are fillers: one filler character, or an escaped
/// line break or tab as JSON and many logs write it (`\n`, `\r`, `\t`); 0 when none is.
fn fillers_at(text: &str) -> usize {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), _) if is_filler(c) => c.len_utf8(),
        (Some('\\'), Some('n' | 'r' | 't')) => 2,
        _ => 0,
    }
}

/// For the terminal: text that may hold anything (a record from a pull request) on one line,
/// with control characters shown as escapes (`\u{1b}`) rather than acted on, and capped.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.chars().count() >= SHOWN_CHARS {
            out.push('…');
            break;
        }
        if is_hidden(c) || (c.is_whitespace() && c != ' ') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that act rather than show: C0 and C1 controls, line and paragraph separators,
/// and the bidirectional embeddings, overrides and isolates that reorder what follows.
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_clean_says_what_clean_would_leave_alone() {
        for text in [
            "",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "a\tb",
            "a\nb",
            "a\u{1b}b",
            "abc",
            "abcd",
            "abc…",
            "ab…",
            "abcd…",
            "a\u{202E}b",
            "a\u{00A0}b",
            "é ü",
            "…",
            "a …",
        ] {
            for max in 0..6 {
                assert_eq!(
                    super::is_clean(text, max),
                    super::clean(text, max) == text,
                    "{text:?} at {max}"
                );
            }
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn secrets(values: &[&str]) -> Secrets {
        let mut secrets = Secrets::default();
        for value in values {
            secrets.add(value);
        }
        secrets
    }

    #[test]
    fn text_becomes_one_capped_line() {
        let hostile = "bad request\n\n[click](javascript:alert(1))\n\n# Heading\r\u{1b}[31mred\u{7}\u{2028}x\u{202E}y";
        let clean = clean(hostile, SHOWN_CHARS);
        assert_eq!(
            clean,
            "bad request [click](javascript:alert(1)) # Heading [31mred x y"
        );
        let long = "word ".repeat(10_000);
        let cut = super::clean(&long, 20);
        assert!(cut.chars().count() <= 21);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn secrets_are_redacted_before_the_cut() {
        let key = format!("sk-proj-{}", "A1b2".repeat(40));
        let secrets = secrets(&[&key]);
        // The key straddles the cut: none of it may remain.
        let text = format!("{}{key} and more", "x".repeat(SHOWN_CHARS - 20));
        let shown = secrets.clean(&text, SHOWN_CHARS);
        assert!(!shown.contains("sk-proj-"), "{shown}");
        // Inside a connection string, each value counts, and so does its URL-encoded form.
        let secrets =
            secrets_for("AccountName=dev;AccountKey=Zm9vYmFyYmF6cXV4/+=;EndpointSuffix=x");
        assert_eq!(
            secrets.redact("key Zm9vYmFyYmF6cXV4/+= and Zm9vYmFyYmF6cXV4%2F%2B%3D"),
            "key [redacted] and [redacted]"
        );
        // Short values are not secrets worth blanking words for.
        assert_eq!(secrets.redact("dev x"), "dev x");
    }

    #[test]
    fn a_key_split_by_a_line_break_or_spaces_is_still_redacted() {
        let key = "sk-proj-Abc123Def456Ghi789";
        let secrets = secrets(&[key]);
        for text in [
            "echo: sk-proj-Abc123\nDef456Ghi789 end",
            "echo: sk-proj-Abc123\r\n  Def456Ghi789 end",
            "echo: sk-proj-Abc123\\nDef456Ghi789 end",
            "echo: sk-proj-Abc1 23D ef4 56G hi7 89 end",
            "echo: sk-proj-Abc123\u{2028}Def456\tGhi789 end",
            "echo: sk-proj-Abc123\u{200B}Def456\u{FEFF}Ghi789 end",
        ] {
            let shown = secrets.clean(text, SHOWN_CHARS);
            assert_eq!(shown, "echo: [redacted] end", "{text:?}");
        }
        // Two keys, one split, one whole, and the text around them kept as it was.
        let text = format!("a {key} b sk-proj-Abc\n123Def456Ghi789\nc");
        assert_eq!(secrets.redact(&text), "a [redacted] b [redacted]\nc");
        // Split at every character by escaped line breaks, past the cut of a short message:
        // what can be shown of it is redacted all the same.
        let spread: String = key.chars().map(|c| format!("{c}\\n")).collect();
        let text = format!("{}{spread} end", "x".repeat(260));
        let shown = secrets.clean(&text, 300);
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("s\\nk\\n-"), "{shown}");
        // Short secrets stay short of redaction, split or not.
        assert_eq!(self::secrets(&["abc1234"]).redact("abc\n1234"), "abc\n1234");
    }

    fn secrets_for(value: &str) -> Secrets {
        Secrets::of_vars(["AZURE_STORAGE_CONNECTION_STRING"], &|name| {
            (name == "AZURE_STORAGE_CONNECTION_STRING").then(|| value.to_owned())
        })
    }

    #[test]
    fn terminal_text_shows_escapes() {
        assert_eq!(for_terminal("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\u{a}c");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A key split anywhere by white space, a control character or an escaped line break
        /// is redacted whole.
        #[test]
        fn no_split_key_survives(
            key in "[A-Za-z0-9_-]{16,80}",
            cuts in proptest::collection::vec((0usize..80, 0usize..5), 1..4),
            before in "[ a-z.:]{0,40}",
        ) {
            let fillers = ["\n", "\r\n", " ", "\\n", "\u{2028}"];
            let mut split = key.clone();
            let mut points: Vec<(usize, usize)> = cuts
                .into_iter()
                .map(|(at, f)| (1 + at % (key.len() - 1), f))
                .collect();
            points.sort_unstable();
            points.dedup_by_key(|p| p.0);
            for (at, f) in points.into_iter().rev() {
                split.insert_str(at, fillers[f]);
            }
            let secrets = secrets(&[&key]);
            let text = format!("{before}{split}!");
            let shown = secrets.redact(&text);
            prop_assert!(shown.ends_with("[redacted]!"), "{:?} -> {:?}", split, shown);
        }

        /// Whatever surrounds a key and wherever the cut falls, nothing of the key survives,
        /// and the text is one line within the cap. The surroundings share no character with
        /// keys, so any eight key characters in the output would have come from the key.
        #[test]
        fn no_key_survives(
            before in "[ !?.,:;()\\[\\]\n\t\u{1b}\u{2028}\u{202e}é漢]{0,400}",
            after in "[ !?.,:;()\\[\\]\n\t\u{1b}\u{2028}\u{202e}é漢]{0,400}",
            key in "[A-Za-z0-9_-]{16,120}",
            max in 1usize..600,
        ) {
            let secrets = secrets(&[&key]);
            let shown = secrets.clean(&format!("{before}{key}{after}"), max);
            prop_assert!(shown.chars().count() <= max + 1);
            prop_assert!(!shown.chars().any(|c| is_hidden(c) || c == '\n'));
            if &key[..8] != "redacted" {
                prop_assert!(!shown.contains(&key[..8]), "{}", shown);
            }
        }
    }
}
