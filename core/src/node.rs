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
    /// Most blocks fetched in one step; 0 lets the follower choose.
    pub max_blocks_to_sync: u64,
    pub block_strategy: BlockStrategy,
    pub healthcheck_interval: u64,
    pub connection_timeout: u64,
    pub read_timeout: u64,
    pub add_transaction_revert_reason: bool,
    pub syncing_threshold: u64,
    /// Store and notify block events (Eventeum's blockNotification).
    pub block_notification: bool,
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
            block_strategy: BlockStrategy::Poll,
            healthcheck_interval: 10_000,
            connection_timeout: 5_000,
            read_timeout: 60_000,
            add_transaction_revert_reason: false,
            syncing_threshold: 60,
            block_notification: true,
        }
    }
}

const MAX_INTERVAL_MS: u64 = 24 * 3600 * 1000;
const MAX_BLOCKS: u64 = 1_000_000;

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
            ("syncingThreshold", self.syncing_threshold, 0, MAX_BLOCKS),
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
