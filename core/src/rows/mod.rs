//! Rows (stage: rows; tokio): contract-event rows as the store writes them,
//! built before a step reaches the main thread.
//!
//! The main thread is the pipeline's one serial stage: it owns Postgres. What
//! needs no Postgres is done on the tokio side, while the main thread commits
//! the previous step: the rows, their messages (rendered once, for NOTIFY and
//! the outbox), and the same rows in COPY's binary format.

mod copy;
mod typed;

use std::sync::Arc;

use alloy::primitives::{hex, B256};

use crate::config::FilterConfig;
use crate::decode::DecodedParameters;
use crate::kind::KindTable;
use crate::message::{contract_event_id, Batch, ContractEventRecord};
use crate::states::EventStatus;

pub use copy::BinaryCopy;

/// A step's events, ready to store.
#[derive(Debug, Default)]
pub struct PreparedEvents {
    /// The rows, by block, log index and filter.
    pub records: Vec<ContractEventRecord>,
    /// Their messages, in the same order; none when nobody takes them
    /// ([`Audience::Nobody`]).
    pub messages: Batch,
    /// The same rows in COPY's binary format, one batch per kind table.
    pub copies: Vec<KindCopy>,
}

impl PreparedEvents {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The rows of one kind table, in COPY's binary format.
#[derive(Debug)]
pub struct KindCopy {
    pub table: Arc<KindTable>,
    /// Each row's record (an index into [`PreparedEvents::records`]) and
    /// the `filter_key` it is stored under, in the data's order.
    pub rows: Vec<(usize, i32)>,
    /// The data, with its header and trailer.
    pub data: Vec<u8>,
    /// The node's key, the same for every row.
    pub node_key: i32,
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

/// A kind table's rows while they are written.
struct Batched {
    table: Arc<KindTable>,
    copy: BinaryCopy,
    rows: Vec<(usize, i32)>,
    node_key: i32,
}

/// Builds the rows of `events`, found on `node`, and the messages
/// `audience` takes; an event `wait` blocks below `tip` is CONFIRMED from
/// the start. The events are consumed here, so that freeing them is not the
/// main thread's work either. An event whose filter has no storage (its
/// source is not registered yet) is left out.
pub fn prepare_events(
    node: &str,
    mut events: Vec<DecodedEvent>,
    tip: u64,
    wait: u64,
    audience: Audience,
) -> PreparedEvents {
    events.retain(|e| e.filter.storage.is_some());
    events.sort_by(|a, b| {
        let key = |e: &DecodedEvent| (e.position.block_number, e.position.log_index);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.filter.id.cmp(&b.filter.id))
    });
    let mut batches: Vec<Batched> = vec![];
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        let DecodedEvent {
            filter,
            position,
            parameters,
        } = event;
        let Some(storage) = filter.storage.as_ref() else {
            continue;
        };
        let record = record(node, &filter, position, &parameters, tip, wait);
        let mut write = |table: &Arc<KindTable>| {
            let i = match batches.iter().position(|b| b.table == *table) {
                Some(i) => i,
                None => {
                    batches.push(Batched {
                        table: table.clone(),
                        copy: BinaryCopy::with_capacity(768),
                        rows: vec![],
                        node_key: storage.node_key,
                    });
                    batches.len() - 1
                }
            };
            let batch = &mut batches[i];
            let mark = batch.copy.len();
            let keys = (storage.filter_key, storage.node_key);
            if typed::write_row(&mut batch.copy, table, &record, &parameters, keys) {
                batch.rows.push((records.len(), storage.filter_key));
                true
            } else {
                batch.copy.truncate(mark);
                false
            }
        };
        // A value that does not fit its kind's column (none should) keeps
        // its row, as JSON.
        if !write(&storage.table) {
            write(&Arc::new(KindTable::Json));
        }
        records.push(record);
    }
    let outgoing = records.iter().map(ContractEventRecord::outgoing);
    let messages = match audience {
        Audience::Listeners => outgoing.collect(),
        Audience::Outbox => Batch::without_notices(outgoing.collect()),
        Audience::Nobody => Batch::default(),
    };
    let copies = batches
        .into_iter()
        .map(|b| KindCopy {
            table: b.table,
            rows: b.rows,
            data: b.copy.finish(),
            node_key: b.node_key,
        })
        .collect();
    PreparedEvents {
        records,
        messages,
        copies,
    }
}

/// A log's row; its position moves in, its parameters stay for the COPY data.
fn record(
    node: &str,
    filter: &FilterConfig,
    p: LogPosition,
    parameters: &DecodedParameters,
    tip: u64,
    wait: u64,
) -> ContractEventRecord {
    let confirmed = tip.saturating_sub(p.block_number) >= wait;
    ContractEventRecord {
        id: contract_event_id(&p.transaction_hash, &p.block_hash, p.log_index),
        filter_id: filter.id.clone(),
        node: node.to_string(),
        name: filter.definition.specification.event_name.clone(),
        address: p.address,
        block_number: p.block_number as i64,
        block_hash: p.block_hash,
        transaction_hash: p.transaction_hash,
        log_index: p.log_index,
        indexed_parameters: serde_json::value::to_raw_value(&parameters.indexed)
            .expect("parameters serialize"),
        non_indexed_parameters: serde_json::value::to_raw_value(&parameters.non_indexed)
            .expect("parameters serialize"),
        event_specification_signature: hex::encode_prefixed(filter.topic0),
        status: if confirmed {
            EventStatus::Confirmed
        } else {
            EventStatus::Unconfirmed
        },
        block_timestamp: p.block_timestamp.map(|t| t as i64),
        correlation_id: parameters.correlation_id.clone(),
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
    /// As a kind table's `log_index` (integer) holds it: the node client
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
