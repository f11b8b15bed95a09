//! The channel types (any thread): the messages between the worker's main
//! thread (Postgres) and the tokio threads (network). This file is the whole
//! contract between the two halves.
//!
//! ```text
//!  main thread                                     tokio
//!  ─────────── Config snapshot (watch) ──────────> supervisor -> one follower per node
//!  <────────── FollowerMessage (bounded mpsc) ──── follower
//!  ─────────── StepAck (oneshot, per step) ──────> follower (advances only on Committed)
//! ```

use alloy::primitives::{Address, B256, U256};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::broadcast::BroadcasterKind;
use crate::config::{Backfill, BackfillOf, BlockHeader, Child};
use crate::rows::{PreparedEvents, UndecodableLog};
use crate::states::NodeStatus;

/// One URL's health, as `node_status.endpoints` shows it (URL redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    pub url: String,
    pub serving: bool,
    pub healthy: bool,
    pub last_error: Option<String>,
}

/// What a follower reports to the main thread.
#[derive(Debug)]
pub enum FollowerMessage {
    Step(Box<ChainStep>),
    /// The chain forked below the follower's cursor.
    Rewind(Rewind),
    /// The node's URLs changed health, or which one serves; and the chain
    /// they serve, once known.
    Endpoints {
        node: String,
        chain_id: Option<u64>,
        endpoints: Vec<EndpointHealth>,
    },
    /// The node failed to answer; recorded in `node_state` without a checkpoint move.
    NodeError {
        node: String,
        error: String,
        /// DOWN, or RATE_LIMITED when the node kept refusing for its rate limit.
        status: NodeStatus,
    },
}

/// The result of following one node over the block range `from..=to`.
#[derive(Debug)]
pub struct ChainStep {
    pub node: String,
    /// The config version the logs were fetched with. The main thread rejects
    /// a step fetched with an older filter set, so no new filter misses a block.
    pub config_version: i64,
    pub from: u64,
    pub to: u64,
    /// The node's head when the step was taken.
    pub head: u64,
    /// How the follower found the node over this step: SUBSCRIBED while a
    /// `newHeads` subscription is live, RATE_LIMITED when calls had to wait.
    pub status: NodeStatus,
    pub kind: StepKind,
    /// The decoded events as rows and messages, built by the follower; the
    /// main thread takes them.
    pub prepared: PreparedEvents,
    pub failures: Vec<UndecodableLog>,
    /// Children its factory events add to address sets.
    pub children: Vec<Child>,
    pub ack: oneshot::Sender<StepAck>,
}

#[derive(Debug)]
pub enum StepKind {
    /// Following the chain: the node's checkpoint moves to `to`.
    Live {
        /// Headers of the step's blocks that are within the fork window of the head.
        headers: Vec<BlockHeader>,
        /// Filters (and set members with a `start_block`) that live following
        /// takes over with this step: they are backfilled up to `from - 1`.
        new_backfills: Vec<(BackfillOf, Backfill)>,
        /// Every block of the range, when block events are on.
        blocks: Vec<BlockHeader>,
        /// Transactions of the range that a monitor matches.
        transactions: Vec<MatchedTransaction>,
    },
    /// Backfilling one filter or set member: its backfill moves to `to`;
    /// the checkpoint stays.
    Backfill {
        of: BackfillOf,
        /// The live checkpoint, against which confirmation depth is measured.
        checkpoint: u64,
    },
}

impl ChainStep {
    /// The block confirmation depth is measured from: the node's head, so
    /// that a follower catching up sends an event already deep enough once,
    /// CONFIRMED, as Eventeum did, rather than UNCONFIRMED and then CONFIRMED.
    pub fn tip(&self) -> u64 {
        match self.kind {
            StepKind::Live { .. } => self.head.max(self.to),
            StepKind::Backfill { checkpoint, .. } => checkpoint,
        }
    }
}

/// A mined transaction that a monitor matched, with its receipt's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedTransaction {
    pub monitor_id: String,
    pub hash: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub contract_address: Option<Address>,
    pub value: U256,
    pub nonce: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub transaction_index: u64,
    /// The block's timestamp (seconds).
    pub block_timestamp: u64,
    /// The call data, 0x-hex.
    pub input: String,
    pub success: bool,
    pub revert_reason: Option<String>,
}

