//! Node definitions (validation for the SQL API; any thread): the URL and
//! Eventeum's per-node options, validated.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::redact::redact_url;

/// How a node tells us about new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum BlockStrategy {
    #[default]
    Poll,
    Pubsub,
}

/// Eventeum's node properties, camelCase as in its configuration. Durations
/// are milliseconds. Missing keys take Eventeum's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeOptions {
    pub polling_interval: u64,
    pub num_blocks_to_wait: u64,
    pub num_blocks_to_wait_before_invalidating: u64,
    pub num_blocks_to_wait_for_missing_tx: u64,
    pub num_blocks_to_replay: u64,
    /// Eventeum's maxBlocksToSync: when the follower starts more than this
    /// many blocks behind the head, it skips to the last this many blocks
    /// (older ones are never read). 0 syncs every block.
    pub max_blocks_to_sync: u64,
    /// Eventeum's initialStartBlock: the first block followed when the node
    /// has no checkpoint yet, instead of the block mined at its registration.
    /// Filters without a `startBlock` that have not been followed yet start
    /// there too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_start_block: Option<u64>,
    /// Most blocks one `eth_getLogs` covers; 0 lets the follower choose.
    pub max_block_range: u64,
    /// Leave CONFIRMED events and transactions as they are when a later fork
    /// removes their block, as Eventeum did; by default they become INVALIDATED.
    pub confirmed_is_final: bool,
    pub block_strategy: BlockStrategy,
    pub healthcheck_interval: u64,
    pub connection_timeout: u64,
    pub read_timeout: u64,
    pub add_transaction_revert_reason: bool,
    pub syncing_threshold: u64,
    /// Store and notify block events (Eventeum's blockNotification).
    pub block_notification: bool,
    /// Most requests sent to the node per second; 0 sends as fast as answers come.
    pub max_requests_per_second: u64,
    /// The largest answer read from the node, in bytes: a larger `eth_getLogs`
    /// answer splits its range, any other is an error.
    pub max_response_bytes: u64,
    /// Eventeum's basic-auth credentials. `add_node` moves them into the
    /// URLs (readable by admins only) and never stores them here, where
    /// readers can see the options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Idle HTTP connections kept per host (Eventeum's maxIdleConnections).
    pub max_idle_connections: u64,
    /// How long an idle HTTP connection is kept, in ms (Eventeum's keepAliveDuration).
    pub keep_alive_duration: u64,
    /// Blocks per partition of the node's events (each kind table is
    /// partitioned by node and block range); retention removes whole ones.
    pub partition_blocks: u64,
    /// Keep the events of this many blocks below the head; older, CONFIRMED
    /// ones leave with their partitions. 0 keeps every block.
    pub retain_blocks: u64,
    /// Keep the events of blocks stamped within this many ms of the last
    /// block processed (the chain's clock); older,
    /// CONFIRMED ones leave with their partitions. 0 keeps them for ever.
    pub retain_for: u64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            polling_interval: 10_000,
            num_blocks_to_wait: 12,
            num_blocks_to_wait_before_invalidating: 2,
            num_blocks_to_wait_for_missing_tx: 200,
            num_blocks_to_replay: 12,
            max_blocks_to_sync: 0,
            initial_start_block: None,
            max_block_range: 0,
            confirmed_is_final: false,
            block_strategy: BlockStrategy::Poll,
            healthcheck_interval: 10_000,
            connection_timeout: 5_000,
            read_timeout: 60_000,
            add_transaction_revert_reason: false,
            syncing_threshold: 60,
            block_notification: true,
            max_requests_per_second: 0,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            username: None,
            password: None,
            max_idle_connections: 5,
            keep_alive_duration: 10_000,
            partition_blocks: DEFAULT_PARTITION_BLOCKS,
            retain_blocks: 0,
            retain_for: 0,
        }
    }
}

