//! Node RPC (stage: node RPC; tokio): the few JSON-RPC calls the follower
//! makes, each paced, retried when rate limited, bounded in size and time,
//! and checked before anything else sees the answer. Runs on tokio threads only.
//!
//! - [`transport`]: JSON-RPC over HTTP with a cap on the answer's size;
//! - [`error`]: typed errors, and what the providers' refusals mean;
//! - [`pace`]: the request rate and the retries of a rate-limited call;
//! - [`counts`]: calls, errors and rate limits per node, for the metrics.

mod counts;
mod error;
mod pace;
mod transport;

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{Filter, Log, Transaction, TransactionReceipt, TransactionRequest};
use alloy::sol_types::{decode_revert_reason, Revert, SolError};
use alloy::transports::ws::WebSocketConfig;

pub use counts::{take_call_counts, NodeCalls};
pub use error::{classify, Refusal, RpcError};
pub use transport::{CappedHttp, ResponseTooLarge};

use crate::config::BlockHeader;
use crate::node::NodeOptions;
use crate::redact::Scrubber;
use crate::states::NodeStatus;
use counts::{counts_of, CallCounts};
use pace::{retry_wait, Pacer};

/// New block headers pushed by a websocket node.
pub type HeadSubscription = alloy::pubsub::Subscription<alloy::rpc::types::Header>;

/// A connection to one Ethereum node.
#[derive(Clone)]
pub struct NodeClient {
    provider: DynProvider,
    read_timeout: Duration,
    pacer: Arc<Pacer>,
    /// A call was refused for the rate limit since the last [`Self::status`].
    limited: Arc<AtomicBool>,
    /// When a call was last refused for the rate limit.
    limited_at: Arc<Mutex<Option<Instant>>>,
    counts: Arc<CallCounts>,
    /// Error messages may quote the URL, and with it an API key.
    scrubber: Arc<Scrubber>,
}

impl NodeClient {
    /// Connects to node `name` at `url` (http(s) or ws(s)) within the node's
    /// connectionTimeout. Answers over `maxResponseBytes` are refused unread.
    pub async fn connect(name: &str, url: &str, options: &NodeOptions) -> Result<Self, RpcError> {
        let connect_timeout = Duration::from_millis(options.connection_timeout);
        let read_timeout = Duration::from_millis(options.read_timeout);
        let limit = usize::try_from(options.max_response_bytes).unwrap_or(usize::MAX);
        let scrubber = Arc::new(Scrubber::for_url(url));
        let counts = counts_of(name);
        let failed = |e: &dyn std::fmt::Display| RpcError::Transport {
            call: "connect",
            message: scrubber.scrub(&e.to_string()),
        };
        let parsed = url::Url::parse(url).map_err(|e| failed(&e))?;
        let connected = deadline("connect", connect_timeout, async {
            // Where the node is must be allowed: an address in the URL here,
            // a name's addresses by the HTTP client's resolver, or here for
            // the WebSocket client, which resolves on its own.
            crate::netpolicy::current()
                .check_url(&parsed)
                .map_err(|e| failed(&e))?;
            match parsed.scheme() {
                "ws" | "wss" => {
                    if let Some(host) = parsed.host_str() {
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let port = parsed.port_or_known_default().unwrap_or(443);
                        crate::netpolicy::resolve_checked(host, port)
                            .await
                            .map_err(|e| failed(&e))?;
                    }
                    let mut config = WebSocketConfig::default();
                    config.max_message_size = Some(limit);
                    config.max_frame_size = Some(limit);
                    // Credentials in the URL go as basic auth, as over HTTP.
                    let auth = (!parsed.username().is_empty()).then(|| {
                        let decode = |s: &str| {
                            percent_encoding::percent_decode_str(s)
                                .decode_utf8_lossy()
                                .into_owned()
                        };
                        alloy::transports::Authorization::basic(
                            decode(parsed.username()),
                            decode(parsed.password().unwrap_or_default()),
                        )
                    });
                    let ws = WsConnect::new(url).with_config(config).with_auth_opt(auth);
                    let provider = ProviderBuilder::new()
                        .connect_ws(ws)
                        .await
                        .map_err(|e| failed(&e))?;
                    Ok(provider.erased())
                }
                _ => {
                    let is_local = alloy::transports::utils::guess_local_url(url);
                    let idle = (
                        usize::try_from(options.max_idle_connections).unwrap_or(usize::MAX),
                        Duration::from_millis(options.keep_alive_duration),
                    );
                    let http = CappedHttp::new(parsed, limit, read_timeout, idle)
                        .map_err(|e| failed(&e))?;
                    let provider =
                        ProviderBuilder::new().connect_client(RpcClient::new(http, is_local));
                    // An HTTP node is first reached by the first call.
                    Ok(provider.erased())
                }
            }
        })
        .await;
        counts.record(connected.is_ok());
        Ok(NodeClient {
            provider: connected?,
            read_timeout,
            pacer: Arc::new(Pacer::new(options.max_requests_per_second)),
            limited: Arc::default(),
            limited_at: Arc::default(),
            counts,
            scrubber,
        })
    }

