//! What the unit tests share, so that no test file copies a helper from another: small images,
//! books and requests, the provider environment a test runs in, and loopback servers in the
//! shape of each provider's API.

pub(crate) mod books;
pub(crate) mod env;
pub(crate) mod images;
pub(crate) mod servers;
