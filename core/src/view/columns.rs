//! A typed view's parameter columns: each parameter's name, SQL type, and
//! the expression that reads it from `contract_events`' JSON.

use std::collections::HashSet;

use alloy::dyn_abi::DynSolType;

use super::{kept_as_given, literal, MAX_NAME, META_COLUMNS};
use crate::event::{Component, EventSpecification, ParamType};

/// The SQL types of scalar columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// Every uint and int: exact, all 78 digits.
    Numeric,
    /// Addresses (EIP-55) and strings.
    Text,
    Boolean,
    /// bytesN, bytes, and the keccak hash of an indexed dynamic value.
    Bytea,
}

impl Scalar {
    fn of(ty: &DynSolType) -> Option<Self> {
        Some(match ty {
            DynSolType::Uint(_) | DynSolType::Int(_) => Scalar::Numeric,
            DynSolType::Address | DynSolType::String => Scalar::Text,
            DynSolType::Bool => Scalar::Boolean,
            DynSolType::Bytes | DynSolType::FixedBytes(_) => Scalar::Bytea,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Scalar::Numeric => "numeric",
            Scalar::Text => "text",
            Scalar::Boolean => "boolean",
            Scalar::Bytea => "bytea",
        }
    }

    /// The value of the Eventeum parameter object `param` (a jsonb expression).
    fn read(self, param: &str) -> String {
        match self {
            Scalar::Numeric => format!("(({param} ->> 'value')::numeric)"),
            Scalar::Text => format!("({param} ->> 'value')"),
            // Eventeum writes booleans as the numbers 1 and 0.
            Scalar::Boolean => format!("(({param} ->> 'value') = '1')"),
            Scalar::Bytea => format!("eventeum.parameter_bytes({param} ->> 'value')"),
        }
    }
}

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Scalar(Scalar),
    /// A one-dimensional array of scalars (`uint256[]`, `address[3]`).
    Array(Scalar),
    /// Tuples, nested arrays and arrays of tuples: jsonb, tuples as objects
    /// keyed by component name.
    Json,
}

impl ColumnType {
    pub fn sql(&self) -> String {
        match self {
            ColumnType::Scalar(s) => s.sql().to_string(),
            ColumnType::Array(s) => format!("{}[]", s.sql()),
            ColumnType::Json => "jsonb".to_string(),
        }
    }

    pub fn is_scalar(&self) -> bool {
        matches!(self, ColumnType::Scalar(_))
    }
}

/// One parameter column of a typed view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// In `indexed_parameters` (else `non_indexed_parameters`), at this index.
    indexed: bool,
    index: usize,
    sol: DynSolType,
    components: Vec<Component>,
}

impl Column {
    /// Every parameter column of `spec`'s view, in declaration order.
    pub fn all(spec: &EventSpecification) -> Vec<Column> {
        columns(spec)
    }

    /// The expression for this column over `contract_events`, its columns
    /// prefixed by `qualifier` (`e.` in the view, nothing in an index: the
    /// planner matches the two).
    pub fn expression(&self, qualifier: &str) -> String {
        let list = if self.indexed {
            "indexed_parameters"
        } else {
            "non_indexed_parameters"
        };
        let param = format!("({qualifier}{list} -> {})", self.index);
        match self.ty {
            ColumnType::Scalar(s) => s.read(&param),
            ColumnType::Array(s) => format!(
                "ARRAY(SELECT {} FROM jsonb_array_elements({param} -> 'value') WITH ORDINALITY AS x0(v, n) ORDER BY x0.n)",
                s.read("x0.v")
            ),
            ColumnType::Json => json_of(&param, &self.sol, &self.components, 0),
        }
    }
}

/// The columns of `spec`'s parameters in declaration order, named after them.
pub fn columns(spec: &EventSpecification) -> Vec<Column> {
    let mut names = UniqueNames::new(META_COLUMNS.iter().map(|s| s.to_string()));
    spec.in_declaration_order()
        .into_iter()
        .map(|(indexed, index, p)| {
            let hashed = indexed && p.ty.is_hashed_when_indexed();
            let ty = if hashed {
                ColumnType::Scalar(Scalar::Bytea)
            } else {
                column_type(&p.ty)
            };
            Column {
                name: names.take(p.name.as_deref().unwrap_or(""), p.position as usize),
                ty,
                indexed,
                index,
                sol: if hashed {
                    DynSolType::FixedBytes(32)
                } else {
                    p.ty.sol_type().clone()
                },
                components: p.ty.components().to_vec(),
            }
        })
        .collect()
}

fn column_type(ty: &ParamType) -> ColumnType {
    let sol = ty.sol_type();
    if let Some(s) = Scalar::of(sol) {
        return ColumnType::Scalar(s);
    }
    match sol {
        DynSolType::Array(element) | DynSolType::FixedArray(element, _) => {
            Scalar::of(element).map_or(ColumnType::Json, ColumnType::Array)
        }
        _ => ColumnType::Json,
    }
}

/// Names as given where Postgres keeps them so (1..=63 bytes, no control
/// characters), else `p<position>`; one already taken gets `_` appended.
struct UniqueNames(HashSet<String>);

impl UniqueNames {
    fn new(taken: impl Iterator<Item = String>) -> Self {
        UniqueNames(taken.collect())
    }

    fn take(&mut self, wanted: &str, position: usize) -> String {
        let mut name = if kept_as_given(wanted) {
            wanted.to_string()
        } else {
            format!("p{position}")
        };
        while self.0.contains(&name) {
            if name.len() >= MAX_NAME {
                name = format!("p{position}");
                while self.0.contains(&name) {
                    name.push('_');
                }
                break;
            }
            name.push('_');
        }
        self.0.insert(name.clone());
        name
    }
}

/// jsonb_build_object takes at most 100 arguments: 50 pairs per call.
const PAIRS_PER_CALL: usize = 50;

/// `param`'s value as plain JSON: numbers stay exact JSON numbers, booleans
/// become true/false, tuples objects keyed by component name.
fn json_of(param: &str, ty: &DynSolType, components: &[Component], depth: usize) -> String {
    match ty {
        DynSolType::Bool => format!("to_jsonb(({param} ->> 'value') = '1')"),
        DynSolType::Array(element) | DynSolType::FixedArray(element, _) => {
            let x = format!("x{depth}");
            format!(
                "(SELECT coalesce(jsonb_agg({} ORDER BY {x}.n), '[]'::jsonb) FROM jsonb_array_elements({param} -> 'value') WITH ORDINALITY AS {x}(v, n))",
                json_of(&format!("{x}.v"), element, components, depth + 1)
            )
        }
        DynSolType::Tuple(types) => {
            let mut keys = UniqueNames::new(std::iter::empty());
            let pairs: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(i, member)| {
                    let component = components.get(i);
                    let key = keys.take(component.map_or("", |c| c.name.as_str()), i);
                    let inner = component.map_or(&[][..], |c| c.ty.components());
                    format!(
                        "{}, {}",
                        literal(&key),
                        json_of(
                            &format!("({param} -> 'value' -> {i})"),
                            member,
                            inner,
                            depth
                        )
                    )
                })
                .collect();
            if pairs.is_empty() {
                return "'{}'::jsonb".to_string();
            }
            let calls: Vec<String> = pairs
                .chunks(PAIRS_PER_CALL)
                .map(|chunk| format!("jsonb_build_object({})", chunk.join(", ")))
                .collect();
            format!("({})", calls.join(" || "))
        }
        // Numbers, addresses, strings and hex bytes are JSON as stored.
        _ => format!("({param} -> 'value')"),
    }
}
