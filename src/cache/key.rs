//! The cache key: the content address of a generated image, and the version of its encoding.
//! What a key covers is decided where requests are built (`request::cache_key`); this
//! module holds the type and the length-prefixed encoding it is hashed with.

use std::fmt;

/// The version of the cache key's encoding and of the cache's stored format.
///
/// Bump it when any hashed input, the encoding, or the layout of records and masters changes:
/// every image is then generated again, so do it only on purpose. `request::tests::golden_cache_key`
/// fails whenever the hash changes, as a reminder.
pub(crate) const CACHE_VERSION: u32 = 2;

/// A content address: the blake3 hash of a request's canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CacheKey(pub(crate) [u8; 32]);

impl CacheKey {
    /// The key as 64 lower-case hex digits.
    pub(crate) fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Option<CacheKey> {
        blake3::Hash::from_hex(text)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

/// The encoding a cache key hashes: each field as its name and value, both length-prefixed,
/// so that no two different lists of fields hash the same bytes.
#[derive(Default)]
pub(crate) struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    pub(crate) fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update(&(name.len() as u32).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    pub(crate) fn finish(&self) -> CacheKey {
        CacheKey(*self.0.finalize().as_bytes())
    }
}
