//! Filters from ABI JSON, as solc, Foundry and Hardhat write it: one event
//! object (`{"type": "event", "name": …, "inputs": […]}`) becomes an
//! [`EventSpecification`]; a contract's ABI yields its events.

use alloy::json_abi::{Event, Param};
use serde_json::Value;

use super::types::RawType;
use super::{EventSpecification, ParamType, ParameterDefinition};
use crate::error::{ApiError, ApiResult};

/// Whether `spec` is an ABI event object rather than Eventeum's `eventSpecification`.
pub(crate) fn is_abi_event(spec: &Value) -> bool {
    spec.get("inputs").is_some() || spec.get("type").is_some_and(|t| t == "event")
}

/// Parses one ABI event object.
pub(crate) fn parse_abi_event(value: &Value) -> ApiResult<Event> {
    if value.get("type").is_some_and(|t| t != "event") {
        return Err(ApiError::invalid(format!(
            "an ABI event object has \"type\": \"event\", not {}",
            value["type"]
        )));
    }
    let mut value = value.clone();
    if let Value::Object(fields) = &mut value {
        // alloy's Event has no `type` field; solc writes one, and writes
        // `anonymous` always, which hand-written ABIs often leave out.
        fields.remove("type");
        fields.entry("anonymous").or_insert(Value::Bool(false));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("invalid ABI event object: {e}")))
}

/// The specification of an ABI event; anonymous events have no signature
/// topic to filter on.
pub fn specification_of_abi_event(event: &Event) -> ApiResult<EventSpecification> {
    if event.anonymous {
        return Err(ApiError::invalid(format!(
            "event \"{}\" is anonymous: it has no signature topic to filter on",
            event.name
        )));
    }
    let mut specification = EventSpecification {
        event_name: event.name.clone(),
        indexed: vec![],
        non_indexed: vec![],
    };
    for (position, input) in event.inputs.iter().enumerate() {
        let components: Vec<RawType> = input.components.iter().map(raw_type).collect();
        let def = ParameterDefinition {
            position: position as u32,
            ty: ParamType::parse_with_components(&input.ty, Some(&components))?,
            name: (!input.name.is_empty()).then(|| input.name.clone()),
        };
        if input.indexed {
            specification.indexed.push(def);
        } else {
            specification.non_indexed.push(def);
        }
    }
    // A snapshot holds one per filter: no spare capacity from the pushes.
    specification.indexed.shrink_to_fit();
    specification.non_indexed.shrink_to_fit();
    specification.validate()?;
    Ok(specification)
}

fn raw_type(param: &Param) -> RawType {
    RawType {
        name: Some(param.name.clone()),
        ty: param.ty.clone(),
        components: Some(param.components.iter().map(raw_type).collect()),
    }
}

/// The events of a contract ABI (an array, or an artifact object with an
/// `abi` key), in the ABI's order; only those named in `names` when given
/// (every overload of a name). Names that match no event are an error.
pub fn abi_events(abi: &Value, names: Option<&[String]>) -> ApiResult<Vec<Event>> {
    let items = match abi {
        Value::Array(_) => abi,
        Value::Object(fields) => fields.get("abi").ok_or_else(|| {
            ApiError::invalid("the ABI must be a JSON array, or an object with an \"abi\" array")
        })?,
        _ => return Err(ApiError::invalid("the ABI must be a JSON array")),
    };
    let Value::Array(entries) = items else {
        return Err(ApiError::invalid("the ABI's \"abi\" must be a JSON array"));
    };
    // Only the events: a function's or error's oddities are not ours to judge.
    let events = entries
        .iter()
        .filter(|e| e.get("type").is_some_and(|t| t == "event"))
        .map(parse_abi_event)
        .collect::<ApiResult<Vec<Event>>>()?;
    if let Some(names) = names {
        if let Some(missing) = names.iter().find(|n| !events.iter().any(|e| &e.name == *n)) {
            return Err(ApiError::NotFound {
                kind: "event",
                name: missing.clone(),
                hint: Some("name events of the ABI exactly, case included".into()),
            });
        }
        return Ok(events
            .into_iter()
            .filter(|e| names.contains(&e.name))
            .collect());
    }
    Ok(events)
}
