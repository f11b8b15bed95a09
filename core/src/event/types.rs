//! Parameter types: Eventeum's names (`UINT256`, `ADDRESS[]`, `BYTE`…) and,
//! as ABI JSON writes them, fixed and nested arrays and tuples (structs)
//! with named components.

use std::fmt;

use alloy::dyn_abi::DynSolType;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// The longest fixed-size array a type may declare: decoding allocates per
/// element, and a filter is configuration an admin may get wrong.
pub const MAX_FIXED_ARRAY: usize = 1024;
/// How deeply arrays and tuples may nest.
pub const MAX_TYPE_DEPTH: usize = 8;
/// The most components a tuple may have.
const MAX_COMPONENTS: usize = 256;

/// One of the parameter types a filter may declare: Eventeum's UINT8..UINT256
/// and INT8..INT256 (UINT and INT are 256 bits), ADDRESS, BYTE (bytes1),
/// BYTES1..BYTES32, BYTES, STRING, BOOL, and TUPLE (with components), each
/// optionally an array (`[]` or `[N]`, nested up to [`MAX_TYPE_DEPTH`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamType {
    sol: DynSolType,
    /// As the filter spelled it, upper case: `list_filters` gives it back.
    name: String,
    /// A tuple's components (or the components of an array's tuple elements).
    components: Vec<Component>,
}

/// A named member of a tuple type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Empty when the ABI gives none.
    pub name: String,
    /// Its Solidity type.
    pub ty: ParamType,
}

/// A type as ABI JSON (and `eventSpecification`'s `components`) writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawType {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub components: Option<Vec<RawType>>,
}

impl ParamType {
    /// Parses an Eventeum type name, case-insensitively (`uint256`, `UINT256[]`, `BYTE`).
    pub fn parse(name: &str) -> ApiResult<Self> {
        Self::parse_with_components(name, None)
    }

    /// Parses a type that may be a tuple, whose components are listed as ABI
    /// JSON lists them.
    pub fn parse_with_components(name: &str, components: Option<&[RawType]>) -> ApiResult<Self> {
        Self::parse_at_depth(name, components, 0)
    }

