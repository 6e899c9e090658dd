//! Stage: dark twins. Once every figure is settled (its candidate picked or ranked, `gate`'s
//! new attempts made), each directive that asks for a dark twin (`[dark]`, `dark=`) gets one
//! more job: its light image edited for a dark page, or generated from the prompt with the
//! instruction (`request::dark`). The twins take one round like any other (cache, remote,
//! budget, claims, provider), in the build and in `plan` alike.

use super::Book;
use super::jobs::{At, Plan};
use super::parse::Page;
use super::rounds::{self, Mode, Rounds};
use crate::cache::Cache;
use crate::error::Result;
use crate::request::dark::{self, Twin};

/// Plans the twin of every directive that asks for one and whose figure has an image, then
/// runs their round.
pub(crate) fn run<M: Mode>(
    book: &Book<'_>,
    cache: &mut Cache,
    pages: &[Page<'_>],
    plan: &mut Plan,
    mode: &mut M,
    rounds: &mut Rounds,
) -> Result<()> {
    let wanted: Vec<(At, usize, Twin)> = pages
        .iter()
        .enumerate()
        .flat_map(|(p, page)| {
            page.directives
                .iter()
                .enumerate()
                .map(move |(d, directive)| ((p, d), directive))
        })
        .filter_map(|(at, directive)| {
            let job = *plan.uses[at.0][at.1].as_ref().ok()?;
            Some((at, job, Twin::of(directive, book.config)?))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let from = plan.jobs.len();
    for (at, job, twin) in wanted {
        let directive = &pages[at.0].directives[at.1];
        // Its figure shows why it has no image; the twin adds nothing to that.
        if mode.failed(job) {
            continue;
        }
        // The light master is hashed into the twin's key; an edit sends it, read only then
        // (`references::read_unread`), so a build whose twins are cached reads no master.
        let twin = match mode.master_of(cache, job) {
            None => Err("its light image was not made".to_owned()),
            Some(mut light) => {
                dark::LIGHT.clone_into(&mut light.label);
                dark::chain(directive, book.config, &twin, &plan.jobs[job].chain, &light)
            }
        };
        match twin {
            Ok(chain) => {
                plan.add_twin(at, chain);
            }
            Err(message) => {
                plan.twins.insert(at, Err(message));
            }
        }
    }
    if plan.jobs.len() > from {
        rounds::round(book, cache, &plan.jobs[from..], mode, rounds)?;
    }
    Ok(())
}
