//! Contract-event filters (validation for the SQL API; any thread), as
//! Eventeum defines them: parameter types, event specifications,
//! correlation-id strategies, and their validation.
//!
//! A filter arrives either as Eventeum's REST body (`add_filter(jsonb)`) or as
//! a human-readable Solidity signature; both end as one [`FilterDefinition`].

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::event::{abi, specification_of_abi_event, EventSpecification};
use crate::view::{TypedView, ViewRequest};

mod emitters;

mod factory;

pub use emitters::{
    validate_set_name, Emitters, IndexedParameterFilter, IndexedValues, MAX_LITERAL_VALUES,
    MAX_SET_NAME,
};
pub use factory::{Factory, FactoryParameter};

/// The node a filter belongs to when the caller names none.
pub const DEFAULT_NODE: &str = "default";
/// Which parameter supplies a message's correlation id (its broker key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CorrelationKind {
    IndexedParameter,
    NonIndexedParameter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationIdStrategy {
    pub kind: CorrelationKind,
    /// Index into the indexed or non-indexed parameter list.
    pub parameter_index: u32,
}

/// A validated contract-event filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterDefinition {
    pub id: Option<String>,
    pub node: String,
    /// The contracts whose logs it takes: one, any, or an address set's.
    pub emitters: Emitters,
    pub specification: EventSpecification,
    /// Constraints on indexed parameters, by position.
    pub indexed_filters: Vec<IndexedParameterFilter>,
    /// The factory whose events add children to its address set.
    pub factory: Option<Factory>,
    pub correlation: Option<CorrelationIdStrategy>,
    pub start_block: Option<u64>,
    /// The broadcasters its messages go to; None means all.
    pub broadcasters: Option<Vec<String>>,
    /// NOTIFY each event its `startBlock` backfill stores, not one
    /// `eventeum_backfill` notice per piece.
    pub notify_backfill: bool,
    /// Its typed view.
    pub view: ViewRequest,
}

impl FilterDefinition {
    /// Whether the events its backfill stores are notified one by one. A
    /// `startBlock` backfill is history the user asked for: its pieces are
    /// announced on `eventeum_backfill` unless `notifyBackfill` says
    /// otherwise; catching up from the filter's registration is live
    /// following that came late, notified event by event.
    pub fn notifies_each_backfilled_event(&self) -> bool {
        self.notify_backfill || self.start_block.is_none()
    }

    /// The address sets it reads, as emitters or in indexed-parameter filters.
    pub fn address_sets(&self) -> impl Iterator<Item = &str> {
        self.emitters
            .set()
            .into_iter()
            .chain(self.indexed_filters.iter().filter_map(|f| match &f.values {
                IndexedValues::Set(name) => Some(name.as_str()),
                IndexedValues::Literal { .. } => None,
            }))
    }

    /// Eventeum's GET format, plus our `node` and `startBlock`, and the
    /// emitters and indexed-parameter filters beyond Eventeum's.
    pub fn to_json(&self, id: &str) -> Value {
        let mut v = json!({
            "id": id,
            "eventSpecification": self.specification.to_json(),
            "node": self.node,
        });
        self.emitters.write_json(&mut v);
        if let Some(factory) = &self.factory {
            v["factory"] = factory.to_json();
        }
        if !self.indexed_filters.is_empty() {
            v["indexedParameterFilters"] = self
                .indexed_filters
                .iter()
                .map(IndexedParameterFilter::to_json)
                .collect();
        }
        if let Some(c) = &self.correlation {
            v["correlationIdStrategy"] =
                json!({"type": c.kind, "parameterIndex": c.parameter_index});
        }
        if let Some(names) = &self.broadcasters {
            v["broadcasters"] = json!(names);
        }
        if let Some(b) = self.start_block {
            v["startBlock"] = json!(b);
        }
        if self.notify_backfill {
            v["notifyBackfill"] = json!(true);
        }
        v["view"] = self.view.to_json(id, &self.specification);
        v
    }

    /// Its typed view, None when it has none.
    pub fn typed_view(&self, id: &str) -> Option<TypedView> {
        self.view.resolve(id, &self.specification)
    }