/// A fork: every block above `ancestor` that was stored is orphaned. The main
/// thread invalidates their events, forgets their hashes and moves the
/// checkpoint back to `ancestor`; following then resumes on the new chain.
#[derive(Debug)]
pub struct Rewind {
    pub node: String,
    pub ancestor: u64,
    /// The new chain's hashes at the heights walked back over; events in these
    /// blocks are still canonical and are never invalidated.
    pub canonical: Vec<B256>,
    /// The fork reached below the window: `ancestor` is the oldest block the
    /// follower could not check, assumed final.
    pub deeper_than_window: bool,
    pub head: u64,
    pub ack: oneshot::Sender<StepAck>,
}

/// The main thread's answer to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAck {
    /// Rows, statuses and checkpoint are committed; the follower moves on.
    Committed,
    /// The configuration changed since the step was fetched; fetch it again
    /// with the snapshot that is now published.
    Stale,
}

/// A batch of outbox rows for one broadcaster, in outbox order. The relay
/// publishes them in that order and stops at the first failure, so that no
/// message overtakes an earlier one with the same key.
#[derive(Debug, Clone)]
pub struct Publish {
    pub broadcaster: String,
    pub kind: BroadcasterKind,
    /// The broadcaster's normalized options.
    pub options: serde_json::Value,
    pub messages: Vec<OutboxMessage>,
    /// Read while an earlier batch of the broadcaster was in flight: the relay
    /// skips it if that batch failed, so that nothing overtakes a retry.
    pub behind_another: bool,
}

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub message_id: String,
    pub message_type: String,
    pub destination: String,
    pub key: Option<String>,
    /// The message JSON, with `retries` already set to the earlier failed attempts.
    pub payload: String,
}

/// What the relay did with a batch.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub broadcaster: String,
    /// Outbox ids the broker acknowledged.
    pub delivered: Vec<i64>,
    /// The first message that failed; the rest of the batch was not sent.
    pub failure: Option<DeliveryFailure>,
    /// Not sent at all: the batch ahead of it failed.
    pub skipped: bool,
}

impl Delivery {
    /// A delivery of nothing yet, to be filled in.
    pub fn nothing(broadcaster: &str) -> Self {
        Delivery {
            broadcaster: broadcaster.to_string(),
            delivered: vec![],
            failure: None,
            skipped: false,
        }
    }

    /// A batch behind one that failed: nothing of it counts as delivered.
    pub fn skipped(broadcaster: &str) -> Self {
        Delivery {
            skipped: true,
            ..Delivery::nothing(broadcaster)
        }
    }
}

/// The first message of a batch that was not delivered, and why.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub id: i64,
    pub error: DeliveryError,
}

/// Why a message was not delivered, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The broker or endpoint may take it later (down, timed out, HTTP 5xx,
    /// 408 or 429): retried with backoff, holding back the messages behind it.
    #[error("{cause}")]
    Transient { cause: String },
    /// Retrying cannot fix it (HTTP 4xx, a message too large, a destination
    /// the network policy refuses): dead-lettered, so that it holds back nothing.
    #[error("{cause}")]
    Permanent { cause: String },
}

impl DeliveryError {
    pub fn transient(cause: impl Into<String>) -> Self {
        DeliveryError::Transient {
            cause: cause.into(),
        }
    }

    pub fn permanent(cause: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            cause: cause.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent { .. })
    }

    /// Rewrites its cause (secrets scrubbed, say), keeping its kind.
    pub fn rewrite_cause(&mut self, rewrite: impl FnOnce(&str) -> String) {
        match self {
            DeliveryError::Transient { cause } | DeliveryError::Permanent { cause } => {
                *cause = rewrite(cause)
            }
        }
    }
}

impl From<ChainStep> for FollowerMessage {
    fn from(step: ChainStep) -> Self {
        FollowerMessage::Step(Box::new(step))
    }
}