const MAX_INTERVAL_MS: u64 = 24 * 3600 * 1000;
/// 64 MiB: about 60,000 logs, or a few full blocks of the busiest chains. The
/// worker may hold about three times this while it parses an answer.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;
const MIN_RESPONSE_BYTES: u64 = 64 << 10;
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
const MAX_BLOCKS: u64 = 1_000_000;
/// A month of 2-second blocks, four months of Ethereum's 12-second ones:
/// a chain followed for years has tens of partitions per kind.
pub const DEFAULT_PARTITION_BLOCKS: u64 = 1_000_000;
const MAX_PARTITION_BLOCKS: u64 = 100_000_000;
/// A century, in ms.
const MAX_RETAIN_FOR_MS: u64 = 100 * 366 * 24 * 3600 * 1000;

/// Blocks kept in `recent_blocks` beyond the deepest depth an option names.
const FORK_WINDOW_MARGIN: u64 = 32;

impl NodeOptions {
    /// How many recent block hashes to keep for fork checks: deep enough for
    /// every confirmation, invalidation and replay depth, plus a margin.
    pub fn fork_window(&self) -> u64 {
        self.num_blocks_to_wait
            .max(self.num_blocks_to_wait_before_invalidating)
            .max(self.num_blocks_to_replay)
            + FORK_WINDOW_MARGIN
    }

    /// Whether old events leave (`retainBlocks` or `retainFor`).
    pub fn retains(&self) -> bool {
        self.retain_blocks > 0 || self.retain_for > 0
    }

    /// Parses and validates an options object; unknown keys and out-of-range values are errors.
    pub fn from_json(options: &Value) -> ApiResult<Self> {
        if !options.is_object() {
            return Err(ApiError::invalid(format!(
                "node options must be a JSON object, got {options}"
            )));
        }
        let parsed: NodeOptions = serde_json::from_value(options.clone()).map_err(|e| {
            ApiError::invalid_with_hint(
                format!("invalid node option: {e}"),
                "options use Eventeum's camelCase node property names, e.g. {\"pollingInterval\": 1000, \"numBlocksToWait\": 12}",
            )
        })?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> ApiResult<()> {
        let ranges = [
            (
                "pollingInterval",
                self.polling_interval,
                10,
                MAX_INTERVAL_MS,
            ),
            (
                "healthcheckInterval",
                self.healthcheck_interval,
                10,
                MAX_INTERVAL_MS,
            ),
            (
                "connectionTimeout",
                self.connection_timeout,
                10,
                MAX_INTERVAL_MS,
            ),
            ("readTimeout", self.read_timeout, 10, MAX_INTERVAL_MS),
            ("numBlocksToWait", self.num_blocks_to_wait, 0, MAX_BLOCKS),
            (
                "numBlocksToWaitBeforeInvalidating",
                self.num_blocks_to_wait_before_invalidating,
                0,
                MAX_BLOCKS,
            ),
            (
                "numBlocksToWaitForMissingTx",
                self.num_blocks_to_wait_for_missing_tx,
                0,
                MAX_BLOCKS,
            ),
            (
                "numBlocksToReplay",
                self.num_blocks_to_replay,
                0,
                MAX_BLOCKS,
            ),
            ("maxBlocksToSync", self.max_blocks_to_sync, 0, MAX_BLOCKS),
            ("maxBlockRange", self.max_block_range, 0, MAX_BLOCKS),
            (
                "initialStartBlock",
                self.initial_start_block.unwrap_or(0),
                0,
                i64::MAX as u64,
            ),
            ("syncingThreshold", self.syncing_threshold, 0, MAX_BLOCKS),
            (
                "maxRequestsPerSecond",
                self.max_requests_per_second,
                0,
                100_000,
            ),
            (
                "maxResponseBytes",
                self.max_response_bytes,
                MIN_RESPONSE_BYTES,
                MAX_RESPONSE_BYTES,
            ),
            ("maxIdleConnections", self.max_idle_connections, 0, 1_000),
            (
                "partitionBlocks",
                self.partition_blocks,
                1,
                MAX_PARTITION_BLOCKS,
            ),
            ("retainBlocks", self.retain_blocks, 0, i64::MAX as u64),
            ("retainFor", self.retain_for, 0, MAX_RETAIN_FOR_MS),
            (
                "keepAliveDuration",
                self.keep_alive_duration,
                0,
                MAX_INTERVAL_MS,
            ),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ApiError::invalid(format!(
                    "{name} must be between {min} and {max}, got {value}"
                )));
            }
        }
        Ok(())
    }
}

