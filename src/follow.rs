//! Following: one task per node walks the chain block range by block range,
//! fetches the logs of all the node's filters in one merged `eth_getLogs`,
//! decodes them and hands each step to the main thread. It advances only
//! once the main thread has committed the step. Runs on tokio threads only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{hex, Address, B256};
use alloy::rpc::types::Log;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::decode::{decode_log, RawLog, RenderOptions};
use crate::protocol::{
    ChainStep, ConfigSnapshot, DecodedEvent, FilterConfig, FollowerMessage, LogPosition,
    NodeConfig, StepAck, UndecodableLog,
};
use crate::rpc::{NodeClient, RpcError};

/// Blocks per `eth_getLogs` when the node sets no `maxBlocksToSync`.
const DEFAULT_RANGE: u64 = 2_000;
/// How long a follower waits for the main thread to commit a step. After
/// that it fetches the range again; the store ignores what it already has.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Wakes the main thread, which sleeps on its latch. A process-directed
/// SIGUSR1 reaches the only thread that does not block signals (the main
/// thread), where Postgres' own handler sets the latch.
pub fn wake_main_thread() {
    // SAFETY: kill(2) on our own pid is async-signal-safe and touches no Postgres state.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR1);
    }
}

/// Starts, restarts and stops one follower per configured node as the
/// published configuration changes. Returns when the main thread drops the
/// configuration sender.
pub async fn supervise(
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
) {
    let mut running: HashMap<String, (NodeConfig, JoinHandle<()>)> = HashMap::new();
    loop {
        let snapshot = config.borrow_and_update().clone();
        running.retain(|name, (current, handle)| match snapshot.nodes.get(name) {
            Some(node) if !current.needs_restart(node) && !handle.is_finished() => true,
            _ => {
                handle.abort();
                false
            }
        });
        for (name, node) in &snapshot.nodes {
            if !running.contains_key(name) {
                tracing::info!(node = %name, url = %node.url, "following node");
                let task = Follower {
                    node: node.clone(),
                    config: config.clone(),
                    to_main: to_main.clone(),
                };
                running.insert(name.clone(), (node.clone(), tokio::spawn(task.run())));
            }
        }
        if config.changed().await.is_err() {
            break;
        }
    }
    for (_, (_, handle)) in running {
        handle.abort();
    }
}

struct Follower {
    node: NodeConfig,
    config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
}

enum Progress {
    Advanced,
    CaughtUp,
    Retry,
}

impl Follower {
    async fn run(self) {
        let options = &self.node.options;
        let poll = Duration::from_millis(options.polling_interval);
        let mut backoff = BACKOFF_START;
        let mut client = None;
        // Crash-only: resume from the committed checkpoint, replaying a few
        // blocks in case they changed while we were away.
        let mut cursor = self
            .node
            .checkpoint
            .map(|c| c.saturating_sub(options.num_blocks_to_replay));
        loop {
            let result = match &client {
                Some(client) => self.step(client, &mut cursor).await,
                None => NodeClient::connect(&self.node.url, options).await.map(|c| {
                    client = Some(c);
                    Progress::Retry
                }),
            };
            match result {
                Ok(Progress::Advanced | Progress::Retry) => backoff = BACKOFF_START,
                Ok(Progress::CaughtUp) => {
                    backoff = BACKOFF_START;
                    tokio::time::sleep(poll).await;
                }
                Err(error) => {
                    tracing::warn!(node = %self.node.name, %error, "node call failed; retrying in {backoff:?}");
                    let _ = self.to_main.try_send(FollowerMessage::NodeError {
                        node: self.node.name.clone(),
                        error: error.to_string(),
                    });
                    wake_main_thread();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                }
            }
        }
    }

