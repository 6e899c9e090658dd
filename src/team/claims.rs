//! The claims in the remote cache as the team commands see them: `stats` and `verify --remote`
//! show the live ones (images other machines are generating now), `gc --remote` deletes the
//! expired ones (left by builds that died) and anything under `claims/` that is not a claim.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Team;
use crate::claim::{self, Claim};
use crate::error::Result;
use crate::storage::{Fetched, Listed, Remote};

/// A claim in the remote cache: a machine generating an image now, or one that died doing it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RemoteClaim {
    /// The cache key it claims, in hex.
    pub key: String,
    /// The machine and process that holds it.
    pub holder: String,
    /// When it expires unless renewed, by its holder's clock.
    pub expires_at: String,
    /// Whether it is alive: `false` once it is past its expiry by a TTL (`gc --remote`
    /// deletes it then).
    pub live: bool,
}

/// An object under `claims/`, read: a claim, or why it is not one.
pub(super) struct ClaimObject {
    listed: Listed,
    claim: std::result::Result<Claim, String>,
}

impl Team {
    /// Reads every object under `claims/`.
    pub(super) fn claim_objects(&self, remote: &Remote) -> Result<Vec<ClaimObject>> {
        let listed = remote.list(&[claim::DIR.to_owned()], false)?;
        let paths: Vec<String> = listed.iter().map(|l| l.path.clone()).collect();
        let texts = remote.read(&paths, claim::MAX_CLAIM_BYTES)?;
        Ok(listed
            .into_iter()
            .zip(texts)
            .filter_map(|(listed, fetched)| {
                let claim = match fetched {
                    Fetched::Bytes(bytes) => Claim::parse(&bytes),
                    // Let go between the listing and the read.
                    Fetched::Missing => return None,
                    Fetched::Refused(why) => Err(why),
                };
                let claim = claim.and_then(|c| {
                    if listed.path == claim::path(&c.key) {
                        Ok(c)
                    } else {
                        Err("a claim filed under another key".into())
                    }
                });
                Some(ClaimObject { listed, claim })
            })
            .collect())
    }

    /// The claims in the remote cache, live first.
    pub fn remote_claims(&self) -> Result<Vec<RemoteClaim>> {
        let remote = self.remote()?;
        let mut claims = claims_of(&self.claim_objects(&remote)?, SystemTime::now());
        claims.sort_by_key(|c| !c.live);
        Ok(claims)
    }
}

/// The readable claims among `objects`, judged at `now`.
pub(super) fn claims_of(objects: &[ClaimObject], now: SystemTime) -> Vec<RemoteClaim> {
    objects
        .iter()
        .filter_map(|o| o.claim.as_ref().ok())
        .map(|c| RemoteClaim {
            key: c.key.clone(),
            holder: c.holder(),
            expires_at: c.expires_at.clone(),
            live: !c.expired(now),
        })
        .collect()
}

/// What `gc --remote` deletes under `claims/`, and why: expired claims, and objects that are
/// not claims once older than `grace` (a probe a build left, a crafted file).
pub(super) fn doomed_claims(
    objects: &[ClaimObject],
    now: SystemTime,
    grace: Duration,
) -> Vec<(&Listed, String)> {
    objects
        .iter()
        .filter_map(|o| {
            let what = match &o.claim {
                Ok(claim) if claim.expired(now) => format!(
                    "an expired claim of {} (the build that held it is gone)",
                    claim.holder()
                ),
                Ok(_) => return None,
                Err(why) => {
                    let young = o.listed.modified.is_none_or(|at| at + grace > now);
                    if young {
                        return None;
                    }
                    format!("not a claim ({})", crate::outside::for_terminal(why))
                }
            };
            Some((&o.listed, what))
        })
        .collect()
}
