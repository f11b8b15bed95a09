//! The states and kinds the SQL schema names, as Rust enums (any thread).
//!
//! Each mirrors a SQL enum or the literals a column takes, spelled exactly
//! as there (`as_str`, and serde for rows read back with `to_jsonb`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The NOTIFY channel for contract events.
pub const CONTRACT_EVENTS_CHANNEL: &str = "eventeum_contract_events";
/// The NOTIFY channel for monitored transactions.
pub const TRANSACTION_EVENTS_CHANNEL: &str = "eventeum_transaction_events";
/// The NOTIFY channel for block events.
pub const BLOCK_EVENTS_CHANNEL: &str = "eventeum_block_events";
/// The NOTIFY channel for backfill progress: one notice per committed piece
/// of a `startBlock` backfill whose events are not notified one by one.
pub const BACKFILL_CHANNEL: &str = "eventeum_backfill";

/// The statuses a monitored transaction goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransactionStatus {
    Unconfirmed,
    Confirmed,
    Failed,
    Invalidated,
}

impl TransactionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TransactionStatus::Unconfirmed => "UNCONFIRMED",
            TransactionStatus::Confirmed => "CONFIRMED",
            TransactionStatus::Failed => "FAILED",
            TransactionStatus::Invalidated => "INVALIDATED",
        }
    }
}

/// `eventeum.event_status`: a contract event's place in the chain's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventStatus {
    /// Stored, fewer than `numBlocksToWait` blocks deep.
    Unconfirmed,
    /// At least `numBlocksToWait` blocks deep.
    Confirmed,
    /// Its block left the canonical chain in a fork.
    Invalidated,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Unconfirmed => "UNCONFIRMED",
            EventStatus::Confirmed => "CONFIRMED",
            EventStatus::Invalidated => "INVALIDATED",
        }
    }
}

/// `eventeum.node_state.status`: how the worker last found a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeStatus {
    /// Followed by polling.
    Connected,
    /// Followed through a `newHeads` subscription.
    Subscribed,
    /// Followed, but the node refuses some calls for its rate limit; they
    /// are retried after a wait, so progress is slower.
    RateLimited,
    /// The last call failed; retried with back-off.
    Down,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Connected => "CONNECTED",
            NodeStatus::Subscribed => "SUBSCRIBED",
            NodeStatus::RateLimited => "RATE_LIMITED",
            NodeStatus::Down => "DOWN",
        }
    }
}

/// `eventeum.outbox.type`: Eventeum's message types, and the application's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    ContractEvent,
    Transaction,
    Block,
    /// Written by `eventeum.publish()`.
    App,
}

impl MessageType {
    /// The NOTIFY channel of a chain message; the application's own messages
    /// are not notified.
    pub fn notify_channel(self) -> Option<&'static str> {
        match self {
            MessageType::ContractEvent => Some(CONTRACT_EVENTS_CHANNEL),
            MessageType::Transaction => Some(TRANSACTION_EVENTS_CHANNEL),
            MessageType::Block => Some(BLOCK_EVENTS_CHANNEL),
            MessageType::App => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ContractEvent => "CONTRACT_EVENT",
            MessageType::Transaction => "TRANSACTION",
            MessageType::Block => "BLOCK",
            MessageType::App => "APP",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            MessageType::ContractEvent,
            MessageType::Transaction,
            MessageType::Block,
            MessageType::App,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }

    /// The class Eventeum's Java consumers deserialize the message into
    /// (Spring AMQP's `__TypeId__` header); none for the application's own.
    pub fn eventeum_class(self) -> Option<&'static str> {
        match self {
            MessageType::ContractEvent => Some("net.consensys.eventeum.dto.message.ContractEvent"),
            MessageType::Transaction => Some("net.consensys.eventeum.dto.message.TransactionEvent"),
            MessageType::Block => Some("net.consensys.eventeum.dto.message.BlockEvent"),
            MessageType::App => None,
        }
    }
}

/// How far the index builder is with a typed view's index
/// (`eventeum.view_indexes.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    Pending,
    Building,
    Ready,
    Failed,
}

impl IndexState {
    pub fn as_str(&self) -> &'static str {
        match self {
            IndexState::Pending => "PENDING",
            IndexState::Building => "BUILDING",
            IndexState::Ready => "READY",
            IndexState::Failed => "FAILED",
        }
    }
}

macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(
    EventStatus,
    NodeStatus,
    MessageType,
    TransactionStatus,
    IndexState
);
