//! Event kinds (any thread): an event's parameter list as storage sees it,
//! the Solidity type of each parameter, indexed or not, in declaration
//! order, names aside. Every filter on events of one kind shares the kind's
//! table (docs/ARCHITECTURE.md, "Storage for years"), so 10,000 filters on
//! `Transfer` make one table, not 10,000. This module says what a kind is,
//! its key and its value columns' SQL types; [`sql`] writes the statements
//! that create, read and render a kind's table.

pub mod partition;
mod sql;

use alloy::dyn_abi::DynSolType;
use alloy::primitives::{hex, keccak256};

use crate::compact::CompactType;
use crate::event::{EventSpecification, ParameterDefinition};

pub use sql::{contract_events_view_sql, Layout, KEY_COLUMNS, SOURCES_JOIN};

/// The schema of the event tables: nothing else lives there, so that one
/// publication covers them all.
pub const STORE_SCHEMA: &str = "eventeum_store";
/// The table of events whose values have no column type of their own.
pub const JSON_TABLE: &str = "events_json";
/// What a kind table's comment starts with; the kind's key follows.
pub const COMMENT_PREFIX: &str = "eventeum event kind: ";

/// How a parameter's value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageType {
    /// Every uint and int: exact, all 78 digits, as typed views show them.
    Numeric,
    /// `eventeum.address`: 20 bytes, shown as EIP-55 text.
    Address,
    Boolean,
    /// bytesN, bytes, and the topic (a keccak hash) of an indexed dynamic value.
    Bytea,
    Text,
    /// A one-dimensional array of one of the above.
    Array(Box<StorageType>),
    /// Tuples, nested arrays and arrays of tuples: jsonb, as typed views show them.
    Json,
}

impl StorageType {
    fn of(parameter: &ParameterDefinition, indexed: bool) -> Self {
        Self::of_sol(parameter.ty.sol_type(), indexed)
    }

    fn of_sol(sol: &DynSolType, indexed: bool) -> Self {
        if indexed && hashed_when_indexed(sol) {
            return StorageType::Bytea;
        }
        match sol {
            DynSolType::Array(element) | DynSolType::FixedArray(element, _) => {
                match Self::scalar(element) {
                    Some(scalar) => StorageType::Array(Box::new(scalar)),
                    None => StorageType::Json,
                }
            }
            _ => Self::scalar(sol).unwrap_or(StorageType::Json),
        }
    }

    fn scalar(sol: &DynSolType) -> Option<Self> {
        Some(match sol {
            DynSolType::Uint(_) | DynSolType::Int(_) => StorageType::Numeric,
            DynSolType::Address => StorageType::Address,
            DynSolType::Bool => StorageType::Boolean,
            DynSolType::Bytes | DynSolType::FixedBytes(_) => StorageType::Bytea,
            DynSolType::String => StorageType::Text,
            _ => return None,
        })
    }

    /// Its SQL type.
    pub fn sql(&self) -> String {
        match self {
            StorageType::Numeric => "numeric".into(),
            StorageType::Address => CompactType::Address.sql_name().into(),
            StorageType::Boolean => "boolean".into(),
            StorageType::Bytea => "bytea".into(),
            StorageType::Text => "text".into(),
            StorageType::Array(element) => format!("{}[]", element.sql()),
            StorageType::Json => "jsonb".into(),
        }
    }
}

/// Only the keccak hash of these is in a topic.
fn hashed_when_indexed(sol: &DynSolType) -> bool {
    matches!(
        sol,
        DynSolType::String
            | DynSolType::Bytes
            | DynSolType::Array(_)
            | DynSolType::FixedArray(..)
            | DynSolType::Tuple(_)
    )
}

/// One parameter of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindParameter {
    pub indexed: bool,
    /// The canonical Solidity type name (`uint256`, `(address,uint256)[]`):
    /// what Eventeum's messages carry as `type`.
    pub sol_name: String,
    pub storage: StorageType,
}

