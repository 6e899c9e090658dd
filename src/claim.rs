//! Claims in the shared remote cache: how machines that share a store agree on who generates an
//! image. Before a build asks a provider for a key, it creates `claims/<key>` in the store with
//! a create-only write; a build that finds a live claim waits for the image instead of paying
//! for it again.
//!
//! This module is the pure part: the claim as stored (a small JSON document naming its holder
//! and its expiry), reading one that may be hostile, and deciding whether a claim is still
//! alive. The requests live in `storage::conditional`, and the waiting in
//! `pipeline::generate::claims`.
//!
//! # When a claim is dead
//!
//! Clocks of machines differ, so a claim is judged two ways, and either is enough:
//!
//! - **Watched**: on the waiting build's own monotonic clock, a claim whose version in the
//!   store has not changed for its whole TTL is dead. A live holder rewrites its claim every
//!   third of the TTL, so it has missed three renewals. No clock agreement is needed.
//! - **Written expiry**: a claim whose `expires_at` is more than one more TTL in the past by
//!   the waiter's clock is dead at once (a holder that died long ago). This is wrong only when
//!   the two clocks differ by more than a TTL and two thirds, and then the cost is an image
//!   paid twice, never a damaged cache.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The largest claim read from a store: a claim is a few hundred bytes.
pub(crate) const MAX_CLAIM_BYTES: u64 = 4 * 1024;
/// The TTL a claim may name: anything outside is read as this range's bound.
const TTL_RANGE: (u64, u64) = (1, 3600);
/// The longest host name kept in a claim.
const MAX_HOST_CHARS: usize = 100;

/// Who holds a claim: a machine, a process on it, and a random id that tells two builds of
/// one process apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) id: String,
}

/// A claim as stored in `claims/<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claim {
    /// The cache key, in hex.
    pub(crate) key: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) id: String,
    /// RFC 3339, by the holder's clock.
    pub(crate) claimed_at: String,
    /// RFC 3339, by the holder's clock: `claim-ttl` after the last renewal.
    pub(crate) expires_at: String,
    pub(crate) ttl_seconds: u64,
    /// How many times the holder renewed it.
    pub(crate) renewals: u32,
}

/// What a waiting build makes of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Live,
    Dead,
}

impl Claim {
    /// A new claim on `key_hex` by `holder`, valid for `ttl` from `now`.
    pub(crate) fn new(key_hex: &str, holder: &Holder, now: SystemTime, ttl: Duration) -> Claim {
        let ttl_seconds = ttl.as_secs().clamp(TTL_RANGE.0, TTL_RANGE.1);
        Claim {
            key: key_hex.to_owned(),
            host: holder.host.clone(),
            pid: holder.pid,
            id: holder.id.clone(),
            claimed_at: stamp(now),
            expires_at: stamp(now + Duration::from_secs(ttl_seconds)),
            ttl_seconds,
            renewals: 0,
        }
    }

    /// The same claim renewed at `now`: a new expiry, and new bytes (so a new version).
    pub(crate) fn renewed(&self, now: SystemTime) -> Claim {
        Claim {
            expires_at: stamp(now + self.ttl()),
            renewals: self.renewals.saturating_add(1),
            ..self.clone()
        }
    }

    /// The claim as stored.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a claim serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Reads a claim from a store, where anyone with write access may have put anything:
    /// bounded, every field checked.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Claim, String> {
        if bytes.len() as u64 > MAX_CLAIM_BYTES {
            return Err(format!("larger than {MAX_CLAIM_BYTES} bytes"));
        }
        let claim: Claim =
            serde_json::from_slice(bytes).map_err(|e| format!("not a claim ({e})"))?;
        if claim.key.len() != 64 || !claim.key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("its `key` is not a cache key".into());
        }
        for (field, value) in [
            ("claimed_at", &claim.claimed_at),
            ("expires_at", &claim.expires_at),
        ] {
            humantime::parse_rfc3339(value)
                .map_err(|_| format!("its `{field}` is not an RFC 3339 time"))?;
        }
        Ok(Claim {
            host: crate::outside::clean(&claim.host, MAX_HOST_CHARS),
            id: crate::outside::clean(&claim.id, 40),
            ttl_seconds: claim.ttl_seconds.clamp(TTL_RANGE.0, TTL_RANGE.1),
            ..claim
        })
    }

    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }

    /// When it expires, by its holder's clock.
    pub(crate) fn expires(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.expires_at).ok()
    }

    /// `host (process 123)`, for messages: the host is outside text, shown on one line.
    pub(crate) fn holder(&self) -> String {
        format!(
            "{} (process {})",
            crate::outside::for_terminal(&self.host),
            self.pid
        )
    }

    /// Whether the claim is alive, judged by the written expiry with a margin of one TTL
    /// (see the module docs); `unchanged_for` is how long the waiter has watched this version
    /// of it without a change.
    pub(crate) fn judge(&self, now: SystemTime, unchanged_for: Duration) -> Liveness {
        if unchanged_for > self.ttl() || self.expired(now) {
            Liveness::Dead
        } else {
            Liveness::Live
        }
    }

    /// Whether `gc --remote` may delete it: past its written expiry by a TTL (the same margin
    /// as [`Claim::judge`]).
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.expires()
            .is_none_or(|expires| now > expires + self.ttl())
    }
}

