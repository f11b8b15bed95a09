//! What a node's refusal means (tokio): alloy's transport errors turned into
//! typed errors that keep the JSON-RPC code and HTTP status, and the
//! providers' messages for "rate limited" and "range too large" recognised.

use std::time::Duration;

use alloy::rpc::json_rpc::ErrorPayload;
use alloy::transports::{TransportError, TransportErrorKind};

use super::transport::ResponseTooLarge;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{call} timed out after {after:?}")]
    Timeout { call: &'static str, after: Duration },
    /// The node kept refusing for its rate limit after every retry.
    #[error("{call} rate limited: {message}")]
    RateLimited {
        call: &'static str,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The node refused an `eth_getLogs` range as too wide or too full.
    #[error("{call} refused the range: {message}")]
    RangeRefused { call: &'static str, message: String },
    /// The answer was larger than the node's `maxResponseBytes`.
    #[error("{call} answered more than {limit} bytes (maxResponseBytes)")]
    TooLarge { call: &'static str, limit: usize },
    /// The answer did not parse, or said something impossible.
    #[error("{call} gave an invalid answer: {message}")]
    Invalid { call: &'static str, message: String },
    /// Any other error the node answered with.
    #[error("{call} failed: {message}{}{}",
        code.map(|c| format!(" (code {c})")).unwrap_or_default(),
        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Node {
        call: &'static str,
        code: Option<i64>,
        status: Option<u16>,
        message: String,
    },
    /// The node could not be reached.
    #[error("{call} failed: {message}")]
    Transport { call: &'static str, message: String },
    #[error("block {0} is not known to the node")]
    MissingBlock(u64),
    /// A URL of the node serves another chain than the node follows.
    #[error("the url serves chain {got}, not chain {expected} that the node follows")]
    WrongChain { expected: u64, got: u64 },
}

impl RpcError {
    /// Whether a smaller `eth_getLogs` range may succeed: the node refused the
    /// range, its answer was over the size cap, or it timed out on it.
    pub fn is_range_limit(&self) -> bool {
        match self {
            RpcError::RangeRefused { .. } => true,
            RpcError::TooLarge { call, .. } | RpcError::Timeout { call, .. } => {
                *call == "eth_getLogs"
            }
            _ => false,
        }
    }

    pub fn is_rate_limit(&self) -> bool {
        matches!(self, RpcError::RateLimited { .. })
    }

    /// Classifies what alloy reports for `call`; `scrub` removes secrets from
    /// any text the node or the transport sent back.
    pub fn from_transport(
        call: &'static str,
        error: &TransportError,
        scrub: impl Fn(&str) -> String,
    ) -> RpcError {
        use alloy::transports::RpcError as Alloy;
        match error {
            Alloy::ErrorResp(payload) => from_payload(call, payload, None, &scrub),
            Alloy::Transport(kind) => match kind {
                TransportErrorKind::Custom(inner) => {
                    if let Some(too_large) = inner.downcast_ref::<ResponseTooLarge>() {
                        return RpcError::TooLarge {
                            call,
                            limit: too_large.limit,
                        };
                    }
                    let message = scrub(&inner.to_string());
                    if let Some(retry) = message.strip_prefix("Max retries exceeded ") {
                        return RpcError::RateLimited {
                            call,
                            retry_after: None,
                            message: retry.to_string(),
                        };
                    }
                    RpcError::Transport { call, message }
                }
                kind => match kind.as_http_error() {
                    Some(http) => {
                        let payload = serde_json::from_str::<ErrorBody>(&http.body)
                            .ok()
                            .map(|b| b.error);
                        let refused = RpcError::Node {
                            call,
                            code: None,
                            status: Some(http.status),
                            message: scrub(&shorten(&http.body)),
                        };
                        match payload {
                            _ if http.status == 429 => RpcError::RateLimited {
                                call,
                                retry_after: kind.retry_after(),
                                message: format!("HTTP 429 {}", scrub(&shorten(&http.body))),
                            },
                            Some(payload) => {
                                from_payload(call, &payload, Some(http.status), &scrub)
                            }
                            None => refused,
                        }
                    }
                    None => RpcError::Transport {
                        call,
                        message: scrub(&kind.to_string()),
                    },
                },
            },
            Alloy::DeserError { err, text } => {
                // Some providers send their errors without a proper envelope.
                if let Ok(body) = serde_json::from_str::<ErrorBody>(text) {
                    return from_payload(call, &body.error, None, &scrub);
                }
                RpcError::Invalid {
                    call,
                    message: scrub(&format!("{err}: {}", shorten(text))),
                }
            }
            Alloy::NullResp => RpcError::Invalid {
                call,
                message: "null where a value was expected".into(),
            },
            other => RpcError::Transport {
                call,
                message: scrub(&other.to_string()),
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorPayload,
}

fn from_payload(
    call: &'static str,
    payload: &ErrorPayload,
    status: Option<u16>,
    scrub: &impl Fn(&str) -> String,
) -> RpcError {
    let message = scrub(&shorten(&payload.message));
    match classify(payload.code, &payload.message) {
        Refusal::RangeTooLarge if call == "eth_getLogs" => RpcError::RangeRefused { call, message },
        Refusal::RateLimited => RpcError::RateLimited {
            call,
            retry_after: None,
            message,
        },
        _ => RpcError::Node {
            call,
            code: Some(payload.code),
            status,
            message,
        },
    }
}

/// What a JSON-RPC error says about the request that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests: wait and send the same request again.
    RateLimited,
    /// Too many blocks or logs at once: ask for a smaller range.
    RangeTooLarge,
    Other,
}

/// How the clients and providers word a range refusal (lower case). Infura
/// and Alchemy reuse -32005 and 429-like wording for both kinds of refusal,
/// so these are tried first.
const RANGE_REFUSALS: &[&str] = &[
    "query returned more than",          // Infura, geth-based nodes, zkEVM
    "query exceeds max results",         // reth, llamarpc
    "query exceeds max block range",     // reth, hyperliquid
    "exceed maximum block range",        // geth's --rpc.rangelimit, publicnode
    "response size exceeded",            // Alchemy
    "this block range should work",      // Alchemy
    "try with this block range",         // Infura
    "is limited to a",                   // QuickNode, 1rpc
    "block range is too wide",           // Ankr, Moonriver
    "block range is too large",          // Optimism
    "block range too large",             // Base
    "block range limit exceeded",        // Chainstack
    "logs matched by query exceeds",     // Arbitrum (nitro)
    "backend response too large",        // Optimism
    "max range:",                        // Cloudflare
    "maximum block range:",              // publicnode
    "too many blocks",                   // Avalanche ("requested too many blocks")
    "please limit the query to at most", // Coinbase
    "too many logs",                     // Nethermind's MaxLogsPerResponse
];

/// How providers word a rate limit (lower case).
const RATE_LIMITS: &[&str] = &[
    "rate limit",                   // Infura "project ID request rate exceeded", many others
    "request rate exceeded",        // Infura
    "too many requests",            // HTTP 429 bodies, QuickNode
    "request limit reached",        // QuickNode
    "compute units per second",     // Alchemy
    "capacity exceeded",            // Alchemy ("exceeded its compute units per second capacity")
    "daily request count exceeded", // Infura
    "throughput",                   // Alchemy ("exceeded its throughput")
    "try again in",                 // Alchemy, Ankr ("try again in 4ms")
];

/// Classifies a JSON-RPC error by its code and message. -32005 ("limit
/// exceeded") is a rate limit unless its message names a range.
pub fn classify(code: i64, message: &str) -> Refusal {
    let message = message.to_ascii_lowercase();
    if RANGE_REFUSALS.iter().any(|m| message.contains(m)) {
        return Refusal::RangeTooLarge;
    }
    if code == 429 || code == -32005 || RATE_LIMITS.iter().any(|m| message.contains(m)) {
        return Refusal::RateLimited;
    }
    Refusal::Other
}

/// Node-sent text kept in an error: the first 300 characters.
fn shorten(text: &str) -> String {
    const KEEP: usize = 300;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Range refusals as each client or provider words them, recorded from
    /// their source or documentation.
    #[test]
    fn range_refusals_of_clients_and_providers() {
        let refusals = [
            // reth: EthFilterError::QueryExceedsMaxBlocks / QueryExceedsMaxResults
            (-32602, "query exceeds max block range 100000"),
            (-32602, "query exceeds max results 20000, retry with the range 24383075-24383096"),
            // geth with --rpc.rangelimit (also what publicnode answers)
            (-32000, "exceed maximum block range: 50000"),
            // Infura
            (-32005, "query returned more than 10000 results. Try with this block range [0x1C5E1A5, 0x1C5E3F0]."),
            // Alchemy
            (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x10e3ee0, 0x10e4b8f]"),
            // QuickNode
            (-32614, "eth_getLogs is limited to a 10,000 range"),
            // Ankr
            (-32600, "block range is too wide"),
            // Chainstack
            (-32000, "Block range limit exceeded."),
            // Arbitrum nitro
            (-32000, "logs matched by query exceeds limit of 10000"),
            // Nethermind
            (-32001, "Too many logs requested. Max logs allowed: 10000"),
        ];
        for (code, message) in refusals {
            assert_eq!(classify(code, message), Refusal::RangeTooLarge, "{message}");
        }
    }

    #[test]
    fn rate_limits_of_providers() {
        let limits = [
            (-32005, "project ID request rate exceeded"),            // Infura
            (-32005, "daily request count exceeded, request rate limited"), // Infura
            (429, "Your app has exceeded its compute units per second capacity. If you have retries enabled, you can safely ignore this message."), // Alchemy
            (-32007, "request limit reached"),                        // QuickNode
            (-32000, "Too Many Requests"),
            (-32016, "rate limited; try again in 250ms"),
        ];
        for (code, message) in limits {
            assert_eq!(classify(code, message), Refusal::RateLimited, "{message}");
        }
    }

    #[test]
    fn other_errors_are_neither() {
        for (code, message) in [
            (-32602, "invalid argument 0: hex string without 0x prefix"),
            (-32000, "header not found"),
            (-32601, "the method eth_foo does not exist/is not available"),
            (-32000, "execution reverted"),
        ] {
            assert_eq!(classify(code, message), Refusal::Other, "{message}");
        }
    }

    #[test]
    fn a_range_refusal_of_another_call_is_not_a_range_limit() {
        let payload = ErrorPayload {
            code: -32005,
            message: "query returned more than 10000 results".into(),
            data: None,
        };
        let error = from_payload("eth_getBlockByNumber", &payload, None, &|s: &str| s.into());
        assert!(!error.is_range_limit());
        let error = from_payload("eth_getLogs", &payload, None, &|s: &str| s.into());
        assert!(error.is_range_limit());
    }

    #[test]
    fn long_node_text_is_cut() {
        let long = "x".repeat(10_000);
        assert!(shorten(&long).chars().count() <= 301);
    }
}
