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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, Bloom, B256, U256};
use tokio::sync::oneshot;

use crate::decode::DecodedParameters;
use crate::follow::EndpointHealth;
use crate::matcher::{AddressSet, AddressSets, LogMatcher};
use crate::monitor::TransactionMonitor;
use crate::node::NodeOptions;
use crate::rows::PreparedEvents;
use crate::spec::FilterDefinition;
use crate::states::NodeStatus;

/// Everything the followers need, read from the configuration tables in one
/// transaction. `version` is `eventeum.config_version` at that moment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    pub version: i64,
    pub bytes_to_ascii: bool,
    pub nodes: BTreeMap<String, NodeConfig>,
    /// Broadcasters the relay publishes to (consumer groups are not among them).
    pub broadcasters: Vec<BroadcasterConfig>,
    /// Whether any broadcaster or consumer group reads the outbox: if none
    /// does, a quiet backfill builds no messages.
    pub outbox_readers: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BroadcasterConfig {
    pub name: String,
    pub kind: crate::broadcast::BroadcasterKind,
    pub options: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    pub url: String,
    pub options: NodeOptions,
    /// When the node was added (microseconds since the epoch): its first
    /// contact starts at the first block mined at or after that second.
    pub added_at: i64,
    /// The last block committed for this node, if any.
    pub checkpoint: Option<u64>,
    /// The chain its URLs serve, once one answered.
    pub chain_id: Option<u64>,
    /// Hashes of the blocks committed most recently (`eventeum.recent_blocks`),
    /// the window a follower checks forks against.
    pub recent_blocks: BTreeMap<u64, B256>,
    pub filters: Vec<Arc<FilterConfig>>,
    pub monitors: Vec<Arc<MonitorConfig>>,
    /// Progress of the backfills of set members added with a `start_block`
    /// (`eventeum.member_backfill`), by member.
    pub member_backfills: BTreeMap<BackfillOf, Backfill>,
}

impl NodeConfig {
    /// The sets its filters read, each once.
    pub fn sets(&self) -> BTreeMap<&str, &Arc<AddressSet>> {
        self.filters
            .iter()
            .flat_map(|f| &f.matcher.sets)
            .map(|s| (s.name.as_str(), s))
            .collect()
    }

    /// When each of its filters and set members was added, to look up by
    /// what a backfill is for: built once, asked once per backfill.
    pub fn added(&self) -> Added<'_> {
        Added {
            filters: self
                .filters
                .iter()
                .map(|f| (f.id.as_str(), f.added_at))
                .collect(),
            sets: self.sets(),
        }
    }

    /// Whether a running follower must be restarted to pick up `other`.
    /// Filter changes do not restart it; they reach it through the snapshot.
    pub fn needs_restart(&self, other: &NodeConfig) -> bool {
        self.url != other.url || self.options != other.options
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    pub id: String,
    pub definition: FilterDefinition,
    pub topic0: B256,
    /// When the filter was added (microseconds since the epoch): a filter
    /// removed and added again under its id is a new filter.
    pub added_at: i64,
    /// The first block whose logs the filter takes: its `startBlock`, or the
    /// first block at or after its registration once the follower resolved
    /// it. None only for filters that predate registration-time starts.
    pub start: Option<u64>,
    /// Progress of the filter's backfill (from its start up to where live
    /// following took it over), once live following took the filter.
    pub backfill: Option<Backfill>,
    /// Its emitters and indexed-parameter filters, resolved against the
    /// snapshot's address sets.
    pub matcher: LogMatcher,
    /// The sets its events add children to, when it is a factory's filter.
    pub feeds: Vec<Feed>,
}

/// When a node's filters and set members were added (microseconds since the
/// epoch); see [`NodeConfig::added`].
pub struct Added<'a> {
    filters: HashMap<&'a str, i64>,
    sets: BTreeMap<&'a str, &'a Arc<AddressSet>>,
}

impl Added<'_> {
    /// When the filter `id` was added, if it is configured.
    pub fn filter(&self, id: &str) -> Option<i64> {
        self.filters.get(id).copied()
    }

    /// When what a backfill is for was added, if it is still configured: a
    /// filter, or a member of a set the node's filters read.
    pub fn get(&self, of: &BackfillOf) -> Option<i64> {
        match of {
            BackfillOf::Filter(id) => self.filter(id),
            BackfillOf::Member { set, address } => self
                .sets
                .get(set.as_str())
                .and_then(|s| s.members.get(address))
                .map(|m| m.added_at),
        }
    }
}

/// A set a factory's events add children to: the address in the event's
/// parameter at `position` (its declaration position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub set: String,
    pub position: u32,
}

/// A child a factory's event added to a set, in the step that stores the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub set: String,
    pub address: Address,
    /// The factory event's block: the child is backfilled from there.
    pub block_number: u64,
    /// The factory event (filter and Eventeum id): a fork that invalidates
    /// it takes the child out of the set.
    pub filter_id: String,
    pub event_id: String,
}

impl FilterConfig {
    /// A filter as a snapshot holds it, resolved against `sets`.
    pub fn new(
        id: String,
        definition: FilterDefinition,
        added_at: i64,
        backfill: Option<Backfill>,
        sets: &AddressSets,
    ) -> Self {
        FilterConfig {
            id,
            topic0: definition.specification.topic0(),
            start: definition.start_block.or(backfill.map(|b| b.from)),
            matcher: LogMatcher::resolve(&definition, sets),
            feeds: vec![],
            definition,
            added_at,
            backfill,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    pub id: String,
    pub monitor: TransactionMonitor,
}

/// What a backfill fetches blocks for: a filter, from its start; or a member
/// of an address set, from its `start_block`, for the filters that read its set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackfillOf {
    Filter(String),
    Member { set: String, address: Address },
}

/// A filter's backfill: blocks `from..=to` are fetched for it alone, below
/// the block where live following took it over. `current` is the last block done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    pub from: u64,
    pub to: u64,
    pub current: u64,
}

impl Backfill {
    pub fn is_done(&self) -> bool {
        self.current >= self.to
    }
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

/// A block header, as far as following needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    pub timestamp: u64,
    /// Which addresses and topics the block's logs may hold: checked against
    /// an `eth_getLogs` answer that has none for the block.
    pub logs_bloom: Bloom,
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

/// Where a log sits on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    pub address: String,
    pub block_number: u64,
    pub block_hash: String,
    pub block_timestamp: Option<u64>,
    pub transaction_hash: String,
    pub log_index: u64,
}

/// A log decoded against one filter: it becomes one `contract_events` row.
#[derive(Debug, Clone)]
pub struct DecodedEvent {
    pub filter: Arc<FilterConfig>,
    pub position: LogPosition,
    pub parameters: DecodedParameters,
}

/// A log that matched a filter's address and topic0 but not its specification.
#[derive(Debug, Clone)]
pub struct UndecodableLog {
    pub filter_id: String,
    pub position: LogPosition,
    pub topics: Vec<B256>,
    pub data: Vec<u8>,
    pub reason: String,
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
    pub kind: crate::broadcast::BroadcasterKind,
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

#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub id: i64,
    pub error: String,
    /// A rejection that retrying cannot fix (HTTP 4xx, too large): dead-lettered.
    pub permanent: bool,
}