/// A claim that cannot be read (damaged, or written by something else) is judged by watching
/// alone, with the waiter's own TTL.
pub(crate) fn judge_unreadable(unchanged_for: Duration, ttl: Duration) -> Liveness {
    if unchanged_for > ttl {
        Liveness::Dead
    } else {
        Liveness::Live
    }
}

/// How long a waiting build sleeps before it looks again, after waiting `waited`: a quarter
/// of the wait so far, from a quarter of a second up to `ceiling` (at most five seconds), so a
/// short generation is picked up at once and a long one costs few requests.
pub(crate) fn next_poll(waited: Duration, ceiling: Duration) -> Duration {
    let ceiling = ceiling.clamp(Duration::from_millis(250), Duration::from_secs(5));
    (waited / 4).clamp(Duration::from_millis(250), ceiling)
}

/// `claims/<key>`: where a key's claim lives under the store's root.
pub(crate) fn path(key_hex: &str) -> String {
    format!("{DIR}{key_hex}")
}

/// The directory of the claims.
pub(crate) const DIR: &str = "claims/";

fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    fn holder() -> Holder {
        Holder {
            host: "ci-3".into(),
            pid: 42,
            id: "7f00".into(),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn a_claim_round_trips_and_a_renewal_changes_its_bytes() {
        let claim = Claim::new(KEY, &holder(), at(0), Duration::from_secs(180));
        let parsed = Claim::parse(&claim.to_bytes()).unwrap();
        assert_eq!(parsed, claim);
        let renewed = claim.renewed(at(60));
        assert_ne!(renewed.to_bytes(), claim.to_bytes());
        assert_eq!(renewed.expires(), Some(at(240)));
        assert_eq!(renewed.claimed_at, claim.claimed_at);
    }

    #[test]
    fn a_live_claim_dies_unwatched_for_its_ttl_or_long_past_its_expiry() {
        let claim = Claim::new(KEY, &holder(), at(0), Duration::from_secs(60));
        let live = |now, watched| claim.judge(at(now), Duration::from_secs(watched));
        assert_eq!(live(30, 30), Liveness::Live);
        // Unchanged for longer than the TTL on the waiter's own clock: dead, whatever the time.
        assert_eq!(live(30, 61), Liveness::Dead);
        // Past its expiry, but within the margin (the clocks may differ): alive.
        assert_eq!(live(100, 0), Liveness::Live);
        assert_eq!(live(121, 0), Liveness::Dead);
        assert!(!claim.expired(at(120)));
        assert!(claim.expired(at(121)));
        assert_eq!(
            judge_unreadable(Duration::from_secs(61), Duration::from_secs(60)),
            Liveness::Dead
        );
    }

    #[test]
    fn a_hostile_claim_is_refused_or_tamed() {
        assert!(Claim::parse(&vec![b' '; 5000]).is_err());
        assert!(Claim::parse(b"{}").is_err());
        let mut claim = Claim::new(KEY, &holder(), at(0), Duration::from_secs(60));
        claim.key = "../../etc".into();
        assert!(Claim::parse(&claim.to_bytes()).is_err());
        let mut claim = Claim::new(KEY, &holder(), at(0), Duration::from_secs(60));
        claim.expires_at = "soon".into();
        assert!(Claim::parse(&claim.to_bytes()).is_err());
        let mut claim = Claim::new(KEY, &holder(), at(0), Duration::from_secs(60));
        claim.host = format!("evil\u{1b}[2J\n{}", "x".repeat(500));
        claim.ttl_seconds = u64::MAX;
        let tamed = Claim::parse(&claim.to_bytes()).unwrap();
        assert!(!tamed.host.contains('\u{1b}') && !tamed.host.contains('\n'));
        // Cut, with a `…` after the characters kept.
        assert_eq!(tamed.host.chars().count(), MAX_HOST_CHARS + 1);
        assert_eq!(tamed.ttl_seconds, 3600);
    }

    #[test]
    fn polls_start_fast_and_slow_down_to_a_ceiling() {
        let poll = |waited| next_poll(Duration::from_millis(waited), Duration::from_secs(60));
        assert_eq!(poll(0), Duration::from_millis(250));
        assert_eq!(poll(4000), Duration::from_secs(1));
        assert_eq!(poll(600_000), Duration::from_secs(5));
        assert_eq!(
            next_poll(Duration::from_secs(60), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
