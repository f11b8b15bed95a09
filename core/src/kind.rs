//! Event kinds (any thread): an event's parameter list as storage sees it,
//! the Solidity type of each parameter, indexed or not, in declaration
//! order, names aside. Every filter on events of one kind shares the kind's
//! table (docs/ARCHITECTURE.md, "Storage for years"), so 10,000 filters on
//! `Transfer` make one table, not 10,000. This module says what a kind is,
//! its key, and its value columns' SQL types; building the tables is step 3
//! of that design.

use alloy::dyn_abi::DynSolType;

use crate::compact::CompactType;
use crate::event::{EventSpecification, ParameterDefinition};

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
        if indexed && parameter.ty.is_hashed_when_indexed() {
            return StorageType::Bytea;
        }
        let sol = parameter.ty.sol_type();
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

/// One parameter of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindParameter {
    pub indexed: bool,
    /// The canonical Solidity type name (`uint256`, `(address,uint256)[]`):
    /// what Eventeum's messages carry as `type`.
    pub sol_name: String,
    pub storage: StorageType,
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

    /// Whether every value has a column type of its own, no jsonb.
    pub fn is_flat(&self) -> bool {
        self.parameters
            .iter()
            .all(|p| p.storage != StorageType::Json)
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
