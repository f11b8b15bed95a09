//! Pacing a node (tokio): at most `maxRequestsPerSecond` requests, and a
//! rate-limited call retried on its own after a jittered, growing wait (or
//! the node's `Retry-After`) instead of failing the step it belongs to.
//!
//! alloy's `ThrottleLayer` and `RetryBackoffLayer` wrap the transport, which
//! hides the pub-sub frontend that `newHeads` subscriptions need; pacing in
//! the client works the same over HTTP and WebSocket.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::limits::{RATE_LIMIT_BACKOFF, RATE_LIMIT_BACKOFF_CAP, RATE_LIMIT_RETRIES};

/// Spaces the requests to one node.
#[derive(Debug)]
pub(super) struct Pacer {
    /// The gap between two requests; zero when unlimited.
    gap: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(requests_per_second: u64) -> Self {
        let gap = match requests_per_second {
            0 => Duration::ZERO,
            n => Duration::from_secs(1) / u32::try_from(n).unwrap_or(u32::MAX),
        };
        Pacer {
            gap,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn turn(&self) {
        if self.gap.is_zero() {
            return;
        }
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + self.gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How long to wait before retry `attempt` (1, 2, ...) of a rate-limited
/// call: the node's `Retry-After` when it gave one, else a doubling wait;
/// either capped, plus up to half again of jitter so that the concurrent
/// calls of a step do not come back together. None once the retries are spent.
pub(super) fn retry_wait(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if attempt > RATE_LIMIT_RETRIES {
        return None;
    }
    let doubling = RATE_LIMIT_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let base = retry_after.unwrap_or(doubling).min(RATE_LIMIT_BACKOFF_CAP);
    Some(base + base.mul_f64(jitter() / 2.0))
}

/// A number in [0, 1), different on every call.
fn jitter() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_honour_retry_after_and_end() {
        let first = retry_wait(1, None).unwrap();
        assert!(first >= RATE_LIMIT_BACKOFF && first <= RATE_LIMIT_BACKOFF.mul_f64(1.5));
        let third = retry_wait(3, None).unwrap();
        assert!(third >= RATE_LIMIT_BACKOFF * 4, "{third:?}");
        let told = retry_wait(1, Some(Duration::from_secs(2))).unwrap();
        assert!(told >= Duration::from_secs(2) && told <= Duration::from_secs(3));
        let huge = retry_wait(1, Some(Duration::from_secs(86_400))).unwrap();
        assert!(huge <= RATE_LIMIT_BACKOFF_CAP.mul_f64(1.5));
        assert_eq!(retry_wait(RATE_LIMIT_RETRIES + 1, None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pacer_spaces_requests() {
        let pacer = Pacer::new(10);
        let start = Instant::now();
        for _ in 0..11 {
            pacer.turn().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_millis(1_100), "{took:?}");
    }
}
