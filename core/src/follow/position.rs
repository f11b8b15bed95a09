//! What a follower knows of the chain it has committed (tokio): the cursor,
//! the fork window's hashes, the adaptive `eth_getLogs` ranges and the
//! filters' backfills.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alloy::primitives::B256;
use tokio::sync::broadcast::error::RecvError;

use crate::config::{Backfill, BackfillOf, NodeConfig};
use crate::limits::{BACKFILL_FIRST_RANGE, DEFAULT_RANGE, HEADS_REMEMBERED, SMALL_ANSWER};
use crate::node::NodeOptions;
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
    /// Backfills of filters and set members, with when each was added: a
    /// filter (or member) removed and added again is a new one.
    pub backfills: HashMap<BackfillOf, (i64, Backfill)>,
    /// Filters not yet taken over by live following: the first block of each
    /// (resolved from when it was registered), by id, with when it was added.
    pub starts: HashMap<String, (i64, u64)>,
    /// The node's configuration with every filter's start filled in, and
    /// what it was made from: (config version, backfills, starts).
    pub resolved: Option<((i64, usize, usize), Arc<NodeConfig>)>,
    /// The configuration version `backfills` was last checked against.
    pub checked_version: Option<i64>,
    /// The `newHeads` subscription of a PUBSUB node, while it is live.
    pub heads: Option<HeadSubscription>,
    /// The heads read recently, each with when (milliseconds since the
    /// epoch, the database server's clock): where a registration starts.
    seen: VecDeque<(u64, u64)>,
    /// The newest head the subscription pushed (or the head when it began).
    pushed: Option<u64>,
    /// Since when the node has had a head newer than any pushed.
    unpushed_since: Option<Instant>,
    /// The follower (re)started from a checkpoint and has not yet checked it
    /// against the node's `maxBlocksToSync`.
    pub sync_limit_pending: bool,
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
            starts: HashMap::new(),
            resolved: None,
            checked_version: None,
            heads: None,
            seen: VecDeque::with_capacity(HEADS_REMEMBERED),
            pushed: None,
            unpushed_since: None,
            sync_limit_pending: cursor.is_some(),
        }
    }

    /// Waits for the next block: pushed by the node when subscribed, else (or
    /// if the push does not come) after one polling interval.
    pub async fn wait_for_head(&mut self, poll: Duration) {
        let Some(heads) = &mut self.heads else {
            return tokio::time::sleep(poll).await;
        };
        match tokio::time::timeout(poll, heads.recv()).await {
            Ok(Ok(header)) => {
                self.pushed = Some(self.pushed.unwrap_or(0).max(header.number));
                self.unpushed_since = None;
            }
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(RecvError::Closed)) => self.heads = None, // resubscribe next turn
        }
    }

    /// Remembers that the node's head was `head` now.
    pub fn saw_head(&mut self, head: u64) {
        if self.seen.len() == HEADS_REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back((unix_millis(), head));
    }

    /// The last head read at or before `at` (milliseconds since the epoch),
    /// with when it was read.
    pub fn head_seen_by(&self, at: u64) -> Option<(u64, u64)> {
        self.seen
            .iter()
            .rev()
            .find(|(when, _)| *when <= at)
            .copied()
    }

    /// A subscription whose socket stays open but pushes nothing while the
    /// head moves is dropped, to be made again: true when `head` has been
    /// newer than every pushed head for two polling intervals (at least 2 s).
    pub fn drop_silent_subscription(&mut self, head: u64, poll: Duration) -> bool {
        if self.heads.is_none() {
            self.pushed = None;
            self.unpushed_since = None;
            return false;
        }
        let pushed = *self.pushed.get_or_insert(head);
        if head <= pushed {
            self.unpushed_since = None;
            return false;
        }
        let since = *self.unpushed_since.get_or_insert_with(Instant::now);
        if since.elapsed() < (poll * 2).max(Duration::from_secs(2)) {
            return false;
        }
        self.heads = None;
        self.pushed = None;
        self.unpushed_since = None;
        true
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
    /// (`blocks` blocks, `logs` logs), toward `target` logs
    /// ([`crate::limits::BACKFILL_RANGE_LOGS`], more from a rate-limited node).
    pub fn size_backfill_range(&mut self, blocks: u64, logs: usize, cap: u64, target: usize) {
        let target = target as u64;
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
    if options.max_block_range > 0 {
        options.max_block_range
    } else {
        DEFAULT_RANGE
    }
}

/// The first block worth reading with `head` the node's head: Eventeum's
/// `maxBlocksToSync` keeps the last that many blocks (0 keeps every block).
pub(super) fn sync_floor(options: &NodeOptions, head: u64) -> u64 {
    match options.max_blocks_to_sync {
        0 => 0,
        max => (head + 1).saturating_sub(max),
    }
}

/// Now, in milliseconds since the epoch.
pub(super) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
