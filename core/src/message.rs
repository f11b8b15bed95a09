//! Messages (stage: rendering; any thread): Eventeum's message JSON, rendered
//! in this one place for every channel: NOTIFY now, the outbox and brokers
//! later.

use std::ffi::CStr;
use std::fmt::Write;

use crate::states::{EventStatus, MessageType, TransactionStatus};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// NOTIFY payloads must be shorter than 8000 bytes.
pub const NOTIFY_PAYLOAD_LIMIT: usize = 7999;

/// What a contract event's message holds besides its id (twice) and its
/// parameters: names, hashes, numbers, about 560 bytes.
const MESSAGE_FIELDS_BYTES: usize = 640;

/// What `eventeum_backfill` carries for a committed backfill piece: the rows
/// of blocks `fromBlock..=toBlock` are in `eventeum.contract_events`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillPiece<'a> {
    /// The filter backfilled; or the set member, for the filters reading its set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_set: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub node_name: &'a str,
    pub from_block: u64,
    pub to_block: u64,
    /// Events stored by this piece.
    pub events: usize,
}

impl BackfillPiece<'_> {
    pub fn notice(&self) -> String {
        serde_json::to_string(self).expect("backfill notices always serialize")
    }
}

/// A row of `eventeum.contract_events`, as `to_jsonb(row)` returns it.
///
/// The parameter lists stay raw JSON so that uint256-sized numbers pass
/// through untouched.
#[derive(Debug, Deserialize)]
pub struct ContractEventRecord {
    pub id: String,
    pub filter_id: String,
    pub node: String,
    pub name: String,
    pub address: String,
    pub block_number: i64,
    pub block_hash: String,
    pub transaction_hash: String,
    pub log_index: i32,
    pub indexed_parameters: Box<RawValue>,
    pub non_indexed_parameters: Box<RawValue>,
    pub event_specification_signature: String,
    pub status: EventStatus,
    pub block_timestamp: Option<i64>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// A message on its way out: to NOTIFY now, and to the outbox for brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Stable across replays: consumers dedup on it.
    pub message_id: String,
    /// The broker key (Kafka key; ordering is kept per key).
    pub key: String,
    /// What a RabbitMQ routing key ends with: the filter id or transaction hash.
    pub route: String,
    /// Eventeum's message JSON.
    pub payload: String,
    /// What NOTIFY carries instead of the payload, when the payload is too
    /// large for it: a reference to the row.
    pub reference: Option<String>,
    /// The broadcasters it goes to, when its filter or monitor names them; else all.
    pub targets: Option<Vec<String>>,
}

impl Outgoing {
    /// What NOTIFY carries: the message, or a reference when it is too large.
    pub fn notice(&self) -> &str {
        self.reference.as_deref().unwrap_or(&self.payload)
    }
}

/// Messages on their way out, with their NOTIFY payloads back to back in
/// one buffer, each ended by a NUL, as `Async_Notify` takes them: built off
/// the main thread for a backfill piece, so that the main thread queues
/// 10,000 notifications without an allocation or a copy each.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<Outgoing>,
    notices: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages that go to the outbox only, without a NOTIFY each.
    pub fn without_notices(messages: Vec<Outgoing>) -> Batch {
        Batch {
            messages,
            notices: Vec::new(),
        }
    }

    /// Whether its messages are notified one by one (else: outbox only).
    pub fn has_notices(&self) -> bool {
        !self.notices.is_empty()
    }

    /// Adds `other`'s messages after these.
    pub fn append(&mut self, other: Batch) {
        self.messages.extend(other.messages);
        self.notices.extend_from_slice(&other.notices);
    }

    /// The NOTIFY payloads, in the messages' order.
    pub fn notices(&self) -> impl Iterator<Item = &CStr> {
        let mut rest = self.notices.as_slice();
        std::iter::from_fn(move || {
            let notice = CStr::from_bytes_until_nul(rest).ok()?;
            rest = &rest[notice.count_bytes() + 1..];
            Some(notice)
        })
    }
}

