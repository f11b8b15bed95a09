//! Contract-event rows as the store writes them, built before a step reaches
//! the main thread.
//!
//! The main thread is the pipeline's one serial stage: it owns Postgres. What
//! needs no Postgres is done on the tokio side, while the main thread commits
//! the previous step: the rows, their messages (rendered once, for NOTIFY and
//! the outbox), and the same rows in COPY's text format.

use std::io::Write;

use alloy::primitives::hex;

use crate::message::{contract_event_id, ContractEventRecord, Outgoing};
use crate::protocol::DecodedEvent;

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
    /// Each row with its message, by block, log index and filter.
    pub rows: Vec<(ContractEventRecord, Outgoing)>,
    /// The same rows in COPY's text format, for a step none of whose rows is
    /// stored yet.
    pub copy: CopyText,
}

/// Builds the rows of `events`, found on `node`; an event `wait` blocks
/// below `tip` is CONFIRMED from the start. The events are consumed here,
/// so that freeing them is not the main thread's work either.
pub fn prepare_events(
    node: &str,
    events: Vec<DecodedEvent>,
    tip: u64,
    wait: u64,
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
    let mut copy = CopyText::with_capacity(records.len() * 768);
    for r in &records {
        copy.field(&r.id)
            .field(&r.filter_id)
            .field(&r.node)
            .field(&r.name)
            .field(&r.address)
            .number(r.block_number)
            .field(&r.block_hash)
            .field(&r.transaction_hash)
            .number(r.log_index)
            .field(r.indexed_parameters.get())
            .field(r.non_indexed_parameters.get())
            .field(&r.event_specification_signature)
            .optional(r.correlation_id.as_deref())
            .field(&r.status)
            .optional_number(r.block_timestamp);
        copy.end_row();
    }
    let rows = records
        .into_iter()
        .map(|record| {
            let outgoing = record.outgoing();
            (record, outgoing)
        })
        .collect();
    PreparedEvents { rows, copy }
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
        log_index: p.log_index as i64,
        indexed_parameters: serde_json::value::to_raw_value(&event.parameters.indexed)
            .expect("parameters serialize"),
        non_indexed_parameters: serde_json::value::to_raw_value(&event.parameters.non_indexed)
            .expect("parameters serialize"),
        event_specification_signature: hex::encode_prefixed(event.filter.topic0),
        status: if confirmed {
            "CONFIRMED"
        } else {
            "UNCONFIRMED"
        }
        .to_string(),
        block_timestamp: p.block_timestamp.map(|t| t as i64),
        correlation_id: event.parameters.correlation_id,
    }
}

/// Rows in COPY's text format: tab-separated fields, a row per line.
#[derive(Debug, Default)]
pub struct CopyText {
    bytes: Vec<u8>,
    fields_in_row: usize,
}

impl CopyText {
    pub fn with_capacity(bytes: usize) -> Self {
        CopyText {
            bytes: Vec::with_capacity(bytes),
            fields_in_row: 0,
        }
    }

    /// Appends a field, escaped as COPY's text format requires.
    pub fn field(&mut self, value: &str) -> &mut Self {
        self.separate();
        let special = |byte: &u8| matches!(byte, b'\\' | b'\t' | b'\n' | b'\r');
        if !value.as_bytes().iter().any(special) {
            // Hashes, names, and parameters without escapes: as they are.
            self.bytes.extend_from_slice(value.as_bytes());
            return self;
        }
        for &byte in value.as_bytes() {
            match byte {
                b'\\' => self.bytes.extend_from_slice(b"\\\\"),
                b'\t' => self.bytes.extend_from_slice(b"\\t"),
                b'\n' => self.bytes.extend_from_slice(b"\\n"),
                b'\r' => self.bytes.extend_from_slice(b"\\r"),
                _ => self.bytes.push(byte),
            }
        }
        self
    }

    pub fn number(&mut self, value: i64) -> &mut Self {
        self.separate();
        write!(self.bytes, "{value}").expect("writing to a Vec cannot fail");
        self
    }

    pub fn optional(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.field(value),
            None => self.null(),
        }
    }

    pub fn optional_number(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.number(value),
            None => self.null(),
        }
    }

    pub fn end_row(&mut self) {
        self.bytes.push(b'\n');
        self.fields_in_row = 0;
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn null(&mut self) -> &mut Self {
        self.separate();
        self.bytes.extend_from_slice(b"\\N");
        self
    }

    fn separate(&mut self) {
        if self.fields_in_row > 0 {
            self.bytes.push(b'\t');
        }
        self.fields_in_row += 1;
    }
}
