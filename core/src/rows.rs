//! Rows (stage: rows; tokio): contract-event rows as the store writes them,
//! built before a step reaches the main thread.
//!
//! The main thread is the pipeline's one serial stage: it owns Postgres. What
//! needs no Postgres is done on the tokio side, while the main thread commits
//! the previous step: the rows, their messages (rendered once, for NOTIFY and
//! the outbox), and the same rows in COPY's binary format.

use std::sync::Arc;

use alloy::primitives::{hex, B256};

use crate::config::FilterConfig;
use crate::decode::DecodedParameters;
use crate::message::{contract_event_id, Batch, ContractEventRecord};
use crate::states::EventStatus;

/// The columns of `eventeum.contract_events` a stored event fills, in the
/// order of [`PreparedEvents::copy`]; the rest take their defaults.
pub const EVENT_COLUMNS: [&str; 15] = [
    "id",
    "filter_id",
    "node",
    "name",
    "address",
    "block_number",
    "block_hash",
    "transaction_hash",
    "log_index",
    "indexed_parameters",
    "non_indexed_parameters",
    "event_specification_signature",
    "correlation_id",
    "status",
    "block_timestamp",
];

/// A step's events, ready to store.
#[derive(Debug, Default)]
pub struct PreparedEvents {
    /// The rows, by block, log index and filter.
    pub records: Vec<ContractEventRecord>,
    /// Their messages, in the same order; none when nobody takes them
    /// ([`Audience::Nobody`]).
    pub messages: Batch,
    /// The same rows in COPY's binary format, for a step none of whose rows
    /// is stored yet.
    pub copy: Vec<u8>,
}

impl PreparedEvents {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Who takes the messages of a step's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A NOTIFY each, and the outbox: every live state change.
    Listeners,
    /// The outbox only: a `startBlock` backfill's (see
    /// `FilterDefinition::notifies_each_backfilled_event`).
    Outbox,
    /// Nobody: a quiet backfill with no broadcaster or consumer group to
    /// write the outbox for. No message is built, which is a third of what
    /// a piece holds.
    Nobody,
}

/// Builds the rows of `events`, found on `node`, and the messages
/// `audience` takes; an event `wait` blocks below `tip` is CONFIRMED from
/// the start. The events are consumed here, so that freeing them is not the
/// main thread's work either.
pub fn prepare_events(
    node: &str,
    events: Vec<DecodedEvent>,
    tip: u64,
    wait: u64,
    audience: Audience,
) -> PreparedEvents {
    let mut records: Vec<ContractEventRecord> = events
        .into_iter()
        .map(|event| record(node, event, tip, wait))
        .collect();
    records.sort_by(|a, b| {
        (a.block_number, a.log_index, &a.filter_id).cmp(&(
            b.block_number,
            b.log_index,
            &b.filter_id,
        ))
    });
    // About 700 bytes a row, most of them parameters and hashes.
    let mut copy = BinaryCopy::with_capacity(records.len() * 768);
    for r in &records {
        copy.row(EVENT_COLUMNS.len())
            .text(&r.id)
            .text(&r.filter_id)
            .text(&r.node)
            .text(&r.name)
            .text(&r.address)
            .bigint(r.block_number)
            .text(&r.block_hash)
            .text(&r.transaction_hash)
            .integer(r.log_index)
            .jsonb(r.indexed_parameters.get())
            .jsonb(r.non_indexed_parameters.get())
            .text(&r.event_specification_signature)
            .optional_text(r.correlation_id.as_deref())
            .text(r.status.as_str())
            .optional_bigint(r.block_timestamp);
    }
    let outgoing = records.iter().map(ContractEventRecord::outgoing);
    let messages = match audience {
        Audience::Listeners => outgoing.collect(),
        Audience::Outbox => Batch::without_notices(outgoing.collect()),
        Audience::Nobody => Batch::default(),
    };
    PreparedEvents {
        records,
        messages,
        copy: copy.finish(),
    }
}

