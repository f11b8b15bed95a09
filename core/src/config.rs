//! The configuration snapshot (any thread): what the main thread reads from
//! the configuration tables in one transaction and publishes to the
//! followers, resolved into the forms they follow by, and the chain data
//! (block headers) both halves keep of a node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, Bloom, B256};

use crate::broadcast::BroadcasterKind;
use crate::kind::KindTable;
use crate::matcher::{AddressSet, AddressSets, LogMatcher};
use crate::monitor::TransactionMonitor;
use crate::node::NodeOptions;
use crate::spec::FilterDefinition;

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
    /// Every kind table (`eventeum_store`), each once: confirmations and
    /// forks update each that holds rows of a node.
    pub kind_tables: Vec<Arc<KindTable>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BroadcasterConfig {
    pub name: String,
    pub kind: BroadcasterKind,
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
    /// Shared, not copied, when a follower fills in the filter's start:
    /// with 10,000 filters a copy of every definition cost megabytes.
    pub definition: Arc<FilterDefinition>,
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
    /// Where its events are stored; None while its source is not registered
    /// (`eventeum.event_sources`), and then its events are not stored.
    pub storage: Option<FilterStorage>,
}

/// Where a filter's events are stored, and the small keys its rows carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterStorage {
    /// Shared by every filter of the kind.
    pub table: Arc<KindTable>,
    /// `event_sources.source_key`: the filter's rows' `filter_key`.
    pub filter_key: i32,
    /// `event_nodes.node_key` of its node.
    pub node_key: i32,
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
            storage: None,
            definition: Arc::new(definition),
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