impl FromIterator<Outgoing> for Batch {
    fn from_iter<I: IntoIterator<Item = Outgoing>>(messages: I) -> Batch {
        let messages: Vec<Outgoing> = messages.into_iter().collect();
        let mut notices = Vec::with_capacity(messages.iter().map(|m| m.notice().len() + 1).sum());
        for message in &messages {
            // JSON escapes every control character, so a notice has no NUL of its own.
            notices.extend_from_slice(message.notice().as_bytes());
            notices.push(0);
        }
        Batch { messages, notices }
    }
}

impl From<Vec<Outgoing>> for Batch {
    fn from(messages: Vec<Outgoing>) -> Batch {
        messages.into_iter().collect()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContractEventDetails<'a> {
    name: &'a str,
    filter_id: &'a str,
    node_name: &'a str,
    indexed_parameters: &'a RawValue,
    non_indexed_parameters: &'a RawValue,
    transaction_hash: &'a str,
    log_index: i32,
    block_number: i64,
    block_hash: &'a str,
    address: &'a str,
    status: &'a str,
    event_specification_signature: &'a str,
    network_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    id: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    details: D,
    retries: u32,
}

/// A reference sent instead of a message that would not fit in a NOTIFY.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reference<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    /// Always true: fetch the row from `eventeum.contract_events`.
    truncated: bool,
    filter_id: &'a str,
    node_name: &'a str,
    block_hash: &'a str,
    status: &'a str,
}

impl ContractEventRecord {
    /// Eventeum's `CONTRACT_EVENT` message.
    pub fn message(&self) -> String {
        let details = ContractEventDetails {
            name: &self.name,
            filter_id: &self.filter_id,
            node_name: &self.node,
            indexed_parameters: &self.indexed_parameters,
            non_indexed_parameters: &self.non_indexed_parameters,
            transaction_hash: &self.transaction_hash,
            log_index: self.log_index,
            block_number: self.block_number,
            block_hash: &self.block_hash,
            address: &self.address,
            status: self.status.as_str(),
            event_specification_signature: &self.event_specification_signature,
            network_name: &self.node,
            timestamp: self.block_timestamp,
            id: &self.id,
        };
        let envelope = Envelope {
            id: &self.id,
            kind: MessageType::ContractEvent.as_str(),
            details,
            retries: 0,
        };
        // Sized for the whole message up front, not grown a few bytes at a time.
        let mut message = Vec::with_capacity(
            MESSAGE_FIELDS_BYTES
                + 2 * self.id.len()
                + self.indexed_parameters.get().len()
                + self.non_indexed_parameters.get().len(),
        );
        serde_json::to_writer(&mut message, &envelope).expect("message fields always serialize");
        String::from_utf8(message).expect("serde_json writes UTF-8")
    }

    /// The message, or a small reference to the row when the message is too
    /// large for NOTIFY.
    pub fn notify_payload(&self) -> String {
        let message = self.message();
        self.reference_for(&message).unwrap_or(message)
    }

    /// The reference NOTIFY carries instead of `message`, when the message is too large for it.
    fn reference_for(&self, message: &str) -> Option<String> {
        if message.len() <= NOTIFY_PAYLOAD_LIMIT {
            return None;
        }
        let reference = Reference {
            id: &self.id,
            kind: MessageType::ContractEvent.as_str(),
            truncated: true,
            filter_id: &self.filter_id,
            node_name: &self.node,
            block_hash: &self.block_hash,
            status: self.status.as_str(),
        };
        Some(serde_json::to_string(&reference).expect("reference fields always serialize"))
    }
}

