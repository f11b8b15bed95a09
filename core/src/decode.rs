//! Decoding (stage: decode; any thread, called on tokio): a raw log and a
//! filter's specification become Eventeum's typed parameter lists, with
//! alloy's dynamic ABI doing the ABI work.

use alloy::dyn_abi::{DynSolType, DynSolValue};
use alloy::primitives::{hex, B256};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::event::ParameterDefinition;
use crate::spec::{CorrelationKind, FilterDefinition};

/// One of Eventeum's `{"type": ..., "value": ...}` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParameter {
    /// Canonical Solidity type name, e.g. `uint256` or `address[]`.
    pub ty: String,
    pub value: ParamValue,
}

/// A parameter value as it appears in Eventeum's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A decimal integer of any size, written as a JSON number with every digit.
    Number(String),
    Text(String),
    Array(Vec<EventParameter>),
}

impl ParamValue {
    /// The value as a plain string, as used for correlation ids.
    pub fn as_key(&self) -> String {
        match self {
            ParamValue::Number(n) | ParamValue::Text(n) => n.clone(),
            ParamValue::Array(items) => {
                let parts: Vec<String> = items.iter().map(|p| p.value.as_key()).collect();
                format!("[{}]", parts.join(","))
            }
        }
    }
}

impl Serialize for EventParameter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", &self.ty)?;
        match &self.value {
            // A raw JSON number keeps uint256-sized values exact; f64 would round them.
            ParamValue::Number(digits) => {
                let raw =
                    RawValue::from_string(digits.clone()).map_err(serde::ser::Error::custom)?;
                map.serialize_entry("value", &raw)?
            }
            ParamValue::Text(text) => map.serialize_entry("value", text)?,
            ParamValue::Array(items) => map.serialize_entry("value", items)?,
        }
        map.end()
    }
}

/// How bytesN values are rendered (Eventeum's `bytesToAscii`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    pub bytes_to_ascii: bool,
}

/// The raw parts of a log that decoding needs.
#[derive(Debug, Clone, Copy)]
pub struct RawLog<'a> {
    pub topics: &'a [B256],
    pub data: &'a [u8],
}

/// A log decoded against one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedParameters {
    pub indexed: Vec<EventParameter>,
    pub non_indexed: Vec<EventParameter>,
    pub correlation_id: Option<String>,
}

/// Why a log that matched a filter's address and topic0 could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("log has {actual} topics but the specification expects {expected}")]
    TopicCount { expected: usize, actual: usize },
    #[error("topic0 {actual} is not the specification's signature hash {expected}")]
    Signature { expected: B256, actual: B256 },
    #[error("indexed parameter at position {position} ({ty}) does not decode: {reason}")]
    Indexed {
        position: u32,
        ty: String,
        reason: String,
    },
    #[error("data does not decode as ({types}): {reason}")]
    Data { types: String, reason: String },
}

/// Decodes `log` against `filter`'s event specification.
pub fn decode_log(
    filter: &FilterDefinition,
    log: RawLog<'_>,
    options: RenderOptions,
) -> Result<DecodedParameters, DecodeError> {
    decode_log_with_topic0(filter, filter.specification.topic0(), log, options)
}

