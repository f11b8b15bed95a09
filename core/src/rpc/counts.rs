//! Per-node call counts (any thread): written by tokio threads as calls end,
//! taken by the main thread for the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// JSON-RPC calls made, failed and refused for a rate limit, per node, since
/// the main thread last collected them.
#[derive(Debug, Default)]
pub struct CallCounts {
    calls: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
    incomplete: AtomicU64,
}

impl CallCounts {
    pub(super) fn record(&self, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn record_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_incomplete(&self) {
        self.incomplete.fetch_add(1, Ordering::Relaxed);
    }
}

static CALL_COUNTS: Mutex<BTreeMap<String, Arc<CallCounts>>> = Mutex::new(BTreeMap::new());

pub(super) fn counts_of(node: &str) -> Arc<CallCounts> {
    let mut all = CALL_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(node.to_string()).or_default().clone()
}

/// One node's calls since the last [`take_call_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCalls {
    /// The node's name.
    pub node: String,
    /// Requests sent.
    pub calls: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Answers that were a rate limit (each retried later).
    pub rate_limited: u64,
    /// `eth_getLogs` answers missing logs that the block's bloom and a second
    /// query by block hash showed were there (a lagging backend).
    pub incomplete: u64,
}

/// Takes the counts gathered since the last call, for each node that made calls.
pub fn take_call_counts() -> Vec<NodeCalls> {
    let all = CALL_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .map(|(node, counts)| NodeCalls {
            node: node.clone(),
            calls: counts.calls.swap(0, Ordering::Relaxed),
            errors: counts.errors.swap(0, Ordering::Relaxed),
            rate_limited: counts.rate_limited.swap(0, Ordering::Relaxed),
            incomplete: counts.incomplete.swap(0, Ordering::Relaxed),
        })
        .filter(|c| c.calls > 0)
        .collect()
}