impl ContractEventRecord {
    /// Keyed as Eventeum keys it: by the filter's correlation id, else by
    /// the event id, the same for every status of the event, so that its
    /// UNCONFIRMED, CONFIRMED and INVALIDATED share a Kafka partition.
    pub fn outgoing(&self) -> Outgoing {
        let message_id = [self.id.as_str(), ":", self.status.as_str()].concat();
        let payload = self.message();
        Outgoing {
            key: self
                .correlation_id
                .clone()
                .unwrap_or_else(|| self.id.clone()),
            message_id,
            route: self.filter_id.clone(),
            reference: self.reference_for(&payload),
            payload,
            targets: None,
        }
    }
}

/// A stored chain message with `retries` set to `attempts`. Messages are
/// rendered with `"retries":0` as their last field (Eventeum's field order),
/// so a retry changes that number alone and every other byte stays as it
/// was. Rows stored as jsonb text before 0.5.0 end in `"retries": 0}`.
pub fn with_retries(payload: &str, attempts: i32) -> std::borrow::Cow<'_, str> {
    if attempts <= 0 {
        return payload.into();
    }
    for ending in ["\"retries\":0}", "\"retries\": 0}"] {
        if let Some(start) = payload.strip_suffix(ending) {
            let (name, _) = ending.split_at(ending.len() - 2);
            return format!("{start}{name}{attempts}}}").into();
        }
    }
    payload.into()
}

/// Eventeum's event id: `<txHash>-<blockHash>-<logIndex>`.
pub fn contract_event_id(transaction_hash: &str, block_hash: &str, log_index: i32) -> String {
    // Built in place: format! would grow the string a few times on the way.
    let mut id = String::with_capacity(transaction_hash.len() + block_hash.len() + 22);
    id.push_str(transaction_hash);
    id.push('-');
    id.push_str(block_hash);
    id.push('-');
    write!(id, "{log_index}").expect("writing to a String cannot fail");
    id
}

/// A row of `eventeum.transactions`, as `to_jsonb(row)` returns it.
#[derive(Debug, Deserialize)]
pub struct TransactionRecord {
    pub monitor_id: String,
    pub node: String,
    pub hash: String,
    pub from_address: String,
    pub to_address: Option<String>,
    pub contract_address: Option<String>,
    /// numeric(78,0): kept raw so that values above 2^64 stay exact.
    pub value: Box<RawValue>,
    pub nonce: u64,
    pub block_number: u64,
    pub block_hash: String,
    pub transaction_index: u64,
    pub status: TransactionStatus,
    pub revert_reason: Option<String>,
    /// NULL for rows stored before 0.5.0.
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub block_timestamp: Option<u64>,
}

/// Eventeum's `TransactionDetails`; like Eventeum (`NON_NULL`), a field
/// without a value is left out rather than sent as null.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionDetails<'a> {
    hash: &'a str,
    nonce: String,
    block_hash: &'a str,
    block_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    transaction_index: String,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    value: String,
    node_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revert_reason: Option<&'a str>,
    status: &'a str,
}

impl TransactionRecord {
    /// Eventeum's `TRANSACTION` message; quantities are hex strings, as in its example.
    pub fn message(&self) -> String {
        let value = alloy::primitives::U256::from_str_radix(self.value.get().trim_matches('"'), 10)
            .unwrap_or_default();
        let details = TransactionDetails {
            hash: &self.hash,
            nonce: format!("{:#x}", self.nonce),
            block_hash: &self.block_hash,
            block_number: format!("{:#x}", self.block_number),
            timestamp: self.block_timestamp,
            transaction_index: format!("{:#x}", self.transaction_index),
            from: &self.from_address,
            to: self.to_address.as_deref(),
            value: format!("{value:#x}"),
            node_name: &self.node,
            contract_address: self.contract_address.as_deref(),
            input: self.input.as_deref(),
            revert_reason: self.revert_reason.as_deref(),
            status: self.status.as_str(),
        };
        let envelope = Envelope {
            id: &self.hash,
            kind: MessageType::Transaction.as_str(),
            details,
            retries: 0,
        };
        serde_json::to_string(&envelope).expect("message fields always serialize")
    }
}

