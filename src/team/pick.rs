//! `mdbook-imagegen pick FILE:LINE|KEY-PREFIX N`: which candidate of a directive's `variants`
//! its figure shows, written as a committed pick file (see `cache::picks`).

use serde::Serialize;

use super::Team;
use crate::build::PlannedImage;
use crate::error::{Error, Result};
use crate::plan::CacheKey;

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
}

impl Team {
    /// Records that the directive `selector` names (`src/b/b.md:7` as `plan` prints it, the
    /// same without the source directory, or at least 4 hex digits of any of its candidates'
    /// keys) shows candidate `number` (from 1). The next build shows it with no request.
    pub fn pick(&self, selector: &str, number: u32) -> Result<Picked> {
        let row = self.picked_row(selector)?;
        let of = row.candidates.len() as u32;
        if number == 0 || number > of {
            return Err(Error::Request(format!(
                "`{}:{}` has {of} candidates; pick one from 1 to {of}",
                row.file, row.line
            )));
        }
        let first = CacheKey::from_hex(&row.candidates[0])
            .ok_or_else(|| Error::Request("the directive's key is not a key".into()))?;
        let path = self.open_cache().store_pick(first, number - 1)?;
        Ok(Picked {
            file: row.file.clone(),
            line: row.line,
            candidate: number,
            of,
            key: row.candidates[number as usize - 1].clone(),
            path: path
                .strip_prefix(&self.root)
                .unwrap_or(&path)
                .display()
                .to_string(),
        })
    }

    /// The directive with variants a selector names, or why none (or several) does.
    fn picked_row(&self, selector: &str) -> Result<&PlannedImage> {
        let selector = selector.trim_start_matches("./");
        let at_line = selector.rsplit_once(':').and_then(|(file, line)| {
            let line: usize = line.parse().ok()?;
            Some((file, line))
        });
        let matches: Vec<&PlannedImage> = match at_line {
            Some((file, line)) => self
                .rows
                .iter()
                .filter(|r| {
                    r.line == line
                        && (r.file == file
                            || r.file.split_once('/').is_some_and(|(_, rest)| rest == file))
                })
                .collect(),
            None if selector.len() >= 4 && selector.chars().all(|c| c.is_ascii_hexdigit()) => {
                let prefix = selector.to_ascii_lowercase();
                self.rows
                    .iter()
                    .filter(|r| r.candidates.iter().any(|k| k.starts_with(&prefix)))
                    .collect()
            }
            None => {
                return Err(Error::Request(format!(
                    "`{selector}` names no directive; give its place as `plan` prints it (`src/chapter.md:7`) or at least 4 hex digits of a candidate's key"
                )));
            }
        };
        match matches.as_slice() {
            [] => Err(Error::Request(format!(
                "no directive at `{selector}`; `plan` prints each directive's place and key"
            ))),
            [row] if row.candidates.is_empty() => Err(Error::Request(format!(
                "`{}:{}` has no variants to pick from; add `variants=\"3\"` to it and build",
                row.file, row.line
            ))),
            [row] if row.key.is_none() => Err(Error::Request(format!(
                "`{}:{}` waits for the images it references, so its candidates are not known yet; build the book, then pick",
                row.file, row.line
            ))),
            [row] => Ok(row),
            many if many.windows(2).all(|w| w[0].candidates == w[1].candidates) => Ok(many[0]),
            many => Err(Error::Request(format!(
                "`{selector}` matches {} directives; give more of the key, or the place",
                many.len()
            ))),
        }
    }
}
