//! Transaction monitors (validation for the SQL API; any thread), as
//! Eventeum defines them: match transactions by hash, sender or recipient,
//! and report the statuses asked for.

use std::collections::BTreeSet;

use alloy::primitives::{Address, B256};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::spec::{parse_address, DEFAULT_NODE};
use crate::states::TransactionStatus;

/// What a monitor matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorTarget {
    Hash(B256),
    FromAddress(Address),
    ToAddress(Address),
}

impl MonitorTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            MonitorTarget::Hash(_) => "HASH",
            MonitorTarget::FromAddress(_) => "FROM_ADDRESS",
            MonitorTarget::ToAddress(_) => "TO_ADDRESS",
        }
    }

    /// The identifier as Eventeum shows it: the hash, or the checksummed address.
    pub fn value(&self) -> String {
        match self {
            MonitorTarget::Hash(h) => h.to_string(),
            MonitorTarget::FromAddress(a) | MonitorTarget::ToAddress(a) => a.to_checksum(None),
        }
    }

    /// Whether a transaction with this hash, sender and recipient matches.
    pub fn matches(&self, hash: &B256, from: &Address, to: Option<&Address>) -> bool {
        match self {
            MonitorTarget::Hash(h) => h == hash,
            MonitorTarget::FromAddress(a) => a == from,
            MonitorTarget::ToAddress(a) => Some(a) == to,
        }
    }
}

/// The statuses a monitor reports unless it lists its own: Eventeum's code
/// (its README says FAILED and CONFIRMED; its code and tests win).
pub const DEFAULT_STATUSES: [TransactionStatus; 3] = [
    TransactionStatus::Unconfirmed,
    TransactionStatus::Confirmed,
    TransactionStatus::Failed,
];

/// Eventeum's monitor id: keccak-256 of the identifier value as given, the
/// type, the node name and the statuses as Java prints a list
/// (`[UNCONFIRMED, CONFIRMED, FAILED]`), in hex without `0x`. The same spec
/// registered again gets the same id.
pub fn eventeum_id(value: &str, kind: &str, node: &str, statuses: &[TransactionStatus]) -> String {
    let listed: Vec<&str> = statuses.iter().map(TransactionStatus::as_str).collect();
    let text = format!("{value}{kind}{node}[{}]", listed.join(", "));
    alloy::primitives::hex::encode(alloy::primitives::keccak256(text.as_bytes()))
}

/// A validated transaction monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMonitor {
    /// The id the caller gave, if any.
    pub id: Option<String>,
    /// The id Eventeum would give it, used when the caller gives none.
    pub eventeum_id: String,
    pub node: String,
    pub target: MonitorTarget,
    pub statuses: BTreeSet<TransactionStatus>,
    /// The broadcasters its messages go to; None means all.
    pub broadcasters: Option<Vec<String>>,
}

impl TransactionMonitor {
    /// Parses Eventeum's REST body: `type`, `transactionIdentifierValue`,
    /// `nodeName` (default `default`), `statuses` (default UNCONFIRMED,
    /// CONFIRMED and FAILED),
    /// and our optional `id`.
    pub fn from_json(body: &Value) -> ApiResult<Self> {
        let raw: RawMonitor = serde_json::from_value(body.clone())
            .map_err(|e| ApiError::invalid(format!("invalid transaction monitor: {e}")))?;
        let kind = raw.kind.ok_or_else(|| {
            ApiError::invalid("type is required: HASH, FROM_ADDRESS or TO_ADDRESS")
        })?;
        let value = raw
            .transaction_identifier_value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ApiError::invalid("transactionIdentifierValue is required"))?;
        let target = match kind.trim().to_ascii_uppercase().as_str() {
            "HASH" => MonitorTarget::Hash(parse_hash(&value)?),
            "FROM_ADDRESS" => MonitorTarget::FromAddress(parse_address(&value)?),
            "TO_ADDRESS" => MonitorTarget::ToAddress(parse_address(&value)?),
            _ => {
                return Err(ApiError::invalid_with_hint(
                    format!("unknown monitor type \"{kind}\""),
                    "types are HASH, FROM_ADDRESS and TO_ADDRESS",
                ))
            }
        };
        // As listed (Eventeum's id hashes the list as written), else Eventeum's default.
        let listed: Vec<TransactionStatus> = match raw.statuses {
            None => DEFAULT_STATUSES.to_vec(),
            Some(list) if list.is_empty() => {
                return Err(ApiError::invalid("statuses must not be empty"))
            }
            Some(list) => list
                .iter()
                .map(|s| parse_status(s))
                .collect::<ApiResult<_>>()?,
        };
        let node = raw.node_name.unwrap_or_else(|| DEFAULT_NODE.to_string());
        let eventeum_id = eventeum_id(&value, target.kind(), &node, &listed);
        if node.trim().is_empty() {
            return Err(ApiError::invalid("nodeName must not be empty"));
        }
        if raw.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(ApiError::invalid("monitor id must not be empty"));
        }
        if raw
            .broadcasters
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n.trim().is_empty()))
        {
            return Err(ApiError::invalid("broadcaster names must not be empty"));
        }
        Ok(TransactionMonitor {
            id: raw.id,
            eventeum_id,
            node,
            target,
            statuses: listed.into_iter().collect(),
            broadcasters: raw.broadcasters,
        })
    }

    /// Eventeum's format, plus the id.
    pub fn to_json(&self, id: &str) -> Value {
        let mut v = json!({
            "id": id,
            "type": self.target.kind(),
            "transactionIdentifierValue": self.target.value(),
            "nodeName": self.node,
            "statuses": self.statuses.iter().map(TransactionStatus::as_str).collect::<Vec<_>>(),
        });
        if let Some(names) = &self.broadcasters {
            v["broadcasters"] = json!(names);
        }
        v
    }

    /// Whether a successful transaction is worth a row: it can only ever be
    /// UNCONFIRMED, CONFIRMED or INVALIDATED.
    pub fn tracks_successes(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| *s != TransactionStatus::Failed)
    }

    pub fn wants(&self, status: TransactionStatus) -> bool {
        self.statuses.contains(&status)
    }
}

fn parse_hash(s: &str) -> ApiResult<B256> {
    let s = s.trim();
    let valid = s
        .strip_prefix("0x")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
    if !valid {
        return Err(ApiError::invalid(format!(
            "\"{s}\" is not a transaction hash: expected 0x and 64 hex digits"
        )));
    }
    s.parse()
        .map_err(|e| ApiError::invalid(format!("\"{s}\" is not a transaction hash: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMonitor {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    transaction_identifier_value: Option<String>,
    node_name: Option<String>,
    statuses: Option<Vec<String>>,
    broadcasters: Option<Vec<String>>,
}

/// A status as the SQL API takes it: any case, surrounding spaces ignored.
fn parse_status(s: &str) -> ApiResult<TransactionStatus> {
    match s.trim().to_ascii_uppercase().as_str() {
        "UNCONFIRMED" => Ok(TransactionStatus::Unconfirmed),
        "CONFIRMED" => Ok(TransactionStatus::Confirmed),
        "FAILED" => Ok(TransactionStatus::Failed),
        "INVALIDATED" => Ok(TransactionStatus::Invalidated),
        _ => Err(ApiError::invalid_with_hint(
            format!("unknown transaction status \"{s}\""),
            "statuses are UNCONFIRMED, CONFIRMED, FAILED and INVALIDATED",
        )),
    }
}