/// A row of `eventeum.blocks`.
#[derive(Debug, Deserialize)]
pub struct BlockRecord {
    pub node: String,
    pub hash: String,
    pub number: u64,
    pub timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockDetails<'a> {
    number: u64,
    hash: &'a str,
    timestamp: u64,
    node_name: &'a str,
}

impl TransactionRecord {
    /// Keyed by the block hash, as Eventeum does.
    pub fn outgoing(&self) -> Outgoing {
        let payload = self.message();
        Outgoing {
            message_id: format!("{}-{}:{}", self.hash, self.block_hash, self.status),
            key: self.block_hash.clone(),
            route: self.hash.clone(),
            reference: self.reference_for(&payload),
            payload,
            targets: None,
        }
    }

    /// A contract creation's input can be far larger than NOTIFY takes: then
    /// NOTIFY carries a reference to the row in `eventeum.transactions`.
    fn reference_for(&self, message: &str) -> Option<String> {
        if message.len() <= NOTIFY_PAYLOAD_LIMIT {
            return None;
        }
        let reference = TransactionReference {
            id: &self.hash,
            kind: MessageType::Transaction.as_str(),
            truncated: true,
            monitor_id: &self.monitor_id,
            node_name: &self.node,
            block_hash: &self.block_hash,
            status: self.status.as_str(),
        };
        Some(serde_json::to_string(&reference).expect("reference fields always serialize"))
    }
}

/// What NOTIFY carries instead of a TRANSACTION message too large for it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionReference<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    /// Always true: fetch the row from `eventeum.transactions`.
    truncated: bool,
    monitor_id: &'a str,
    node_name: &'a str,
    block_hash: &'a str,
    status: &'a str,
}

impl BlockRecord {
    /// Keyed by the block hash, as Eventeum does; the message id also names
    /// the node, since each node sends its own.
    pub fn outgoing(&self) -> Outgoing {
        let payload = self.message();
        let message_id = format!("{}:{}", self.hash, self.node);
        Outgoing {
            key: self.hash.clone(),
            message_id,
            route: String::new(),
            reference: None,
            payload,
            targets: None,
        }
    }

    /// Eventeum's `BLOCK` message.
    pub fn message(&self) -> String {
        let details = BlockDetails {
            number: self.number,
            hash: &self.hash,
            timestamp: self.timestamp,
            node_name: &self.node,
        };
        let envelope = Envelope {
            id: &self.hash,
            kind: MessageType::Block.as_str(),
            details,
            retries: 0,
        };
        serde_json::to_string(&envelope).expect("message fields always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> BlockRecord {
        BlockRecord {
            node: "default".into(),
            hash: "0xab".into(),
            number: 7,
            timestamp: 1_700_000_000,
        }
    }

    #[test]
    fn messages_are_compact_in_eventeums_field_order() {
        assert_eq!(
            block().message(),
            r#"{"id":"0xab","type":"BLOCK","details":{"number":7,"hash":"0xab","timestamp":1700000000,"nodeName":"default"},"retries":0}"#
        );
    }

    #[test]
    fn a_retry_changes_the_retries_number_alone() {
        let message = block().message();
        let retried = with_retries(&message, 3);
        assert_eq!(retried.replace("\"retries\":3}", "\"retries\":0}"), message);
        assert!(retried.ends_with(",\"retries\":3}"));
        assert_eq!(with_retries(&message, 0), message);
        // A row stored as jsonb text before 0.5.0.
        assert_eq!(
            with_retries(r#"{"id": "x", "details": {}, "retries": 0}"#, 2),
            r#"{"id": "x", "details": {}, "retries": 2}"#
        );
        // Anything else is sent as it is.
        assert_eq!(with_retries("{\"a\":1}", 2), "{\"a\":1}");
    }
}