impl KindParameter {
    /// The `type` Eventeum's JSON gives the value: the topic of an indexed
    /// dynamic value is a `bytes32`.
    pub fn message_type(&self) -> &str {
        if self.is_topic_hash() {
            "bytes32"
        } else {
            &self.sol_name
        }
    }

    /// Whether the value is the keccak hash its topic holds.
    pub fn is_topic_hash(&self) -> bool {
        self.indexed && DynSolType::parse(&self.sol_name).is_ok_and(|sol| hashed_when_indexed(&sol))
    }

    /// Whether Eventeum's bytesToAscii would show the value as text.
    pub fn is_fixed_bytes(&self) -> bool {
        !self.is_topic_hash()
            && matches!(
                DynSolType::parse(&self.sol_name),
                Ok(DynSolType::FixedBytes(_))
            )
    }
}

/// An event's parameters as storage sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKind {
    pub parameters: Vec<KindParameter>,
}

impl EventKind {
    /// The kind of events of `spec`.
    pub fn of(spec: &EventSpecification) -> Self {
        EventKind {
            parameters: spec
                .in_declaration_order()
                .into_iter()
                .map(|(indexed, _, p)| KindParameter {
                    indexed,
                    sol_name: p.ty.sol_name(),
                    storage: StorageType::of(p, indexed),
                })
                .collect(),
        }
    }

