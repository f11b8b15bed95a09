//! What a follower knows of the chain it has committed (tokio): the cursor,
//! the fork window's hashes, the adaptive `eth_getLogs` ranges and the
//! filters' backfills.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use alloy::primitives::B256;
use tokio::sync::broadcast::error::RecvError;

use crate::limits::{BACKFILL_FIRST_RANGE, BACKFILL_PIECE_LOGS, DEFAULT_RANGE, SMALL_ANSWER};
use crate::node::NodeOptions;
use crate::protocol::Backfill;
use crate::rpc::HeadSubscription;

/// What the follower knows of the chain it has committed.
pub(super) struct Position {
    /// The last committed block; None before the first contact.
    pub cursor: Option<u64>,
    /// Committed canonical hashes within the fork window.
    pub known: BTreeMap<u64, B256>,
    /// Blocks per `eth_getLogs`: halved when the node refuses a range, grown
    /// again while answers are small.
    pub range: u64,
    /// Blocks per backfill `eth_getLogs`: sized by the log density seen so
    /// far, starting small so that a dense start does not arrive all at once.
    pub backfill_range: u64,
    /// Backfills of filters with a `startBlock`, by filter id, with when the
    /// filter was added: a filter removed and added again is a new filter.
    pub backfills: HashMap<String, (i64, Backfill)>,
    /// The configuration version `backfills` was last checked against.
    pub checked_version: Option<i64>,
    /// The `newHeads` subscription of a PUBSUB node, while it is live.
    pub heads: Option<HeadSubscription>,
}

impl Position {
    /// A follower's position at `cursor` (None before the first contact),
    /// with the committed hashes it knows and its largest `eth_getLogs` range.
    pub fn new(cursor: Option<u64>, known: BTreeMap<u64, B256>, range: u64) -> Self {
        Position {
            cursor,
            known,
            range,
            backfill_range: BACKFILL_FIRST_RANGE.min(range),
            backfills: HashMap::new(),
            checked_version: None,
            heads: None,
        }
    }

    /// Waits for the next block: pushed by the node when subscribed, else (or
    /// if the push does not come) after one polling interval.
    pub async fn wait_for_head(&mut self, poll: Duration) {
        let Some(heads) = &mut self.heads else {
            return tokio::time::sleep(poll).await;
        };
        match tokio::time::timeout(poll, heads.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(RecvError::Closed)) => self.heads = None, // resubscribe next turn
        }
    }

    pub fn shrink_range(&mut self) {
        self.range = (self.range / 2).max(1);
        self.backfill_range = self.backfill_range.min(self.range);
    }

    pub fn grow_range(&mut self, logs: usize, cap: u64) {
        if logs < SMALL_ANSWER {
            self.range = (self.range * 2).min(cap);
        }
    }

    /// A new backfill starts small again: ranges sized for the last filter's
    /// logs may be far too large for this one, and its first rows would wait
    /// for the whole first range.
    pub fn restart_backfill_ranges(&mut self) {
        self.backfill_range = BACKFILL_FIRST_RANGE.min(self.range);
    }

    /// Sizes the next backfill range from the log density of the last one
    /// (`blocks` blocks, `logs` logs), toward two pieces per range: enough
    /// that one piece commits while the next range is fetched.
    pub fn size_backfill_range(&mut self, blocks: u64, logs: usize, cap: u64) {
        let target = 2 * BACKFILL_PIECE_LOGS as u64;
        let sized = if logs == 0 {
            blocks.saturating_mul(2)
        } else {
            (blocks.saturating_mul(target) / logs as u64).min(blocks.saturating_mul(2))
        };
        self.backfill_range = sized.clamp(1, cap.min(self.range));
    }
}

/// The most blocks one `eth_getLogs` may cover for this node.
pub(super) fn range_cap(options: &NodeOptions) -> u64 {
    if options.max_blocks_to_sync > 0 {
        options.max_blocks_to_sync
    } else {
        DEFAULT_RANGE
    }
}
