//! `mdbook-imagegen alt`: the directives whose author wrote no alt text, with the alt their
//! figure shows (the describer's, else the one derived from the prompt); `--write` puts that
//! wording into each directive's info string, so authors review it in a diff and own it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::Team;
use crate::cache::Cache;
use crate::describe;
use crate::directive;
use crate::error::Result;
use crate::plan::CacheKey;

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
        let mut cache = self.open_cache();
        let describer = self.config.describe.as_ref().map(|with| {
            let kind = self.config.profiles[&with.profile].kind;
            (
                describe::describer_id(kind, &with.model),
                with.model.clone(),
            )
        });
        let mut out = Vec::new();
        for row in &self.rows {
            if row.alt.is_some() || row.key.is_none() {
                continue;
            }
            let master = described_master(&mut cache, row.tier, row.key.as_deref())?;
            let record = match (&master, &describer) {
                (Some(master), Some((id, _))) => cache.description(master, id),
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
                },
                None => MissingAlt {
                    file: row.file.clone(),
                    line: row.line,
                    alt: crate::figure::derive_alt(&row.full_prompt),
                    from: if master.is_some() { "prompt" } else { "none" },
                    description: None,
                    model: None,
                },
            });
        }
        Ok(out)
    }

    /// Writes `alt="…"` into the info string of every directive without one whose image is
    /// cached, with the wording its figure shows: only those bytes are added, the rest of each
    /// chapter stays as it is. A directive that moved since the book was read, or that lives in
    /// an included file, is skipped and said so.
    pub fn write_alts(&self) -> Result<Vec<WrittenAlt>> {
        let missing: Vec<MissingAlt> = self
            .missing_alts()?
            .into_iter()
            .filter(|m| m.from != "none")
            .collect();
        let mut by_file: BTreeMap<&str, Vec<&MissingAlt>> = BTreeMap::new();
        for m in &missing {
            by_file.entry(m.file.as_str()).or_default().push(m);
        }
        let mut out = Vec::new();
        for (file, wanted) in by_file {
            let result = self.write_file_alts(file, &wanted);
            match result {
                Ok(written) => out.extend(written),
                Err(why) => out.extend(wanted.iter().map(|m| WrittenAlt {
                    file: m.file.clone(),
                    line: m.line,
                    alt: m.alt.clone(),
                    skipped: Some(why.clone()),
                })),
            }
        }
        Ok(out)
    }

    fn write_file_alts(
        &self,
        file: &str,
        wanted: &[&MissingAlt],
    ) -> std::result::Result<Vec<WrittenAlt>, String> {
        let path = crate::files::join_inside(&self.root, Path::new(file))
            .filter(|p| p.starts_with(&self.src_dir))
            .ok_or_else(|| format!("`{file}` is not inside the book's source directory"))?;
        let bytes = crate::files::read_regular(&path, 64 << 20)
            .map_err(|e| format!("cannot read `{file}`: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{file}` is not UTF-8"))?;
        let (directives, _) = directive::parse(&text, &directive::markdown_options(false));
        let mut insertions = Vec::new();
        let mut out = Vec::new();
        for m in wanted {
            let found = directives
                .iter()
                .find(|d| d.line == m.line && d.attrs.alt.is_none());
            let Some(d) = found else {
                out.push(WrittenAlt {
                    file: m.file.clone(),
                    line: m.line,
                    alt: m.alt.clone(),
                    skipped: Some(
                        "no directive without alt at this line of the file (edited since, or included from another file)".into(),
                    ),
                });
                continue;
            };
            let block = &text[d.span.clone()];
            let backticks = block.trim_start().starts_with('`');
            let info_end = d.span.start + block.find(['\n', '\r']).unwrap_or(block.len());
            let at = d.span.start + text[d.span.start..info_end].trim_end().len();
            insertions.push((
                at,
                format!(" alt=\"{}\"", attribute_value(&m.alt, backticks)),
            ));
            out.push(WrittenAlt {
                file: m.file.clone(),
                line: m.line,
                alt: m.alt.clone(),
                skipped: None,
            });
        }
        if insertions.is_empty() {
            return Ok(out);
        }
        let new = splice_insertions(&text, insertions);
        let tmp = self.cache_root.join("tmp");
        crate::files::write_atomic(&self.root, &tmp, &path, new.as_bytes())
            .map_err(|e| format!("cannot write `{file}`: {e}"))?;
        Ok(out)
    }
}

/// The master of a directive's cached image, if any.
fn described_master(
    cache: &mut Cache,
    tier: crate::cache::Tier,
    key: Option<&str>,
) -> Result<Option<String>> {
    let Some(key) = key.and_then(CacheKey::from_hex) else {
        return Ok(None);
    };
    Ok(cache.lookup(tier, key)?.map(|entry| entry.master))
}

/// An alt as a directive's attribute value: quotes and backslashes escaped as the directive
/// syntax reads them; in a backtick fence, whose info string may hold no backtick, a backtick
/// becomes an apostrophe.
fn attribute_value(alt: &str, backticks: bool) -> String {
    let mut out = String::with_capacity(alt.len() + 2);
    for c in alt.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '`' if backticks => out.push('\''),
            c if c.is_control() => out.push(' '),
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
        let block = &text[d.span.clone()];
        let info_end = d.span.start + block.find(['\n', '\r']).unwrap();
        let at = d.span.start + text[d.span.start..info_end].trim_end().len();
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
}