fn record(node: &str, event: DecodedEvent, tip: u64, wait: u64) -> ContractEventRecord {
    let p = event.position;
    let confirmed = tip.saturating_sub(p.block_number) >= wait;
    ContractEventRecord {
        id: contract_event_id(&p.transaction_hash, &p.block_hash, p.log_index),
        filter_id: event.filter.id.clone(),
        node: node.to_string(),
        name: event.filter.definition.specification.event_name.clone(),
        address: p.address,
        block_number: p.block_number as i64,
        block_hash: p.block_hash,
        transaction_hash: p.transaction_hash,
        log_index: p.log_index,
        indexed_parameters: serde_json::value::to_raw_value(&event.parameters.indexed)
            .expect("parameters serialize"),
        non_indexed_parameters: serde_json::value::to_raw_value(&event.parameters.non_indexed)
            .expect("parameters serialize"),
        event_specification_signature: hex::encode_prefixed(event.filter.topic0),
        status: if confirmed {
            EventStatus::Confirmed
        } else {
            EventStatus::Unconfirmed
        },
        block_timestamp: p.block_timestamp.map(|t| t as i64),
        correlation_id: event.parameters.correlation_id,
    }
}

/// Rows in COPY's binary format: a header, then per row its number of
/// fields and each field as a length and its bytes (the type's binary
/// input), then a trailer. Nothing is escaped, and Postgres parses no text
/// but the JSON.
#[derive(Debug)]
pub struct BinaryCopy {
    bytes: Vec<u8>,
}

/// COPY's binary signature, then the flags and the header extension length (both 0).
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field's length that stands for NULL.
const NULL_FIELD: i32 = -1;
/// The field count that ends the data.
const TRAILER: i16 = -1;
/// The jsonb binary format's version byte, before the JSON text.
const JSONB_VERSION: u8 = 1;

impl BinaryCopy {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buffer = Vec::with_capacity(BINARY_HEADER.len() + bytes + 2);
        buffer.extend_from_slice(BINARY_HEADER);
        BinaryCopy { bytes: buffer }
    }

    /// Starts a row of `fields` fields, which must follow.
    pub fn row(&mut self, fields: usize) -> &mut Self {
        let fields = i16::try_from(fields).expect("a table has at most 1,600 columns");
        self.bytes.extend_from_slice(&fields.to_be_bytes());
        self
    }

    /// A `text` field (or any type whose binary input is its text, such as an enum).
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.field(&[value.as_bytes()])
    }

    /// A `jsonb` field, from its JSON text.
    pub fn jsonb(&mut self, json: &str) -> &mut Self {
        self.field(&[&[JSONB_VERSION], json.as_bytes()])
    }

    pub fn bigint(&mut self, value: i64) -> &mut Self {
        self.field(&[&value.to_be_bytes()])
    }

    pub fn integer(&mut self, value: i32) -> &mut Self {
        self.field(&[&value.to_be_bytes()])
    }

    pub fn optional_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub fn optional_bigint(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.bigint(value),
            None => self.null(),
        }
    }

    /// The data, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&TRAILER.to_be_bytes());
        self.bytes
    }

    fn null(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&NULL_FIELD.to_be_bytes());
        self
    }

    /// A field made of `parts`, one after the other.
    fn field(&mut self, parts: &[&[u8]]) -> &mut Self {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        // A field is at most 1 GB, and events are far smaller.
        let length = i32::try_from(length).expect("a field is under 1 GB");
        self.bytes.extend_from_slice(&length.to_be_bytes());
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self
    }
}

/// Where a log sits on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    pub address: String,
    pub block_number: u64,
    pub block_hash: String,
    pub block_timestamp: Option<u64>,
    pub transaction_hash: String,
    /// As `contract_events.log_index` (integer) holds it: the node client
    /// refuses an answer with a larger one.
    pub log_index: i32,
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
