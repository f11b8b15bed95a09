//! Which logs a filter takes besides its event signature (any thread): the
//! contracts that emit them (one, any, or an address set) and constraints
//! on its indexed parameters, each as the filter spells it in JSON.

use alloy::dyn_abi::{DynSolType, DynSolValue};
use alloy::primitives::{keccak256, Address, B256};
use serde_json::{json, Value};

use super::parse_address;
use crate::error::{ApiError, ApiResult};
use crate::event::EventSpecification;

/// The longest address-set name: it is a key, not a description.
pub const MAX_SET_NAME: usize = 128;
/// The most literal values one indexed-parameter constraint may list; larger
/// lists belong in an address set.
pub const MAX_LITERAL_VALUES: usize = 1_000;

/// The contracts a filter takes its event from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitters {
    /// One contract: Eventeum's `contractAddress`.
    Contract(Address),
    /// Every contract that emits the event: `"contractAddress": null` or `"*"`.
    Any,
    /// The members of an address set, as they are when each block is read.
    Set(String),
}

impl Emitters {
    /// `contractAddress` as given: an address, `"*"` or null for any
    /// contract; or `addressSet` in its place.
    pub(super) fn from_json(
        contract_address: Option<&Value>,
        address_set: Option<&str>,
    ) -> ApiResult<Self> {
        match (contract_address, address_set) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "give contractAddress or addressSet, not both",
            )),
            (None, Some(set)) => Ok(Emitters::Set(validate_set_name(set)?)),
            (Some(Value::Null), None) => Ok(Emitters::Any),
            (Some(Value::String(address)), None) => Self::from_address_argument(address),
            (Some(other), None) => Err(ApiError::invalid(format!(
                "contractAddress must be an address, \"*\" or null, got {other}"
            ))),
            (None, None) => Err(ApiError::invalid_with_hint(
                "contractAddress is required",
                "give a contract's address, null or \"*\" for any contract that emits the \
                 event, or addressSet in its place",
            )),
        }
    }

    /// A contract address argument: `*` means any contract.
    pub fn from_address_argument(address: &str) -> ApiResult<Self> {
        if address.trim() == "*" {
            Ok(Emitters::Any)
        } else {
            parse_address(address).map(Emitters::Contract)
        }
    }

    /// The address set it follows, if any.
    pub fn set(&self) -> Option<&str> {
        match self {
            Emitters::Set(name) => Some(name),
            _ => None,
        }
    }

    /// The one contract, for `contract_event_filters.contract_address`.
    pub fn contract(&self) -> Option<Address> {
        match self {
            Emitters::Contract(address) => Some(*address),
            _ => None,
        }
    }

    pub(super) fn write_json(&self, into: &mut Value) {
        match self {
            Emitters::Contract(address) => {
                into["contractAddress"] = json!(address.to_checksum(None))
            }
            Emitters::Any => into["contractAddress"] = Value::Null,
            Emitters::Set(name) => into["addressSet"] = json!(name),
        }
    }
}

/// An address set's name: trimmed, not empty, at most [`MAX_SET_NAME`] characters.
pub fn validate_set_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("address set name must not be empty"));
    }
    if name.chars().count() > MAX_SET_NAME {
        return Err(ApiError::invalid(format!(
            "address set name is longer than {MAX_SET_NAME} characters"
        )));
    }
    Ok(name.to_string())
}

/// The values an indexed parameter may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexedValues {
    /// Literal values as the filter gave them, and each as its topic.
    Literal {
        given: Vec<Value>,
        topics: Vec<B256>,
    },
    /// An address parameter whose value is a member of the set.
    Set(String),
}

/// `indexedParameterFilters`: the event's indexed parameter at `position`
/// (its declaration position, as in `eventSpecification`) must take one of
/// `values`. Passed to the node as a topic filter when it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedParameterFilter {
    pub position: u32,
    /// The topic that holds the parameter: 1, 2 or 3.
    pub topic: usize,
    pub values: IndexedValues,
}

