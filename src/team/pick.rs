//! `mdbook-imagegen pick FILE:LINE|KEY-PREFIX N`: which candidate of a directive's `variants`
//! its figure shows, written as a committed pick file (see `cache::picks`).

use serde::Serialize;

use super::Team;
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::error::{Error, Result};
use crate::pipeline::{Planned, Variants};

/// What `pick` recorded.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Picked {
    /// The directive's chapter file.
    pub file: String,
    /// The directive's line in it.
    pub line: usize,
    /// The candidate now shown, from 1.
    pub candidate: u32,
    /// How many candidates the directive has.
    pub of: u32,
    /// The shown candidate's cache key.
    pub key: String,
    /// The pick file written, relative to the book's root.
    pub path: String,
    /// With a judge: each candidate's score, in order (`None` where none is kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<Option<f64>>,
}

impl Team {
    /// Records that the directive `selector` names (`src/b/b.md:7` as `plan` prints it, the
    /// same without the source directory, or at least 4 hex digits of any of its candidates'
    /// keys) shows candidate `number` (from 1). The next build shows it with no request.
    pub fn pick(&self, selector: &str, number: u32) -> Result<Picked> {
        let (row, variants) = self.picked_row(selector)?;
        let of = variants.candidates.len() as u32;
        if number == 0 || number > of {
            return Err(Error::Request(format!(
                "`{}:{}` has {of} candidates; pick one from 1 to {of}",
                crate::outside::for_terminal(&row.file),
                row.line
            )));
        }
        let first = variants.candidates[0];
        let mut cache = Cache::of_book(&self.root, &self.config);
        let path = cache.store_pick(first, number - 1)?;
        let tier = row
            .job
            .as_ref()
            .map_or(crate::cache::Tier::Committed, |j| j.tier);
        let mut scores = Vec::new();
        if self.config.judge.is_some() {
            for key in &variants.candidates {
                scores.push(self.judgement(&mut cache, tier, *key)?.map(|j| j.score));
            }
        }
        Ok(Picked {
            file: row.file.clone(),
            line: row.line,
            candidate: number,
            of,
            key: variants.candidates[number as usize - 1].to_hex(),
            path: path
                .strip_prefix(&self.root)
                .unwrap_or(&path)
                .display()
                .to_string(),
            scores,
        })
    }

    /// The directive with variants a selector names, or why none (or several) does.
    fn picked_row(&self, selector: &str) -> Result<(&Planned, &Variants)> {
        let t = crate::outside::for_terminal;
        let shown = t(selector);
        let normal = selector.replace('\\', "/");
        let normal = normal.trim_start_matches("./");
        let matches: Vec<&Planned> = match place(normal) {
            Some((file, line)) => {
                let src = format!("{}/", self.src.trim_end_matches('/'));
                self.planned
                    .iter()
                    .filter(|r| {
                        r.line == line
                            && (r.file == file || r.file.strip_prefix(&src) == Some(file))
                    })
                    .collect()
            }
            None if normal.len() >= 4 && normal.chars().all(|c| c.is_ascii_hexdigit()) => {
                let prefix = normal.to_ascii_lowercase();
                self.planned
                    .iter()
                    .filter(|p| {
                        candidates(p).is_some_and(|keys| {
                            keys.iter().any(|k| k.to_hex().starts_with(&prefix))
                        })
                    })
                    .collect()
            }
            None => {
                return Err(Error::Request(format!(
                    "`{shown}` names no directive; give its place as `plan` prints it (`src/chapter.md:7`) or at least 4 hex digits of a candidate's key"
                )));
            }
        };
        let row = match matches.as_slice() {
            [] => {
                return Err(Error::Request(format!(
                    "no directive at `{shown}`; `plan` prints each directive's place and key"
                )));
            }
            [row] => *row,
            many if many
                .windows(2)
                .all(|w| candidates(w[0]) == candidates(w[1])) =>
            {
                many[0]
            }
            many => {
                return Err(Error::Request(format!(
                    "`{shown}` matches {} directives; give more of the key, or the place",
                    many.len()
                )));
            }
        };
        let place = format!("{}:{}", t(&row.file), row.line);
        let Some((_, variants)) = row.variants() else {
            return Err(Error::Request(format!(
                "`{place}` has no variants to pick from; add `variants=\"3\"` to it and build"
            )));
        };
        if variants.wait {
            return Err(Error::Request(format!(
                "`{place}` waits for the images it references, so its candidates are not known yet; build the book, then pick"
            )));
        }
        Ok((row, variants))
    }
}

/// A directive's candidates' keys, when it has variants.
fn candidates(p: &Planned) -> Option<&[CacheKey]> {
    p.variants().map(|(_, v)| v.candidates.as_slice())
}

/// `FILE:LINE` (or `FILE:LINE:COLUMN`, as editors and compilers print places).
fn place(selector: &str) -> Option<(&str, usize)> {
    let number = |text: &str| text.parse::<usize>().ok();
    let (rest, last) = selector.rsplit_once(':')?;
    let last = number(last)?;
    match rest.rsplit_once(':') {
        Some((file, line)) if number(line).is_some() => Some((file, number(line)?)),
        _ => Some((rest, last)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn places_are_read_as_plan_and_editors_print_them() {
        assert_eq!(super::place("src/b/b.md:7"), Some(("src/b/b.md", 7)));
        assert_eq!(super::place("src/b/b.md:7:3"), Some(("src/b/b.md", 7)));
        assert_eq!(super::place("abcd"), None);
        assert_eq!(super::place("a.md:x"), None);
    }
}