/// [`decode_log`] with the specification's topic0 already hashed, as a
/// follower keeps it per filter: hashing it again for every log of a large
/// backfill was a tenth of the decoding time.
pub fn decode_log_with_topic0(
    filter: &FilterDefinition,
    topic0: B256,
    log: RawLog<'_>,
    options: RenderOptions,
) -> Result<DecodedParameters, DecodeError> {
    let spec = &filter.specification;
    let expected_topics = spec.indexed.len() + 1;
    if log.topics.len() != expected_topics {
        return Err(DecodeError::TopicCount {
            expected: expected_topics,
            actual: log.topics.len(),
        });
    }
    if log.topics[0] != topic0 {
        return Err(DecodeError::Signature {
            expected: topic0,
            actual: log.topics[0],
        });
    }

    let indexed = spec
        .indexed
        .iter()
        .zip(&log.topics[1..])
        .map(|(def, topic)| decode_topic(def, topic, options))
        .collect::<Result<Vec<_>, _>>()?;

    let types: Vec<DynSolType> = spec
        .non_indexed
        .iter()
        .map(|p| p.ty.sol_type().clone())
        .collect();
    let tuple = DynSolType::Tuple(types);
    let values = tuple
        .abi_decode_sequence(log.data)
        .map_err(|e| DecodeError::Data {
            types: spec
                .non_indexed
                .iter()
                .map(|p| p.ty.sol_name())
                .collect::<Vec<_>>()
                .join(","),
            reason: e.to_string(),
        })?;
    let values = match values {
        DynSolValue::Tuple(values) => values,
        other => vec![other],
    };
    let non_indexed = spec
        .non_indexed
        .iter()
        .zip(values)
        .map(|(def, value)| render(def.ty.sol_type(), &value, options))
        .collect();

    let mut decoded = DecodedParameters {
        indexed,
        non_indexed,
        correlation_id: None,
    };
    decoded.correlation_id = filter.correlation.and_then(|c| {
        let list = match c.kind {
            CorrelationKind::IndexedParameter => &decoded.indexed,
            CorrelationKind::NonIndexedParameter => &decoded.non_indexed,
        };
        list.get(c.parameter_index as usize)
            .map(|p| p.value.as_key())
    });
    Ok(decoded)
}

fn decode_topic(
    def: &ParameterDefinition,
    topic: &B256,
    options: RenderOptions,
) -> Result<EventParameter, DecodeError> {
    if def.ty.is_hashed_when_indexed() {
        // Only the keccak hash of a dynamic value is in the topic: pass it on
        // as hex, typed as what it is, a bytes32 (as Eventeum types it).
        return Ok(EventParameter {
            ty: "bytes32".to_string(),
            value: ParamValue::Text(hex::encode_prefixed(topic)),
        });
    }
    let ty = def.ty.sol_type();
    let value = ty
        .abi_decode(topic.as_slice())
        .map_err(|e| DecodeError::Indexed {
            position: def.position,
            ty: def.ty.sol_name(),
            reason: e.to_string(),
        })?;
    Ok(render(ty, &value, options))
}

/// Renders a decoded value the way Eventeum's consumers expect it; arrays
/// and tuples as lists of their typed elements.
pub fn render(ty: &DynSolType, value: &DynSolValue, options: RenderOptions) -> EventParameter {
    let value = match value {
        DynSolValue::Uint(n, _) => ParamValue::Number(n.to_string()),
        DynSolValue::Int(n, _) => ParamValue::Number(n.to_string()),
        DynSolValue::Bool(b) => ParamValue::Number(if *b { "1" } else { "0" }.to_string()),
        DynSolValue::Address(a) => ParamValue::Text(a.to_checksum(None)),
        DynSolValue::FixedBytes(word, size) => {
            let bytes = &word[..*size];
            if options.bytes_to_ascii {
                ParamValue::Text(clean_text(&String::from_utf8_lossy(bytes)))
            } else {
                ParamValue::Text(hex::encode_prefixed(bytes))
            }
        }
        DynSolValue::Bytes(bytes) => ParamValue::Text(hex::encode_prefixed(bytes)),
        DynSolValue::String(s) => ParamValue::Text(clean_text(s)),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            let element = match ty {
                DynSolType::Array(element) | DynSolType::FixedArray(element, _) => element,
                other => other,
            };
            ParamValue::Array(
                items
                    .iter()
                    .map(|item| render(element, item, options))
                    .collect(),
            )
        }
        DynSolValue::Tuple(items) => {
            let members: &[DynSolType] = match ty {
                DynSolType::Tuple(members) => members,
                _ => &[],
            };
            ParamValue::Array(
                items
                    .iter()
                    .zip(members)
                    .map(|(item, member)| render(member, item, options))
                    .collect(),
            )
        }
        other => ParamValue::Text(format!("{other:?}")),
    };
    EventParameter {
        ty: ty.sol_type_name().into_owned(),
        value,
    }
}

/// Trimmed as Eventeum trims (Java's `String.trim()`: every character up to
/// U+0020 at both ends, NUL and control characters included, and no other
/// whitespace); a NUL left inside is dropped, since Postgres text and jsonb
/// cannot hold one.
fn clean_text(s: &str) -> String {
    let trimmed = s.trim_matches(|c: char| c <= '\u{20}');
    if trimmed.contains('\0') {
        trimmed.replace('\0', "")
    } else {
        trimmed.to_string()
    }
}