impl IndexedParameterFilter {
    /// Parses `[{"position": 1, "value": …} | {"values": […]} | {"addressSet": "…"}]`
    /// against the event it constrains.
    pub(super) fn parse_all(
        raw: &[Value],
        specification: &EventSpecification,
    ) -> ApiResult<Vec<Self>> {
        let mut parsed: Vec<Self> = Vec::with_capacity(raw.len());
        for item in raw {
            let filter = Self::parse(item, specification)?;
            if parsed.iter().any(|p| p.position == filter.position) {
                return Err(ApiError::invalid(format!(
                    "indexedParameterFilters constrains position {} more than once",
                    filter.position
                )));
            }
            parsed.push(filter);
        }
        parsed.sort_by_key(|p| p.position);
        Ok(parsed)
    }

    fn parse(item: &Value, specification: &EventSpecification) -> ApiResult<Self> {
        let Value::Object(fields) = item else {
            return Err(ApiError::invalid(
                "each of indexedParameterFilters must be an object",
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["position", "value", "values", "addressSet"].contains(&k.as_str()))
        {
            return Err(ApiError::invalid(format!(
                "indexedParameterFilters: unknown field \"{unknown}\""
            )));
        }
        let position = fields
            .get("position")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "indexedParameterFilters: position must be a non-negative integer",
                )
            })?;
        let Some((true, index)) = specification.locate(position) else {
            return Err(ApiError::invalid(format!(
                "indexedParameterFilters: the parameter at position {position} is not indexed"
            )));
        };
        let ty = specification.indexed[index].ty.sol_type();
        let values = match (fields.get("value"), fields.get("values"), fields.get("addressSet")) {
            (Some(value), None, None) => literal(std::slice::from_ref(value), ty, position)?,
            (None, Some(Value::Array(values)), None) => literal(values, ty, position)?,
            (None, Some(_), None) => {
                return Err(ApiError::invalid(
                    "indexedParameterFilters: values must be an array",
                ))
            }
            (None, None, Some(Value::String(set))) => {
                if *ty != DynSolType::Address {
                    return Err(ApiError::invalid(format!(
                        "indexedParameterFilters: an addressSet constrains an address, not the {} at position {position}",
                        ty.sol_type_name()
                    )));
                }
                IndexedValues::Set(validate_set_name(set)?)
            }
            _ => {
                return Err(ApiError::invalid(
                    "indexedParameterFilters: give exactly one of value, values (an array) or addressSet (a name)",
                ))
            }
        };
        Ok(IndexedParameterFilter {
            position,
            topic: index + 1,
            values,
        })
    }

    pub(super) fn to_json(&self) -> Value {
        match &self.values {
            IndexedValues::Literal { given, .. } => {
                json!({"position": self.position, "values": given})
            }
            IndexedValues::Set(name) => json!({"position": self.position, "addressSet": name}),
        }
    }
}

/// Each value as the topic an indexed parameter of type `ty` puts in a log:
/// its ABI word, or the keccak hash of a string's or bytes' contents.
fn literal(values: &[Value], ty: &DynSolType, position: u32) -> ApiResult<IndexedValues> {
    if values.is_empty() {
        return Err(ApiError::invalid(format!(
            "indexedParameterFilters: position {position} lists no values"
        )));
    }
    if values.len() > MAX_LITERAL_VALUES {
        return Err(ApiError::invalid_with_hint(
            format!("indexedParameterFilters: position {position} lists more than {MAX_LITERAL_VALUES} values"),
            "put longer lists of addresses in an address set",
        ));
    }
    let topics = values
        .iter()
        .map(|value| topic_of(value, ty))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| {
            ApiError::invalid(format!(
                "indexedParameterFilters: position {position} ({}): {e}",
                ty.sol_type_name()
            ))
        })?;
    Ok(IndexedValues::Literal {
        given: values.to_vec(),
        topics,
    })
}

fn topic_of(value: &Value, ty: &DynSolType) -> Result<B256, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("{other} is not a value of this type")),
    };
    if *ty == DynSolType::Address {
        return parse_address(&text)
            .map(|a| a.into_word())
            .map_err(|e| e.to_string());
    }
    let parsed = ty
        .coerce_str(&text)
        .map_err(|e| format!("\"{text}\": {e}"))?;
    Ok(match parsed {
        DynSolValue::String(s) => keccak256(s.as_bytes()),
        DynSolValue::Bytes(b) => keccak256(&b),
        DynSolValue::Array(_) => {
            return Err("arrays cannot be matched by value".to_string());
        }
        word => B256::from_slice(&word.abi_encode()),
    })
}
