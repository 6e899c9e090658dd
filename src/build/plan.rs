//! Stage 2, plan: every directive becomes a job (the chain of requests that may serve it, each
//! with its cache key). Directives that ask for the same image share one job. No I/O.

use std::collections::HashMap;

use super::parse::Page;
use crate::config::Config;
use crate::plan::{CacheKey, Chain};

/// One image to provide: the directive's own request first, then its fallbacks.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The cache key of the directive's own request (`chain[0]`).
    pub(crate) key: CacheKey,
    pub(crate) chain: Chain,
}

/// The jobs of a book, in the order of their first use, and what each directive uses.
pub(crate) struct Plan {
    pub(crate) jobs: Vec<Job>,
    /// Per page, per directive: the index of its job, or why it has none.
    pub(crate) uses: Vec<Vec<Result<usize, String>>>,
}

/// Plans every directive of every page (taking the chains the head start made, if any).
pub(crate) fn jobs(pages: &mut [Page<'_>], config: &Config) -> Plan {
    let mut jobs: Vec<Job> = Vec::new();
    let mut index: HashMap<CacheKey, usize> = HashMap::new();
    let uses = pages
        .iter_mut()
        .map(|page| {
            let mut ahead = page.chains.take().map(Vec::into_iter);
            page.directives
                .iter()
                .map(|directive| {
                    let chain = match ahead.as_mut().and_then(Iterator::next) {
                        Some(chain) => chain,
                        None => crate::plan::chain(directive, config),
                    }?;
                    let key = chain[0].0;
                    Ok(*index.entry(key).or_insert_with(|| {
                        jobs.push(Job { key, chain });
                        jobs.len() - 1
                    }))
                })
                .collect()
        })
        .collect();
    Plan { jobs, uses }
}