    fn parse_at_depth(name: &str, components: Option<&[RawType]>, depth: usize) -> ApiResult<Self> {
        if depth > MAX_TYPE_DEPTH {
            return Err(ApiError::invalid(format!(
                "parameter types nest more than {MAX_TYPE_DEPTH} deep"
            )));
        }
        let lower = name.trim().to_ascii_lowercase();
        let (base, dims) = split_dimensions(&lower)
            .ok_or_else(|| ApiError::invalid(format!("unsupported parameter type \"{name}\"")))?;
        if dims.len() + depth > MAX_TYPE_DEPTH {
            return Err(ApiError::invalid(format!(
                "parameter type \"{name}\" nests more than {MAX_TYPE_DEPTH} deep"
            )));
        }
        // web3j's aliases, which Eventeum's filters use.
        let base = match base {
            "byte" => "bytes1",
            "uint" => "uint256",
            "int" => "int256",
            other => other,
        };
        let (mut sol, parsed_components) = if base == "tuple" {
            let raw = components.ok_or_else(|| {
                ApiError::invalid(format!("parameter type \"{name}\" needs its components"))
            })?;
            if raw.len() > MAX_COMPONENTS {
                return Err(ApiError::invalid(format!(
                    "a tuple has at most {MAX_COMPONENTS} components"
                )));
            }
            let parsed = raw
                .iter()
                .map(|c| {
                    Ok(Component {
                        name: c.name.clone().unwrap_or_default(),
                        ty: Self::parse_at_depth(&c.ty, c.components.as_deref(), depth + 1)?,
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            let types = parsed.iter().map(|c| c.ty.sol.clone()).collect();
            (DynSolType::Tuple(types), parsed)
        } else {
            if components.is_some_and(|c| !c.is_empty()) {
                return Err(ApiError::invalid(format!(
                    "parameter type \"{name}\" is not a tuple but lists components"
                )));
            }
            if !is_supported_base(base) {
                return Err(ApiError::invalid_with_hint(
                    format!("unsupported parameter type \"{name}\""),
                    "supported types are UINT8-UINT256 and INT8-INT256 in steps of 8 (UINT and \
                     INT are 256 bits), ADDRESS, BYTE, BYTES1-BYTES32, BYTES, STRING, BOOL and \
                     TUPLE (with components), each optionally an array: [] or [N]",
                ));
            }
            let sol = DynSolType::parse(base).map_err(|e| {
                ApiError::invalid(format!("unsupported parameter type \"{name}\": {e}"))
            })?;
            (sol, vec![])
        };
        for dim in dims {
            sol = match dim {
                None => DynSolType::Array(Box::new(sol)),
                Some(n) => DynSolType::FixedArray(Box::new(sol), n),
            };
        }
        Ok(ParamType {
            sol,
            name: name.trim().to_ascii_uppercase(),
            components: parsed_components,
        })
    }

    /// The Solidity type, used to decode.
    pub fn sol_type(&self) -> &DynSolType {
        &self.sol
    }

    /// Canonical Solidity name, e.g. `uint256[]` or `(address,uint256)`;
    /// what messages carry as `type`.
    pub fn sol_name(&self) -> String {
        self.sol.sol_type_name().into_owned()
    }

    /// Eventeum's spelling as the filter gave it, e.g. `UINT256[]`, `BYTE`
    /// or `TUPLE[]`; what `list_filters` returns.
    pub fn eventeum_name(&self) -> String {
        self.name.clone()
    }

    /// A tuple's components, in order; empty for every other type (for an
    /// array of tuples, its elements' components).
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Dynamic types, arrays and tuples are stored in a topic only as the
    /// keccak hash of their encoding.
    pub fn is_hashed_when_indexed(&self) -> bool {
        matches!(
            self.sol,
            DynSolType::String
                | DynSolType::Bytes
                | DynSolType::Array(_)
                | DynSolType::FixedArray(..)
                | DynSolType::Tuple(_)
        )
    }

    /// The parameter definition's `type` and, for tuples, `components`.
    pub fn write_json(&self, into: &mut Value) {
        into["type"] = json!(self.eventeum_name());
        if !self.components.is_empty() {
            into["components"] = self
                .components
                .iter()
                .map(|c| {
                    let mut v = json!({ "name": c.name });
                    c.ty.write_json(&mut v);
                    v
                })
                .collect();
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.eventeum_name())
    }
}

/// `uint256[2][]` → (`uint256`, [Some(2), None]); None if the suffix is malformed.
fn split_dimensions(ty: &str) -> Option<(&str, Vec<Option<usize>>)> {
    let (base, mut rest) = match ty.find('[') {
        Some(at) => (&ty[..at], &ty[at..]),
        None => (ty, ""),
    };
    let mut dims = vec![];
    while !rest.is_empty() {
        let close = rest.find(']')?;
        let inside = rest.get(1..close)?;
        if !rest.starts_with('[') {
            return None;
        }
        dims.push(if inside.is_empty() {
            None
        } else {
            let n = inside.parse::<usize>().ok()?;
            if n == 0 || n > MAX_FIXED_ARRAY || inside.starts_with('0') {
                return None;
            }
            Some(n)
        });
        rest = &rest[close + 1..];
    }
    Some((base, dims))
}

fn is_supported_base(base: &str) -> bool {
    fn bits(rest: &str) -> bool {
        rest.parse::<u16>()
            .is_ok_and(|n| (8..=256).contains(&n) && n % 8 == 0)
            && !rest.starts_with('0')
    }
    match base {
        "address" | "string" | "bool" | "bytes" => true,
        _ => {
            if let Some(rest) = base.strip_prefix("uint") {
                bits(rest)
            } else if let Some(rest) = base.strip_prefix("int") {
                bits(rest)
            } else if let Some(rest) = base.strip_prefix("bytes") {
                rest.parse::<u8>().is_ok_and(|n| (1..=32).contains(&n)) && !rest.starts_with('0')
            } else {
                false
            }
        }
    }
}
