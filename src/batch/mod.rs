//! Batches: the images a book lacks sent to a provider's batch API at half the price, by one
//! machine, and collected into the cache by any (`mdbook-imagegen batch submit|status|collect`).
//!
//! - `state.rs` (pure): a submitted batch as committed, `.imagegen/batches/<kind>-<id>.json`,
//!   read as hostile.
//! - `store.rs` (files): the batch files of a book, read, written and removed inside the cache.
//! - `hook.rs`: how a build's generation stage treats batches (`Batching`): a build leaves the
//!   keys of a pending batch alone, `submit` diverts what it would generate into batches,
//!   `collect` stores what a batch made instead of calling the provider.
//! - `run.rs`: the commands, at the edge: plan the book, talk to the provider
//!   (`provider::batch`), write and remove batch files, report.

pub(crate) mod hook;
pub(crate) mod run;
pub(crate) mod state;
pub(crate) mod store;
