//! `mdbook-imagegen alt`: the directives whose author wrote no alt text, with the alt their
//! figure shows (the describer's, else the one derived from the prompt); `--write` puts that
//! wording into each directive's info string, so authors review it in a diff and own it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::Team;
use crate::cache::Cache;
use crate::directive;
use crate::error::Result;

/// A directive without an author's alt, as `alt` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MissingAlt {
    /// The chapter file (`src/guide/intro.md`).
    pub file: String,
    /// The directive's line in it.
    pub line: usize,
    /// The alt text its figure shows.
    pub alt: String,
    /// Where that came from: `described` (a vision model), `prompt` (derived from the
    /// prompt), or `none` (the image is not in the cache yet).
    pub from: &'static str,
    /// The describer's long description, when it wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The describer's model, for `described`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The directive's whole prompt, to find it again in its file.
    #[serde(skip)]
    prompt: String,
    /// Whether a model makes its image (a placeholder is never described).
    #[serde(skip)]
    by_model: bool,
}

/// What `alt --write` did to one directive.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WrittenAlt {
    /// The chapter file.
    pub file: String,
    /// The directive's line in it.
    pub line: usize,
    /// The alt text written (or that would have been).
    pub alt: String,
    /// Why it was not written, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Team {
    /// Every directive without an author's alt, in book order, with the alt its figure shows.
    pub fn missing_alts(&self) -> Result<Vec<MissingAlt>> {
        let mut cache = Cache::of_book(&self.root, &self.config);
        let describer = self.config.describer_id();
        let mut out = Vec::new();
        for row in &self.planned {
            if row.alt.is_some() || row.key().is_none() {
                continue;
            }
            let served = row.served();
            let master = match served {
                Some(served) => cache.lookup(served.tier, served.key)?.map(|e| e.master),
                None => None,
            };
            let by_model = served.is_some_and(|s| s.by_model);
            let record = match (&master, &describer) {
                (Some(master), Some(id)) => cache.note::<crate::description::Record>(master, id),
                _ => None,
            };
            out.push(match record {
                Some(record) => MissingAlt {
                    file: row.file.clone(),
                    line: row.line,
                    alt: record.alt,
                    from: "described",
                    description: Some(record.description).filter(|d| !d.is_empty()),
                    model: Some(record.model),
                    prompt: row.prompt.clone(),
                    by_model,
                },
                None => MissingAlt {
                    file: row.file.clone(),
                    line: row.line,
                    alt: crate::figure::derive_alt(&row.prompt),
                    from: if master.is_some() { "prompt" } else { "none" },
                    description: None,
                    model: None,
                    prompt: row.prompt.clone(),
                    by_model,
                },
            });
        }
        Ok(out)
    }

    /// Writes `alt="…"` into the info string of every directive without one whose image is
    /// cached, with the wording its figure shows: only those bytes are added, the rest of each
    /// chapter stays as it is. Skipped, and said so: an image not generated yet; with
    /// `alt-text = "describe"`, one not described yet (its derived alt would stop it from ever
    /// being described); an empty derived alt (it would mark the image decorative); a directive
    /// that moved since the book was read, or that comes from an included file.
    pub fn write_alts(&self) -> Result<Vec<WrittenAlt>> {
        let describing = self.config.describer_id().is_some();
        let mut seen = std::collections::BTreeSet::new();
        let mut by_file: BTreeMap<String, Vec<MissingAlt>> = BTreeMap::new();
        let mut out = Vec::new();
        for m in self.missing_alts()? {
            // A chapter listed twice in SUMMARY.md has its directives twice.
            if !seen.insert((m.file.clone(), m.line)) {
                continue;
            }
            let skipped = match m.from {
                "none" => Some("its image is not generated yet; build the book first"),
                "prompt" if describing && m.by_model => Some(
                    "not described yet; build the book to describe it (or write its alt yourself)",
                ),
                _ if m.alt.trim().is_empty() => {
                    Some("the alt derived from its prompt is empty; write its alt yourself")
                }
                _ => None,
            };
            match skipped {
                Some(why) => out.push(written(&m, Some(why.to_owned()))),
                None => by_file.entry(m.file.clone()).or_default().push(m),
            }
        }
        for (file, wanted) in by_file {
            match self.write_file_alts(&file, &wanted) {
                Ok(written) => out.extend(written),
                Err(why) => out.extend(wanted.iter().map(|m| written(m, Some(why.clone())))),
            }
        }
        out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Ok(out)
    }

    fn write_file_alts(
        &self,
        file: &str,
        wanted: &[MissingAlt],
    ) -> std::result::Result<Vec<WrittenAlt>, String> {
        let src = crate::files::join_inside(&self.root, Path::new(&self.src));
        let path = crate::files::join_inside(&self.root, Path::new(file))
            .filter(|p| src.as_ref().is_some_and(|src| p.starts_with(src)))
            .ok_or_else(|| format!("`{file}` is not inside the book's source directory"))?;
        // Never through a link: not the file, not a directory on the way to it.
        crate::files::check_confined(&self.root, &path).map_err(|e| e.to_string())?;
        let before =
            std::fs::symlink_metadata(&path).map_err(|e| format!("cannot read `{file}`: {e}"))?;
        let bytes = crate::files::read_regular(&path, MAX_CHAPTER_BYTES)
            .map_err(|e| format!("cannot read `{file}`: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{file}` is not UTF-8"))?;
        let (directives, _) = directive::parse(&text, &directive::markdown_options(false));
        let mut insertions = Vec::new();
        let mut out = Vec::new();
        for m in wanted {
            // The same line and the same prompt: a line alone could name another directive once
            // `{{#include}}` has shifted mdBook's lines.
            let found = directives
                .iter()
                .find(|d| d.line == m.line && d.attrs.alt.is_none() && d.prompt == m.prompt);
            let Some(d) = found else {
                out.push(written(m, Some(
                    "no such directive without alt at this line of the file (edited since, or included from another file)".into(),
                )));
                continue;
            };
            insertions.push((
                info_end(&text, d),
                format!(" alt=\"{}\"", attribute_value(&m.alt, fence_of(&text, d))),
            ));
            out.push(written(m, None));
        }
        if insertions.is_empty() {
            return Ok(out);
        }
        let new = splice_insertions(&text, insertions);
        // Someone saved the file since it was read: keep their edit, write nothing.
        let now =
            std::fs::symlink_metadata(&path).map_err(|e| format!("cannot read `{file}`: {e}"))?;
        if now.len() != before.len() || now.modified().ok() != before.modified().ok() {
            return Err(format!(
                "`{file}` changed while alt text was being written; run the command again"
            ));
        }
        let tmp = self.cache_root.join("tmp");
        crate::files::write_atomic(&self.root, &tmp, &path, new.as_bytes())
            .map_err(|e| format!("cannot write `{file}`: {e}"))?;
        // The new file keeps the chapter's permissions.
        let _ = std::fs::set_permissions(&path, before.permissions());
        Ok(out)
    }
}

