//! Factories (any thread): a filter on an address set may name the filter of
//! a factory's creation event and the parameter that holds the child's
//! address; every such event adds the child to the set.

use alloy::dyn_abi::DynSolType;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::event::EventSpecification;

/// `"factory": {"filter": "<id>", "parameter": "<name>" | <position>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factory {
    /// The id of the filter of the factory's creation event.
    pub filter: String,
    pub parameter: FactoryParameter,
}

/// Which parameter of the creation event holds the child's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactoryParameter {
    Name(String),
    Position(u32),
}

impl Factory {
    pub(super) fn from_json(value: &Value) -> ApiResult<Self> {
        let invalid = || {
            ApiError::invalid_with_hint(
                format!("invalid factory {value}"),
                "write it as {\"filter\": \"<id of the factory-event filter>\", \"parameter\": \"<name or position of the address parameter>\"}",
            )
        };
        let Value::Object(fields) = value else {
            return Err(invalid());
        };
        if fields.keys().any(|k| k != "filter" && k != "parameter") {
            return Err(invalid());
        }
        let filter = fields
            .get("filter")
            .and_then(Value::as_str)
            .filter(|f| !f.trim().is_empty())
            .ok_or_else(invalid)?;
        let parameter = match fields.get("parameter") {
            Some(Value::String(name)) if !name.trim().is_empty() => {
                match name.trim().parse::<u32>() {
                    Ok(position) => FactoryParameter::Position(position),
                    Err(_) => FactoryParameter::Name(name.trim().to_string()),
                }
            }
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .map(FactoryParameter::Position)
                .ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
        Ok(Factory {
            filter: filter.to_string(),
            parameter,
        })
    }

    pub(super) fn to_json(&self) -> Value {
        match &self.parameter {
            FactoryParameter::Name(name) => json!({"filter": self.filter, "parameter": name}),
            FactoryParameter::Position(p) => json!({"filter": self.filter, "parameter": p}),
        }
    }

    /// The declaration position of the child's address in the creation
    /// event `event`: the parameter must exist and be an address.
    pub fn position_in(&self, event: &EventSpecification) -> ApiResult<u32> {
        let found =
            event
                .indexed
                .iter()
                .chain(&event.non_indexed)
                .find(|p| match &self.parameter {
                    FactoryParameter::Name(name) => p.name.as_deref() == Some(name.as_str()),
                    FactoryParameter::Position(position) => p.position == *position,
                });
        let Some(parameter) = found else {
            let names: Vec<String> = event
                .indexed
                .iter()
                .chain(&event.non_indexed)
                .map(|p| p.name.clone().unwrap_or_else(|| p.position.to_string()))
                .collect();
            return Err(ApiError::invalid(format!(
                "factory: event {} of filter \"{}\" has no parameter {}; it has {}",
                event.event_name,
                self.filter,
                self.to_json()["parameter"],
                names.join(", ")
            )));
        };
        if *parameter.ty.sol_type() != DynSolType::Address {
            return Err(ApiError::invalid(format!(
                "factory: parameter {} of event {} is a {}, not an address",
                self.to_json()["parameter"],
                event.event_name,
                parameter.ty.sol_name()
            )));
        }
        Ok(parameter.position)
    }
}
