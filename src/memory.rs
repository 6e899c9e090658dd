//! One budget for the memory decoded images take, shared by every thread of the process.
//!
//! Each image's decode is bounded on its own (`provider::check`, `derive`), but several at once
//! (`max-concurrency` generations, derivations on every core) would add up: four 8192² 16-bit
//! PNGs need almost 2 GB. A thread reserves what an image will take before decoding it and
//! waits while the budget is spent; an image larger than the whole budget waits until it has
//! the budget to itself. Only threads that hold no other reservation may wait (the workers of
//! generation and derivation, never rayon's), so waiting never deadlocks.

use std::sync::{Condvar, Mutex};

/// The most bytes decoded images may take at once.
pub(crate) const BUDGET: u64 = 1 << 30;

static USED: Mutex<u64> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// Bytes of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation(u64);

/// Reserves `bytes` (at most the whole budget), waiting until they are free.
pub(crate) fn reserve(bytes: u64) -> Reservation {
    let bytes = bytes.min(BUDGET);
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    while *used + bytes > BUDGET {
        used = FREED.wait(used).unwrap_or_else(|e| e.into_inner());
    }
    *used += bytes;
    Reservation(bytes)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.0;
        FREED.notify_all();
    }
}

/// What decoding an image of `width` × `height` takes at its peak: the decoded samples (up to
/// 16 bits per channel, with alpha) and their 8-bit copy.
pub(crate) fn decode_cost(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * (8 + 4)
}

/// The bytes in use now, for tests.
#[cfg(test)]
pub(crate) fn in_use() -> u64 {
    *USED.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Four images each larger than half the budget: never more than the budget at once, and
    /// every one gets its turn.
    #[test]
    fn concurrent_reservations_stay_within_the_budget() {
        let peak = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let reservation = reserve(BUDGET / 2 + 1);
                    peak.fetch_max(in_use(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    drop(reservation);
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 4);
        assert!(peak.load(Ordering::SeqCst) <= BUDGET);
        // Larger than the budget: capped, and still served.
        drop(reserve(BUDGET * 4));
        assert_eq!(decode_cost(8192, 8192), 8192 * 8192 * 12);
    }
}