    fn validate(&self) -> ApiResult<()> {
        if let Some(id) = &self.id {
            if id.trim().is_empty() {
                return Err(ApiError::invalid("filter id must not be empty"));
            }
        }
        if self.node.trim().is_empty() {
            return Err(ApiError::invalid("node name must not be empty"));
        }
        self.specification.validate()?;
        if self.factory.is_some() && self.emitters.set().is_none() {
            return Err(ApiError::invalid_with_hint(
                "a factory adds children to an address set: the filter needs addressSet",
                "follow the children with \"addressSet\": \"<name>\" and \"factory\": {\"filter\": \"<factory-event filter id>\", \"parameter\": \"<name or position>\"}",
            ));
        }
        if self
            .broadcasters
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n.trim().is_empty()))
        {
            return Err(ApiError::invalid("broadcaster names must not be empty"));
        }
        if let Some(c) = &self.correlation {
            let (list, len) = match c.kind {
                CorrelationKind::IndexedParameter => ("indexed", self.specification.indexed.len()),
                CorrelationKind::NonIndexedParameter => {
                    ("non-indexed", self.specification.non_indexed.len())
                }
            };
            if c.parameter_index as usize >= len {
                return Err(ApiError::invalid(format!(
                    "correlationIdStrategy.parameterIndex {} is out of range: the event has {len} {list} parameters",
                    c.parameter_index
                )));
            }
        }
        Ok(())
    }

    /// Parses Eventeum's REST body (plus the optional `node` and `startBlock`).
    pub fn from_json(body: &Value) -> ApiResult<Self> {
        let raw: RawFilter = serde_json::from_value(body.clone())
            .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
        let emitters =
            Emitters::from_json(raw.contract_address.as_ref(), raw.address_set.as_deref())?;
        let spec = raw
            .event_specification
            .ok_or_else(|| ApiError::invalid("eventSpecification is required"))?;
        let specification = if abi::is_abi_event(&spec) {
            specification_of_abi_event(&abi::parse_abi_event(&spec)?)?
        } else {
            EventSpecification::from_json(spec)?
        };
        let indexed_filters = IndexedParameterFilter::parse_all(
            &raw.indexed_parameter_filters.unwrap_or_default(),
            &specification,
        )?;
        let correlation = raw.correlation_id_strategy.map(|c| CorrelationIdStrategy {
            kind: c.kind,
            parameter_index: c.parameter_index,
        });
        let start_block = raw.start_block.map(parse_start_block).transpose()?;
        let filter = FilterDefinition {
            id: raw.id.clone(),
            node: raw.node.unwrap_or_else(|| DEFAULT_NODE.to_string()),
            factory: raw.factory.as_ref().map(Factory::from_json).transpose()?,
            emitters,
            indexed_filters,
            correlation,
            start_block,
            broadcasters: raw.broadcasters,
            notify_backfill: raw.notify_backfill.unwrap_or(false),
            view: ViewRequest::from_json(raw.view.as_ref(), &specification)?
                .normalized(raw.id.as_deref()),
            specification,
        };
        filter.validate()?;
        Ok(filter)
    }

    /// Builds a filter from a human-readable signature such as
    /// `Transfer(address indexed from, address indexed to, uint256 value)`,
    /// for the contract at `contract_address` (`*`: any contract).
    pub fn from_signature(
        contract_address: &str,
        signature: &str,
        node: &str,
        start_block: Option<i64>,
        id: Option<String>,
    ) -> ApiResult<Self> {
        let event = alloy::json_abi::Event::parse(signature.trim()).map_err(|e| {
            ApiError::invalid_with_hint(
                format!("malformed event signature \"{signature}\": {e}"),
                "write it as Solidity does, e.g. Transfer(address indexed from, address indexed to, uint256 value)",
            )
        })?;
        Self::for_event(contract_address, &event, node, start_block, id)
    }

    /// A filter for an ABI event (from a signature or ABI JSON) at
    /// `contract_address` (`*`: any contract).
    pub fn for_event(
        contract_address: &str,
        event: &alloy::json_abi::Event,
        node: &str,
        start_block: Option<i64>,
        id: Option<String>,
    ) -> ApiResult<Self> {
        let emitters = Emitters::from_address_argument(contract_address)?;
        let specification = specification_of_abi_event(event)?;
        let start_block = start_block
            .map(|b| {
                u64::try_from(b).map_err(|_| {
                    ApiError::invalid(format!("start block must not be negative, got {b}"))
                })
            })
            .transpose()?;
        let filter = FilterDefinition {
            id,
            node: node.to_string(),
            emitters,
            specification,
            indexed_filters: vec![],
            factory: None,
            correlation: None,
            start_block,
            broadcasters: None,
            notify_backfill: false,
            view: ViewRequest::default(),
        };
        filter.validate()?;
        Ok(filter)
    }
}

fn parse_start_block(value: Value) -> ApiResult<u64> {
    match &value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(format!(
            "startBlock must be a non-negative integer, got {value}"
        ))
    })
}

/// Parses a `0x` address. Mixed case must be a valid EIP-55 checksum; all-lower
/// or all-upper case is accepted as it is.
pub fn parse_address(s: &str) -> ApiResult<Address> {
    let s = s.trim();
    let hex = s
        .strip_prefix("0x")
        .filter(|h| h.len() == 40 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "\"{s}\" is not an address: expected 0x and 40 hex digits"
            ))
        })?;
    let mixed =
        hex.chars().any(|c| c.is_ascii_lowercase()) && hex.chars().any(|c| c.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(s, None).map_err(|_| {
            ApiError::invalid(format!("address \"{s}\" has an invalid EIP-55 checksum"))
        })
    } else {
        s.parse::<Address>()
            .map_err(|e| ApiError::invalid(format!("\"{s}\" is not an address: {e}")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFilter {
    id: Option<String>,
    /// Present and null (any contract) is not absent (an error, unless addressSet).
    #[serde(default, deserialize_with = "present")]
    contract_address: Option<Value>,
    address_set: Option<String>,
    indexed_parameter_filters: Option<Vec<Value>>,
    factory: Option<Value>,
    event_specification: Option<Value>,
    correlation_id_strategy: Option<RawCorrelation>,
    node: Option<String>,
    start_block: Option<Value>,
    broadcasters: Option<Vec<String>>,
    notify_backfill: Option<bool>,
    /// Present and null (no view) is not absent (the default view).
    #[serde(default, deserialize_with = "present")]
    view: Option<Value>,
}

/// A field that is present, null included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCorrelation {
    #[serde(rename = "type")]
    kind: CorrelationKind,
    parameter_index: u32,
}