    /// Fetches, decodes and hands over the next block range.
    async fn step(
        &self,
        client: &NodeClient,
        cursor: &mut Option<u64>,
    ) -> Result<Progress, RpcError> {
        let snapshot = self.config.borrow().clone();
        let Some(node) = snapshot.nodes.get(&self.node.name) else {
            return Ok(Progress::CaughtUp); // removed; the supervisor stops us
        };
        let options = &node.options;
        let head = client.head().await?;
        // On first contact, commit the starting point before fetching anything, so
        // that a crash right after cannot move the start to a later head.
        let first_contact = cursor.is_none();
        let last = cursor.unwrap_or_else(|| head.saturating_sub(options.num_blocks_to_replay));
        if !first_contact && head <= last {
            return Ok(Progress::CaughtUp);
        }
        let range = if options.max_blocks_to_sync > 0 {
            options.max_blocks_to_sync
        } else {
            DEFAULT_RANGE
        };
        let from = last + 1;
        let to = if first_contact {
            last
        } else {
            head.min(last + range)
        };

        let (events, failures) = if first_contact || node.filters.is_empty() {
            (vec![], vec![])
        } else {
            let addresses: BTreeSet<Address> = node
                .filters
                .iter()
                .map(|f| f.definition.contract_address)
                .collect();
            let topics: BTreeSet<B256> = node.filters.iter().map(|f| f.topic0).collect();
            let logs = client
                .logs(
                    from,
                    to,
                    addresses.into_iter().collect(),
                    topics.into_iter().collect(),
                )
                .await?;
            let timestamps = block_timestamps(client, &logs).await?;
            let options = RenderOptions {
                bytes_to_ascii: snapshot.bytes_to_ascii,
            };
            decode_logs(&node.filters, &logs, &timestamps, options)
        };

        let (ack, answer) = oneshot::channel();
        let step = ChainStep {
            node: node.name.clone(),
            config_version: snapshot.version,
            from,
            to,
            head,
            events,
            failures,
            ack,
        };
        if self.to_main.send(step.into()).await.is_err() {
            return Ok(Progress::CaughtUp); // shutting down
        }
        wake_main_thread();
        match tokio::time::timeout(ACK_TIMEOUT, answer).await {
            Ok(Ok(StepAck::Committed)) => {
                *cursor = Some(to);
                Ok(if to < head {
                    Progress::Advanced
                } else {
                    Progress::CaughtUp
                })
            }
            Ok(Ok(StepAck::Stale)) => Ok(Progress::Retry),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(node = %node.name, from, to, "step was not acknowledged; fetching it again");
                Ok(Progress::Retry)
            }
        }
    }
}

impl From<ChainStep> for FollowerMessage {
    fn from(step: ChainStep) -> Self {
        FollowerMessage::Step(step)
    }
}

/// Timestamps of the blocks the logs are in. Nodes that put `blockTimestamp`
/// in logs save a header fetch per block.
async fn block_timestamps(
    client: &NodeClient,
    logs: &[Log],
) -> Result<BTreeMap<u64, u64>, RpcError> {
    let mut timestamps = BTreeMap::new();
    for log in logs {
        if let (Some(number), Some(ts)) = (log.block_number, log.block_timestamp) {
            timestamps.insert(number, ts);
        }
    }
    let missing: BTreeSet<u64> = logs
        .iter()
        .filter_map(|l| l.block_number)
        .filter(|n| !timestamps.contains_key(n))
        .collect();
    for number in missing {
        let (_, ts) = client.block_header(number).await?;
        timestamps.insert(number, ts);
    }
    Ok(timestamps)
}

/// Matches each log to the filters with its address and topic0, and decodes it
/// once per matching filter. Logs that do not decode are kept, with the reason.
pub fn decode_logs(
    filters: &[Arc<FilterConfig>],
    logs: &[Log],
    timestamps: &BTreeMap<u64, u64>,
    options: RenderOptions,
) -> (Vec<DecodedEvent>, Vec<UndecodableLog>) {
    let mut events = Vec::new();
    let mut failures = Vec::new();
    for log in logs.iter().filter(|l| !l.removed) {
        let (Some(block_number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
            log.block_number,
            log.block_hash,
            log.transaction_hash,
            log.log_index,
        ) else {
            continue; // pending logs have no position yet
        };
        let topics = log.topics();
        let Some(topic0) = topics.first() else {
            continue;
        };
        let position = LogPosition {
            address: log.address().to_checksum(None),
            block_number,
            block_hash: hex::encode_prefixed(block_hash),
            block_timestamp: timestamps.get(&block_number).copied(),
            transaction_hash: hex::encode_prefixed(tx_hash),
            log_index,
        };
        let matching = filters
            .iter()
            .filter(|f| f.topic0 == *topic0 && f.definition.contract_address == log.address());
        for filter in matching {
            let raw = RawLog {
                topics,
                data: &log.data().data,
            };
            match decode_log(&filter.definition, raw, options) {
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
