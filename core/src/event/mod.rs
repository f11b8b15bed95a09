//! Event specifications (validation for the SQL API; any thread): what an
//! event is, as Eventeum's `eventSpecification` or an ABI describes it: its
//! name, its parameters' types and positions, and its topic0.
//!
//! Filters ([`crate::spec`]), typed views ([`crate::view`]) and decoding
//! ([`crate::decode`]) all read events through these types.

#![warn(missing_docs)]

use alloy::primitives::{keccak256, B256};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use types::RawType;

pub(crate) mod abi;
mod types;

pub use abi::{abi_events, specification_of_abi_event};
pub use types::{Component, ParamType, MAX_FIXED_ARRAY, MAX_TYPE_DEPTH};

/// Solidity allows at most three indexed parameters (topic0 is the signature).
pub const MAX_INDEXED: usize = 3;

/// A parameter of an event: its zero-based position in the declaration and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDefinition {
    /// Zero-based, in declaration order.
    pub position: u32,
    /// Its Solidity type.
    pub ty: ParamType,
    /// Its name, when the signature or the body gave one: what a factory's
    /// `parameter` may refer to.
    pub name: Option<String>,
}

/// Eventeum's `eventSpecification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpecification {
    /// The event's name, as in its signature.
    pub event_name: String,
    /// Sorted by position.
    pub indexed: Vec<ParameterDefinition>,
    /// Sorted by position.
    pub non_indexed: Vec<ParameterDefinition>,
}

impl EventSpecification {
    /// `Name(type0,type1,...)` with the types in declaration order.
    pub fn canonical_signature(&self) -> String {
        let types: Vec<String> = self
            .in_declaration_order()
            .iter()
            .map(|(_, _, p)| p.ty.sol_name())
            .collect();
        format!("{}({})", self.event_name, types.join(","))
    }

    /// Every parameter in declaration order, each with whether it is
    /// indexed and its index in `indexed` or `non_indexed`.
    pub fn in_declaration_order(&self) -> Vec<(bool, usize, &ParameterDefinition)> {
        let mut all: Vec<(bool, usize, &ParameterDefinition)> = self
            .indexed
            .iter()
            .enumerate()
            .map(|(i, p)| (true, i, p))
            .chain(
                self.non_indexed
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (false, i, p)),
            )
            .collect();
        all.sort_by_key(|(_, _, p)| p.position);
        all
    }

    /// Where the parameter at declaration `position` is: `(true, i)` for
    /// `indexed[i]`, `(false, i)` for `non_indexed[i]`.
    pub fn locate(&self, position: u32) -> Option<(bool, usize)> {
        let at = |list: &[ParameterDefinition]| list.iter().position(|p| p.position == position);
        at(&self.indexed)
            .map(|i| (true, i))
            .or_else(|| at(&self.non_indexed).map(|i| (false, i)))
    }

    /// topic0: the keccak hash of the canonical signature.
    pub fn topic0(&self) -> B256 {
        keccak256(self.canonical_signature().as_bytes())
    }

    pub(crate) fn validate(&self) -> ApiResult<()> {
        validate_identifier(&self.event_name)?;
        if self.indexed.len() > MAX_INDEXED {
            return Err(ApiError::invalid(format!(
                "event \"{}\" has {} indexed parameters; at most {MAX_INDEXED} are allowed",
                self.event_name,
                self.indexed.len()
            )));
        }
        let mut positions: Vec<u32> = self
            .indexed
            .iter()
            .chain(&self.non_indexed)
            .map(|p| p.position)
            .collect();
        positions.sort_unstable();
        for (expected, &position) in positions.iter().enumerate() {
            if position as usize != expected {
                let message = if positions.iter().filter(|&&p| p == position).count() > 1 {
                    format!("parameter position {position} is defined more than once")
                } else {
                    format!(
                        "parameter positions must run 0..{} without gaps, found {position}",
                        positions.len()
                    )
                };
                return Err(ApiError::invalid(message));
            }
        }
        Ok(())
    }

    /// Parses Eventeum's `eventSpecification` (with `components` for tuples).
    pub(crate) fn from_json(spec: Value) -> ApiResult<Self> {
        let spec: RawSpecification = serde_json::from_value(spec)
            .map_err(|e| ApiError::invalid(format!("invalid eventSpecification: {e}")))?;
        let event_name = spec
            .event_name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::invalid("eventSpecification.eventName is required"))?;
        let defs = |raw: Vec<RawParameter>| -> ApiResult<Vec<ParameterDefinition>> {
            let mut out = raw
                .into_iter()
                .map(|p| {
                    Ok(ParameterDefinition {
                        position: p.position,
                        ty: ParamType::parse_with_components(&p.ty, p.components.as_deref())?,
                        name: p.name.filter(|n| !n.trim().is_empty()),
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            out.sort_by_key(|p| p.position);
            out.shrink_to_fit();
            Ok(out)
        };
        let specification = EventSpecification {
            event_name,
            indexed: defs(spec.indexed_parameter_definitions.unwrap_or_default())?,
            non_indexed: defs(spec.non_indexed_parameter_definitions.unwrap_or_default())?,
        };
        specification.validate()?;
        Ok(specification)
    }

    pub(crate) fn to_json(&self) -> Value {
        let defs = |params: &[ParameterDefinition]| -> Vec<Value> {
            params
                .iter()
                .map(|p| {
                    let mut v = json!({"position": p.position});
                    p.ty.write_json(&mut v);
                    if let Some(name) = &p.name {
                        v["name"] = json!(name);
                    }
                    v
                })
                .collect()
        };
        json!({
            "eventName": self.event_name,
            "indexedParameterDefinitions": defs(&self.indexed),
            "nonIndexedParameterDefinitions": defs(&self.non_indexed),
        })
    }
}

fn validate_identifier(name: &str) -> ApiResult<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "\"{name}\" is not a valid event name"
        )))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSpecification {
    event_name: Option<String>,
    indexed_parameter_definitions: Option<Vec<RawParameter>>,
    non_indexed_parameter_definitions: Option<Vec<RawParameter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    position: u32,
    name: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    components: Option<Vec<RawType>>,
}