    /// The key a kind is found by: each parameter's Solidity type, `!` after
    /// an indexed one, comma-separated. Two specifications have the same key
    /// exactly when their logs decode alike: names and the event's name do
    /// not count (the event's name is in topic0, which the filter matches).
    pub fn key(&self) -> String {
        self.parameters
            .iter()
            .map(|p| {
                if p.indexed {
                    format!("{}!", p.sol_name)
                } else {
                    p.sol_name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The value columns, `p1` for the first parameter in declaration order,
    /// with their SQL types.
    pub fn value_columns(&self) -> Vec<(String, String)> {
        self.parameters
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{}", i + 1), p.storage.sql()))
            .collect()
    }

    /// The kind of `key`, as [`EventKind::key`] wrote it; None for a key
    /// that is not one.
    pub fn from_key(key: &str) -> Option<Self> {
        if key.is_empty() {
            return Some(EventKind { parameters: vec![] });
        }
        let mut parameters = vec![];
        for part in split_top_level(key) {
            let (sol_name, indexed) = match part.strip_suffix('!') {
                Some(name) => (name, true),
                None => (part, false),
            };
            let sol = DynSolType::parse(sol_name).ok()?;
            parameters.push(KindParameter {
                indexed,
                sol_name: sol.sol_type_name().into_owned(),
                storage: StorageType::of_sol(&sol, indexed),
            });
        }
        Some(EventKind { parameters })
    }

    /// Whether every value has a scalar column of its own: no jsonb, no array.
    pub fn is_flat(&self) -> bool {
        self.parameters
            .iter()
            .all(|p| !matches!(p.storage, StorageType::Json | StorageType::Array(_)))
    }

    /// Whether any value is a bytesN that Eventeum's bytesToAscii shows as text.
    pub fn has_fixed_bytes(&self) -> bool {
        self.parameters.iter().any(KindParameter::is_fixed_bytes)
    }
}

/// Splits `a,(b,c)[],d` at its top-level commas.
fn split_top_level(key: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (vec![], 0i32, 0);
    for (i, c) in key.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&key[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&key[start..]);
    parts
}

/// Where the events of a filter are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindTable {
    /// The kind's table: a column per parameter.
    Typed(EventKind),
    /// [`JSON_TABLE`]: Eventeum's two JSON lists, for the kinds that are not
    /// flat and for values rendered as bytesToAscii text.
    Json,
}

impl KindTable {
    /// Where the events of `spec` go: their kind's table when the kind is
    /// flat and the specification lists its parameters in declaration order
    /// (so that the lists rendered from the columns are the lists decoded).
    pub fn of(spec: &EventSpecification) -> Self {
        let in_order = |list: &[ParameterDefinition]| list.is_sorted_by_key(|p| p.position);
        let kind = EventKind::of(spec);
        if kind.is_flat() && in_order(&spec.indexed) && in_order(&spec.non_indexed) {
            KindTable::Typed(kind)
        } else {
            KindTable::Json
        }
    }

    /// The table named `name` with the comment `comment`, if it is a kind table.
    pub fn from_comment(name: &str, comment: &str) -> Option<Self> {
        if name == JSON_TABLE {
            return Some(KindTable::Json);
        }
        let kind = EventKind::from_key(comment.strip_prefix(COMMENT_PREFIX)?)?;
        let table = KindTable::Typed(kind);
        (table.name() == name).then_some(table)
    }

    /// The table's name in [`STORE_SCHEMA`]: `events_` and a hash of the key.
    pub fn name(&self) -> String {
        match self {
            KindTable::Typed(kind) => format!(
                "events_{}",
                hex::encode(&keccak256(kind.key().as_bytes())[..6])
            ),
            KindTable::Json => JSON_TABLE.to_string(),
        }
    }

    /// `eventeum_store.<name>`.
    pub fn qualified_name(&self) -> String {
        format!("{STORE_SCHEMA}.{}", self.name())
    }

    /// How many value columns the table has.
    pub fn value_count(&self) -> usize {
        match self {
            KindTable::Typed(kind) => kind.parameters.len(),
            KindTable::Json => 2,
        }
    }

    /// The value columns and their SQL types.
    pub fn value_columns(&self) -> Vec<(String, String)> {
        match self {
            KindTable::Typed(kind) => kind.value_columns(),
            KindTable::Json => vec![
                ("indexed_parameters".into(), "jsonb".into()),
                ("non_indexed_parameters".into(), "jsonb".into()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EventKind, StorageType};
    use crate::spec::FilterDefinition;

    fn kind(signature: &str) -> EventKind {
        let filter =
            FilterDefinition::from_signature("*", signature, "default", None, None).unwrap();
        EventKind::of(&filter.specification)
    }

    #[test]
    fn transfer_is_one_kind_whatever_its_names() {
        let a = kind("Transfer(address indexed from, address indexed to, uint256 value)");
        let b = kind("Sent(address indexed sender, address indexed receiver, uint256 amount)");
        assert_eq!(a, b);
        assert_eq!(a.key(), "address!,address!,uint256");
        assert_eq!(
            a.value_columns(),
            vec![
                ("p1".into(), "eventeum.address".into()),
                ("p2".into(), "eventeum.address".into()),
                ("p3".into(), "numeric".into()),
            ]
        );
        assert!(a.is_flat());
    }

    #[test]
    fn indexing_a_parameter_makes_another_kind() {
        let erc20 = kind("Transfer(address indexed from, address indexed to, uint256 value)");
        let erc721 = kind("Transfer(address indexed from, address indexed to, uint256 indexed id)");
        assert_ne!(erc20.key(), erc721.key());
    }

    #[test]
    fn an_indexed_dynamic_value_is_its_topic_and_tuples_are_json() {
        let k = kind("E(string indexed key, uint8[] small, (address,uint256)[] pairs, bool flag)");
        let storage: Vec<StorageType> = k.parameters.iter().map(|p| p.storage.clone()).collect();
        assert_eq!(
            storage,
            vec![
                StorageType::Bytea,
                StorageType::Array(Box::new(StorageType::Numeric)),
                StorageType::Json,
                StorageType::Boolean,
            ]
        );
        assert_eq!(k.key(), "string!,uint8[],(address,uint256)[],bool");
        assert_eq!(k.value_columns()[1].1, "numeric[]");
        assert!(!k.is_flat());
    }
}
