//! Node RPC (stage: node RPC; tokio): the few JSON-RPC calls the follower
//! makes, each with a deadline. Runs on tokio threads only.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log, Transaction, TransactionReceipt, TransactionRequest};
use alloy::sol_types::{decode_revert_reason, Revert, SolError};

use crate::node::NodeOptions;
use crate::protocol::BlockHeader;
use crate::redact::Scrubber;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{call} timed out after {after:?}")]
    Timeout { call: &'static str, after: Duration },
    #[error("{call} failed: {message}")]
    Call { call: &'static str, message: String },
    #[error("block {0} is not known to the node")]
    MissingBlock(u64),
}

impl RpcError {
    /// Whether a node refused an `eth_getLogs` range as too large, or timed out
    /// on it: the follower then halves the range.
    pub fn is_range_limit(&self) -> bool {
        const HINTS: [&str; 8] = [
            "range",
            "too many",
            "limit",
            "exceed",
            "too large",
            "response size",
            "10000 results",
            "timeout",
        ];
        match self {
            RpcError::Timeout { call, .. } => *call == "eth_getLogs",
            RpcError::Call { call, message } => {
                let message = message.to_ascii_lowercase();
                *call == "eth_getLogs" && HINTS.iter().any(|h| message.contains(h))
            }
            RpcError::MissingBlock(_) => false,
        }
    }
}

/// New block headers pushed by a websocket node.
pub type HeadSubscription = alloy::pubsub::Subscription<alloy::rpc::types::Header>;

/// JSON-RPC calls made and failed, per node, since the main thread last
/// collected them for the metrics.
#[derive(Debug, Default)]
pub struct CallCounts {
    calls: AtomicU64,
    errors: AtomicU64,
}

impl CallCounts {
    fn record(&self, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

static CALL_COUNTS: Mutex<BTreeMap<String, Arc<CallCounts>>> = Mutex::new(BTreeMap::new());

fn counts_of(node: &str) -> Arc<CallCounts> {
    let mut all = CALL_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(node.to_string()).or_default().clone()
}

/// Takes the counts gathered since the last call: (node, calls, errors) for
/// each node that made calls.
pub fn take_call_counts() -> Vec<(String, u64, u64)> {
    let all = CALL_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .map(|(node, counts)| {
            let calls = counts.calls.swap(0, Ordering::Relaxed);
            let errors = counts.errors.swap(0, Ordering::Relaxed);
            (node.clone(), calls, errors)
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect()
}

/// A connection to one Ethereum node.
#[derive(Clone)]
pub struct NodeClient {
    provider: DynProvider,
    read_timeout: Duration,
    counts: Arc<CallCounts>,
    /// Error messages may quote the URL, and with it an API key.
    scrubber: Arc<Scrubber>,
}

impl NodeClient {
    /// Connects to node `name` at `url` (http(s) or ws(s)) within the node's
    /// connectionTimeout.
    pub async fn connect(name: &str, url: &str, options: &NodeOptions) -> Result<Self, RpcError> {
        let connect_timeout = Duration::from_millis(options.connection_timeout);
        let scrubber = Arc::new(Scrubber::for_url(url));
        let counts = counts_of(name);
        let connected = deadline("connect", connect_timeout, async {
            ProviderBuilder::new()
                .connect(url)
                .await
                .map_err(|e| RpcError::Call {
                    call: "connect",
                    message: scrubber.scrub(&e.to_string()),
                })
        })
        .await;
        counts.record(connected.is_ok());
        Ok(NodeClient {
            provider: connected?.erased(),
            read_timeout: Duration::from_millis(options.read_timeout),
            counts,
            scrubber,
        })
    }

    /// A client over a provider made elsewhere: alloy's mocked transport in tests.
    pub fn from_provider(name: &str, provider: DynProvider, read_timeout: Duration) -> Self {
        NodeClient {
            provider,
            read_timeout,
            counts: counts_of(name),
            scrubber: Arc::new(Scrubber::for_url("")),
        }
    }

    /// The node's latest block number.
    pub async fn head(&self) -> Result<u64, RpcError> {
        self.call("eth_blockNumber", self.provider.get_block_number())
            .await
    }

    /// A `newHeads` subscription; only websocket nodes have one.
    pub async fn subscribe_heads(&self) -> Result<HeadSubscription, RpcError> {
        self.call("eth_subscribe", self.provider.subscribe_blocks())
            .await
    }

    /// The logs of `from..=to` emitted by any of `addresses` with topic0 any of `topics0`:
    /// one merged call for all the filters of a node.
    pub async fn logs(
        &self,
        from: u64,
        to: u64,
        addresses: Vec<Address>,
        topics0: Vec<B256>,
    ) -> Result<Vec<Log>, RpcError> {
        let filter = Filter::new()
            .from_block(from)
            .to_block(to)
            .address(addresses)
            .event_signature(topics0);
        self.call("eth_getLogs", self.provider.get_logs(&filter))
            .await
    }

    /// The header of block `number`: what fork checks and timestamps need.
    pub async fn block_header(&self, number: u64) -> Result<BlockHeader, RpcError> {
        let block = self
            .call(
                "eth_getBlockByNumber",
                self.provider
                    .get_block_by_number(BlockNumberOrTag::Number(number)),
            )
            .await?
            .ok_or(RpcError::MissingBlock(number))?;
        Ok(BlockHeader {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
        })
    }

    /// A block with its transactions: fetched once per block, whatever the
    /// number of monitors.
    pub async fn full_block(
        &self,
        number: u64,
    ) -> Result<(BlockHeader, Vec<Transaction>), RpcError> {
        let block = self
            .call(
                "eth_getBlockByNumber",
                self.provider
                    .get_block_by_number(BlockNumberOrTag::Number(number))
                    .full(),
            )
            .await?
            .ok_or(RpcError::MissingBlock(number))?;
        let header = BlockHeader {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
        };
        Ok((header, block.transactions.into_transactions().collect()))
    }

    /// A transaction's receipt: its status and any created contract.
    pub async fn receipt(&self, hash: B256) -> Result<TransactionReceipt, RpcError> {
        self.call(
            "eth_getTransactionReceipt",
            self.provider.get_transaction_receipt(hash),
        )
        .await?
        .ok_or_else(|| RpcError::Call {
            call: "eth_getTransactionReceipt",
            message: format!("no receipt for {hash}"),
        })
    }

    /// Why a failed transaction reverted: its call replayed on the state it
    /// ran on (the parent block), and the revert data decoded.
    pub async fn revert_reason(&self, tx: &Transaction, block: u64) -> Option<String> {
        use alloy::consensus::Transaction as _;
        use alloy::network::TransactionResponse as _;
        let mut request = TransactionRequest::default()
            .from(tx.from())
            .input(tx.input().clone().into())
            .value(tx.value())
            .gas_limit(tx.gas_limit());
        if let Some(to) = tx.to() {
            request = request.to(to);
        }
        let call = self
            .provider
            .call(request)
            .block(BlockId::number(block.saturating_sub(1)));
        let result = tokio::time::timeout(self.read_timeout, call.into_future()).await;
        // A revert is the answer we asked for, not a failed call.
        self.counts.record(matches!(
            result,
            Ok(Ok(_)) | Ok(Err(alloy::transports::RpcError::ErrorResp(_)))
        ));
        match result {
            Ok(Err(alloy::transports::RpcError::ErrorResp(payload))) => {
                // Error(string) gives the bare reason, as Eventeum reports it;
                // anything else (panics, custom errors) as alloy describes it.
                let decoded = payload.as_revert_data().and_then(|data| {
                    Revert::abi_decode(&data)
                        .map(|r| r.reason)
                        .ok()
                        .or_else(|| decode_revert_reason(&data))
                });
                Some(decoded.unwrap_or_else(|| payload.message.to_string()))
            }
            _ => None,
        }
    }

    async fn call<T, E: std::fmt::Display>(
        &self,
        call: &'static str,
        fut: impl IntoFuture<Output = Result<T, E>>,
    ) -> Result<T, RpcError> {
        let result = deadline(call, self.read_timeout, async {
            fut.await.map_err(|e| RpcError::Call {
                call,
                message: self.scrubber.scrub(&e.to_string()),
            })
        })
        .await;
        self.counts.record(result.is_ok());
        result
    }
}

async fn deadline<T>(
    call: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    tokio::time::timeout(after, fut)
        .await
        .unwrap_or(Err(RpcError::Timeout { call, after }))
}