    /// A client over a provider made elsewhere: alloy's mocked transport in tests.
    pub fn from_provider(name: &str, provider: DynProvider, read_timeout: Duration) -> Self {
        NodeClient {
            provider,
            read_timeout,
            pacer: Arc::new(Pacer::new(0)),
            limited: Arc::default(),
            limited_at: Arc::default(),
            counts: counts_of(name),
            scrubber: Arc::new(Scrubber::for_url("")),
        }
    }

    /// Whether a call was refused for the node's rate limit within `window`.
    pub fn rate_limited_within(&self, window: Duration) -> bool {
        self.limited_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < window)
    }

    /// How the node was found since the last time this was asked: rate
    /// limited if any call had to wait for the node's rate limit.
    pub fn status(&self, subscribed: bool) -> NodeStatus {
        if self.limited.swap(false, Ordering::Relaxed) {
            NodeStatus::RateLimited
        } else if subscribed {
            NodeStatus::Subscribed
        } else {
            NodeStatus::Connected
        }
    }

    /// Counts an `eth_getLogs` answer found incomplete (a lagging backend).
    pub fn record_incomplete(&self) {
        self.counts.record_incomplete();
    }

    /// The chain the node serves (`eth_chainId`).
    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        self.call("eth_chainId", || self.provider.get_chain_id())
            .await
    }

    /// The node's latest block number.
    pub async fn head(&self) -> Result<u64, RpcError> {
        let head = self
            .call("eth_blockNumber", || self.provider.get_block_number())
            .await?;
        within_i64("eth_blockNumber", "head", head)
    }

    /// A `newHeads` subscription; only websocket nodes have one.
    pub async fn subscribe_heads(&self) -> Result<HeadSubscription, RpcError> {
        self.call("eth_subscribe", || self.provider.subscribe_blocks())
            .await
    }

    /// The logs of `from..=to` that `query` asks for (its addresses and
    /// topics; its block option is replaced): one call of a node's merged
    /// questions.
    pub async fn logs(&self, from: u64, to: u64, query: &Filter) -> Result<Vec<Log>, RpcError> {
        let filter = query.clone().from_block(from).to_block(to);
        let logs = self
            .call("eth_getLogs", || self.provider.get_logs(&filter))
            .await?;
        check_logs(&logs, from, to, query)?;
        Ok(logs)
    }

    /// The logs of the block with hash `hash` that `query` asks for: asked
    /// by hash, so a backend that has not seen the block says so instead of
    /// answering nothing.
    pub async fn logs_at(&self, hash: B256, query: &Filter) -> Result<Vec<Log>, RpcError> {
        let filter = query.clone().at_block_hash(hash);
        let logs = self
            .call("eth_getLogs", || self.provider.get_logs(&filter))
            .await?;
        check_logs(&logs, 0, u64::MAX, query)?;
        if logs.iter().any(|l| l.block_hash.is_some_and(|h| h != hash)) {
            return Err(invalid(
                "eth_getLogs",
                format!("a log of another block answered a query for block {hash}"),
            ));
        }
        Ok(logs)
    }

    /// The header of block `number`: what fork checks and timestamps need.
    pub async fn block_header(&self, number: u64) -> Result<BlockHeader, RpcError> {
        let block = self
            .call("eth_getBlockByNumber", || {
                self.provider
                    .get_block_by_number(BlockNumberOrTag::Number(number))
            })
            .await?
            .ok_or(RpcError::MissingBlock(number))?;
        header_of(number, &block.header)
    }

    /// A block with its transactions: fetched once per block, whatever the
    /// number of monitors.
    pub async fn full_block(
        &self,
        number: u64,
    ) -> Result<(BlockHeader, Vec<Transaction>), RpcError> {
        let block = self
            .call("eth_getBlockByNumber", || {
                self.provider
                    .get_block_by_number(BlockNumberOrTag::Number(number))
                    .full()
            })
            .await?
            .ok_or(RpcError::MissingBlock(number))?;
        let header = header_of(number, &block.header)?;
        let transactions: Vec<Transaction> = block.transactions.into_transactions().collect();
        if let Some(tx) = transactions
            .iter()
            .find(|tx| tx.block_number.is_some_and(|n| n != number))
        {
            return Err(invalid(
                "eth_getBlockByNumber",
                format!(
                    "block {number} holds a transaction of block {:?}",
                    tx.block_number
                ),
            ));
        }
        for index in transactions.iter().filter_map(|tx| tx.transaction_index) {
            within_integer("eth_getBlockByNumber", "transaction index", index)?;
        }
        Ok((header, transactions))
    }

    /// A transaction's receipt: its status and any created contract.
    pub async fn receipt(&self, hash: B256) -> Result<TransactionReceipt, RpcError> {
        self.call("eth_getTransactionReceipt", || {
            self.provider.get_transaction_receipt(hash)
        })
        .await?
        .ok_or_else(|| RpcError::Node {
            call: "eth_getTransactionReceipt",
            code: None,
            status: None,
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
        self.pacer.turn().await;
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

    /// Makes a call: paced, within the read timeout, and made again on its
    /// own (up to [`crate::limits::RATE_LIMIT_RETRIES`] times) while the node
    /// refuses it for its rate limit.
    async fn call<T, F>(&self, call: &'static str, make: impl Fn() -> F) -> Result<T, RpcError>
    where
        F: IntoFuture<Output = alloy::transports::TransportResult<T>>,
    {
        let mut attempt = 0;
        loop {
            self.pacer.turn().await;
            let result = deadline(call, self.read_timeout, async {
                make()
                    .await
                    .map_err(|e| RpcError::from_transport(call, &e, |t| self.scrubber.scrub(t)))
            })
            .await;
            self.counts.record(result.is_ok());
            let Err(RpcError::RateLimited { retry_after, .. }) = &result else {
                return result;
            };
            self.counts.record_rate_limited();
            self.limited.store(true, Ordering::Relaxed);
            if let Ok(mut at) = self.limited_at.lock() {
                *at = Some(Instant::now());
            }
            attempt += 1;
            match retry_wait(attempt, *retry_after) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return result,
            }
        }
    }
}

/// A header as the follower keeps it, checked to be the block asked for.
fn header_of(number: u64, header: &alloy::rpc::types::Header) -> Result<BlockHeader, RpcError> {
    const CALL: &str = "eth_getBlockByNumber";
    if header.number != number {
        return Err(invalid(
            CALL,
            format!("asked for block {number}, got block {}", header.number),
        ));
    }
    Ok(BlockHeader {
        number: within_i64(CALL, "block number", number)?,
        hash: header.hash,
        parent_hash: header.parent_hash,
        timestamp: within_i64(CALL, "timestamp", header.timestamp)?,
        logs_bloom: header.logs_bloom,
    })
}

/// Checks that every log of an `eth_getLogs` answer is one we asked for: in
/// the range, from one of the contracts, with one of the event signatures,
/// and with numbers the database can store.
fn check_logs(logs: &[Log], from: u64, to: u64, query: &Filter) -> Result<(), RpcError> {
    const CALL: &str = "eth_getLogs";
    for log in logs {
        if let Some(number) = log.block_number {
            if !(from..=to).contains(&number) {
                return Err(invalid(
                    CALL,
                    format!("a log of block {number} answered a query for blocks {from}..={to}"),
                ));
            }
        }
        if !query.matches_address(log.address()) {
            return Err(invalid(
                CALL,
                format!("a log of contract {} was not asked for", log.address()),
            ));
        }
        if !query.matches_topics(log.topics()) {
            return Err(invalid(
                CALL,
                "a log with other topics than those asked for".into(),
            ));
        }
        for (what, value) in [
            ("log index", log.log_index),
            ("transaction index", log.transaction_index),
        ] {
            if let Some(value) = value {
                within_integer(CALL, what, value)?;
            }
        }
    }
    Ok(())
}

/// A node-sent number the database stores as `bigint`.
fn within_i64(call: &'static str, what: &str, value: u64) -> Result<u64, RpcError> {
    if i64::try_from(value).is_ok() {
        Ok(value)
    } else {
        Err(invalid(
            call,
            format!("{what} {value} is beyond what a bigint holds"),
        ))
    }
}

/// A node-sent index the database stores as `integer` (log and
/// transaction indexes): refused here, so that a row never holds another
/// value than the node sent.
fn within_integer(call: &'static str, what: &str, value: u64) -> Result<(), RpcError> {
    if i32::try_from(value).is_ok() {
        Ok(())
    } else {
        Err(invalid(
            call,
            format!("{what} {value} is beyond what an integer column holds"),
        ))
    }
}

fn invalid(call: &'static str, message: String) -> RpcError {
    RpcError::Invalid { call, message }
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