/// The largest chapter file `alt --write` edits.
const MAX_CHAPTER_BYTES: u64 = 64 << 20;

fn written(m: &MissingAlt, skipped: Option<String>) -> WrittenAlt {
    WrittenAlt {
        file: m.file.clone(),
        line: m.line,
        alt: m.alt.clone(),
        skipped,
    }
}

/// Where a directive's info string ends, trailing white space left after the insertion.
fn info_end(text: &str, d: &directive::Directive) -> usize {
    let block = &text[d.span.clone()];
    let line_end = d.span.start + block.find(['\n', '\r']).unwrap_or(block.len());
    d.span.start + text[d.span.start..line_end].trim_end().len()
}

/// Whether a directive's fence is of backticks (whose info string may hold no backtick).
fn fence_of(text: &str, d: &directive::Directive) -> bool {
    text[d.span.clone()]
        .trim_start_matches([' ', '>', '\t'])
        .starts_with('`')
}

/// An alt as a directive's attribute value: quotes, backslashes and braces escaped as the
/// directive syntax reads them (so no `{{` reaches the chapter); in a backtick fence, whose info string may hold no backtick, a backtick
/// becomes an apostrophe.
fn attribute_value(alt: &str, backticks: bool) -> String {
    let mut out = String::with_capacity(alt.len() + 2);
    for c in alt.chars() {
        match c {
            // A `{` too: `{{` in a chapter is mdBook's `links` syntax (`{{#include …}}`), which
            // would read a file into the book on the next build, whatever the describer meant.
            '"' | '\\' | '{' => {
                out.push('\\');
                out.push(c);
            }
            '`' if backticks => out.push('\''),
            c if c.is_control() || crate::outside::is_hidden(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The text with each `(offset, text)` inserted; offsets are in the original text.
fn splice_insertions(text: &str, mut insertions: Vec<(usize, String)>) -> String {
    insertions.sort_by_key(|(at, _)| *at);
    let mut out =
        String::with_capacity(text.len() + insertions.iter().map(|i| i.1.len()).sum::<usize>());
    let mut from = 0;
    for (at, insert) in insertions {
        out.push_str(&text[from..at]);
        out.push_str(&insert);
        from = at;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alt_is_spliced_into_the_info_string_and_reads_back() {
        let text = "# T\r\n\r\n> ```image-prompt size=\"64x64\"  \r\n> A \"lamp\"\r\n> ```\r\nAfter `code`.\r\n";
        let (directives, _) = directive::parse(text, &directive::markdown_options(false));
        let d = &directives[0];
        let at = info_end(text, d);
        assert!(fence_of(text, d));
        let alt = "A \"lamp\" with a `wick` \\ here";
        let new = splice_insertions(
            text,
            vec![(at, format!(" alt=\"{}\"", attribute_value(alt, true)))],
        );
        assert_eq!(
            new,
            "# T\r\n\r\n> ```image-prompt size=\"64x64\" alt=\"A \\\"lamp\\\" with a 'wick' \\\\ here\"  \r\n> A \"lamp\"\r\n> ```\r\nAfter `code`.\r\n"
        );
        let (again, problems) = directive::parse(&new, &directive::markdown_options(false));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            again[0].attrs.alt.as_deref(),
            Some("A \"lamp\" with a 'wick' \\ here")
        );
        assert_eq!(again[0].prompt, d.prompt);
    }

    #[test]
    fn a_described_alt_never_writes_an_mdbook_directive_into_the_chapter() {
        let text = "```image-prompt\nA lamp\n```\n";
        let (directives, _) = directive::parse(text, &directive::markdown_options(false));
        for alt in [
            "{{#include ../secrets.txt}}",
            "{{ #title Owned }}",
            "a \\{{#include x}} b",
            "{\\{#include x}}",
        ] {
            let insert = format!(" alt=\"{}\"", attribute_value(alt, true));
            let new = splice_insertions(text, vec![(info_end(text, &directives[0]), insert)]);
            assert!(!new.contains("{{"), "{new}");
            // It reads back as the describer wrote it.
            let (again, problems) = directive::parse(&new, &directive::markdown_options(false));
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(again[0].attrs.alt.as_deref(), Some(alt));
        }
    }

    #[test]
    fn tilde_fences_and_list_items_take_the_alt_on_their_own_line() {
        for (text, wanted) in [
            (
                "~~~image-prompt\nA `tick`\n~~~\n",
                "~~~image-prompt alt=\"A `tick`\"\nA `tick`\n~~~\n",
            ),
            (
                "- item\n\n  ```image-prompt size=\"64x64\"\n  A buoy\n  ```\n- next\n",
                "- item\n\n  ```image-prompt size=\"64x64\" alt=\"A 'tick'\"\n  A buoy\n  ```\n- next\n",
            ),
        ] {
            let (directives, _) = directive::parse(text, &directive::markdown_options(false));
            let d = &directives[0];
            let insert = format!(
                " alt=\"{}\"",
                attribute_value("A `tick`", fence_of(text, d))
            );
            assert_eq!(
                splice_insertions(text, vec![(info_end(text, d), insert)]),
                wanted
            );
        }
        assert_eq!(attribute_value("a\u{202e}b\u{7}", false), "a b ");
    }
}
