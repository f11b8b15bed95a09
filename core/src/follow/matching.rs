//! Matching (tokio or any thread): logs to the filters that asked for them,
//! decoded once per filter, and transactions to the monitors that match them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy::primitives::{hex, Address};
use alloy::rpc::types::{Log, Transaction};

use crate::config::{BlockHeader, FilterConfig, MonitorConfig, NodeConfig};
use crate::decode::{decode_log_with_topic0, RawLog, RenderOptions};
use crate::protocol::MatchedTransaction;
use crate::rows::{DecodedEvent, LogPosition, UndecodableLog};
use crate::rpc::{NodeClient, RpcError};

/// Matches the range's transactions against the node's monitors, and reads
/// receipts only for those matched.
pub(super) async fn match_transactions(
    client: &NodeClient,
    node: &NodeConfig,
    transactions: &[Transaction],
    headers: &BTreeMap<u64, BlockHeader>,
) -> Result<Vec<MatchedTransaction>, RpcError> {
    use alloy::consensus::Transaction as _;
    use alloy::network::TransactionResponse as _;
    let mut matched = Vec::new();
    for tx in transactions {
        let (hash, from, to) = (tx.tx_hash(), tx.from(), tx.to());
        let monitors: Vec<&Arc<MonitorConfig>> = node
            .monitors
            .iter()
            .filter(|m| m.monitor.target.matches(&hash, &from, to.as_ref()))
            .collect();
        if monitors.is_empty() {
            continue;
        }
        let (Some(block_number), Some(block_hash)) = (tx.block_number, tx.block_hash) else {
            continue;
        };
        let receipt = client.receipt(hash).await?;
        let success = receipt.status();
        let revert_reason = if !success && node.options.add_transaction_revert_reason {
            client.revert_reason(tx, block_number).await
        } else {
            None
        };
        for monitor in monitors {
            matched.push(MatchedTransaction {
                monitor_id: monitor.id.clone(),
                hash,
                from,
                to,
                contract_address: receipt.contract_address,
                value: tx.value(),
                nonce: tx.nonce(),
                block_number,
                block_hash,
                transaction_index: tx.transaction_index.unwrap_or_default(),
                block_timestamp: headers.get(&block_number).map_or(0, |h| h.timestamp),
                input: tx.input().to_string(),
                success,
                revert_reason: revert_reason.clone(),
            });
        }
    }
    Ok(matched)
}

/// Matches each log to the filters that take it (topic0, emitter, indexed
/// values, start block), and decodes it
/// once per matching filter. Logs that do not decode are kept, with the reason.
pub fn decode_logs(
    filters: &[Arc<FilterConfig>],
    logs: &[Log],
    timestamps: &BTreeMap<u64, u64>,
    options: RenderOptions,
) -> (Vec<DecodedEvent>, Vec<UndecodableLog>) {
    let mut events = Vec::new();
    let mut failures = Vec::new();
    // A checksum is a keccak hash; most logs come from a few contracts.
    let mut checksums: HashMap<Address, String> = HashMap::new();
    for log in logs.iter().filter(|l| !l.removed) {
        let (Some(block_number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
            log.block_number,
            log.block_hash,
            log.transaction_hash,
            log.log_index,
        ) else {
            continue; // pending logs have no position yet
        };
        // The node client refused any answer with a larger index.
        let Ok(log_index) = i32::try_from(log_index) else {
            continue;
        };
        let topics = log.topics();
        let Some(topic0) = topics.first() else {
            continue;
        };
        let position = LogPosition {
            address: checksums
                .entry(log.address())
                .or_insert_with(|| log.address().to_checksum(None))
                .clone(),
            block_number,
            block_hash: hex::encode_prefixed(block_hash),
            block_timestamp: timestamps.get(&block_number).copied(),
            transaction_hash: hex::encode_prefixed(tx_hash),
            log_index,
        };
        let matching = filters.iter().filter(|f| {
            f.topic0 == *topic0
                && f.start.is_none_or(|start| block_number >= start)
                && f.matcher.matches(&log.address(), topics)
        });
        for filter in matching {
            let raw = RawLog {
                topics,
                data: &log.data().data,
            };
            match decode_log_with_topic0(&filter.definition, filter.topic0, raw, options) {
                Ok(parameters) => events.push(DecodedEvent {
                    filter: filter.clone(),
                    position: position.clone(),
                    parameters,
                }),
                Err(error) => failures.push(UndecodableLog {
                    filter_id: filter.id.clone(),
                    position: position.clone(),
                    topics: topics.to_vec(),
                    data: log.data().data.to_vec(),
                    reason: error.to_string(),
                }),
            }
        }
    }
    (events, failures)
}