/// Checks a node URL: http(s) for polling, ws(s) for polling or PUBSUB.
pub fn validate_url(raw: &str, strategy: BlockStrategy) -> ApiResult<url::Url> {
    // Error messages show the URL redacted: it may carry an API key.
    let shown = redact_url(raw.trim());
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid(format!("node url {shown} is not a valid URL: {e}")))?;
    match url.scheme() {
        "http" | "https" if strategy == BlockStrategy::Pubsub => Err(ApiError::invalid_with_hint(
            format!("blockStrategy PUBSUB needs a ws:// or wss:// url, got {shown}"),
            "use blockStrategy POLL for an http node",
        )),
        "http" | "https" | "ws" | "wss" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "http" | "https" | "ws" | "wss" => {
            Err(ApiError::invalid(format!("node url {shown} has no host")))
        }
        other => Err(ApiError::invalid(format!(
            "node url scheme \"{other}\" is not supported; use http, https, ws or wss"
        ))),
    }
}

/// Most URLs one node may have: the primary and its fallbacks.
pub const MAX_URLS: usize = 8;

/// A node's URLs as stored: the primary first, then its fallbacks.
pub fn split_urls(stored: &str) -> Vec<&str> {
    stored
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Checks a node's URLs: one, or several separated by commas, all serving the
/// same chain. The first (the primary) must suit the block strategy; the
/// fallbacks may be http(s), which then polls. Returns them as stored.
pub fn validate_urls(raw: &str, strategy: BlockStrategy) -> ApiResult<String> {
    let urls = split_urls(raw);
    let Some((primary, fallbacks)) = urls.split_first() else {
        return Err(ApiError::invalid("node url must not be empty"));
    };
    if urls.len() > MAX_URLS {
        return Err(ApiError::invalid(format!(
            "a node has at most {MAX_URLS} urls, got {}",
            urls.len()
        )));
    }
    let mut checked = vec![validate_url(primary, strategy)?.to_string()];
    for fallback in fallbacks {
        checked.push(validate_url(fallback, BlockStrategy::Poll)?.to_string());
    }
    Ok(checked.join(", "))
}

/// Moves Eventeum's `username`/`password` options into every URL's user
/// info, where only admins can read them and every display redacts them;
/// the HTTP client sends them as basic auth, the WebSocket client likewise.
pub fn move_credentials_into_urls(stored: &str, options: &mut NodeOptions) -> ApiResult<String> {
    let password = options.password.take();
    let Some(username) = options.username.take() else {
        if password.is_some() {
            return Err(ApiError::invalid("node option password needs username"));
        }
        return Ok(stored.to_string());
    };
    let mut urls = Vec::new();
    for raw in split_urls(stored) {
        let shown = redact_url(raw);
        let mut url = url::Url::parse(raw)
            .map_err(|e| ApiError::invalid(format!("node url {shown} is not a valid URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ApiError::invalid(format!(
                "node url {shown} has credentials already; give them in the url or as username and password, not both"
            )));
        }
        let set = url
            .set_username(&username)
            .and_then(|()| url.set_password(password.as_deref()));
        set.map_err(|()| ApiError::invalid(format!("node url {shown} cannot carry credentials")))?;
        urls.push(url.to_string());
    }
    Ok(urls.join(", "))
}

/// Refuses (42501) a node URL whose host `policy` does not allow, as far as
/// the URL alone shows; the worker checks what names resolve to.
pub fn check_urls_allowed(stored: &str, policy: &crate::netpolicy::NetworkPolicy) -> ApiResult<()> {
    for raw in split_urls(stored) {
        let url = url::Url::parse(raw).map_err(|e| {
            ApiError::invalid(format!(
                "node url {} is not a valid URL: {e}",
                redact_url(raw)
            ))
        })?;
        policy.check_url(&url).map_err(|refused| {
            ApiError::refused(refused, &format!("node url {}", redact_url(raw)))
        })?;
    }
    Ok(())
}

/// Node names are identifiers users type; they must not be blank.
pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid("node name must not be empty"));
    }
    if name.len() > 200 {
        return Err(ApiError::invalid(
            "node name must be at most 200 characters",
        ));
    }
    Ok(())
}
