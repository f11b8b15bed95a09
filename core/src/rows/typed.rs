//! A stored event as a row of its kind table, in COPY's binary format: the
//! key columns of every kind table, then a column per value (or Eventeum's
//! two JSON lists in the JSON table), each in its type's binary form.

use alloy::primitives::hex;

use super::copy::BinaryCopy;
use crate::decode::{DecodedParameters, EventParameter, ParamValue};
use crate::kind::{KindTable, StorageType};
use crate::message::ContractEventRecord;

/// Writes `record`'s row into `copy` for `table`, under `(filter_key,
/// node_key)`. False, with part of a row written (the caller truncates it),
/// when a value does not fit the table's column.
pub(super) fn write_row(
    copy: &mut BinaryCopy,
    table: &KindTable,
    record: &ContractEventRecord,
    parameters: &DecodedParameters,
    (filter_key, node_key): (i32, i32),
) -> bool {
    let (Some(block_hash), Some(transaction_hash), Some(address)) = (
        hex_bytes(&record.block_hash, 32),
        hex_bytes(&record.transaction_hash, 32),
        hex_bytes(&record.address, 20),
    ) else {
        return false;
    };
    copy.row(crate::kind::KEY_COLUMNS.len() + table.value_count())
        .integer(node_key)
        .integer(filter_key)
        .bigint(record.block_number)
        .integer(record.log_index)
        .text(record.status.as_str())
        .optional_bigint(record.block_timestamp)
        .bytes(&block_hash)
        .bytes(&transaction_hash)
        .bytes(&address)
        .optional_text(record.correlation_id.as_deref());
    match table {
        KindTable::Json => {
            copy.jsonb(record.indexed_parameters.get())
                .jsonb(record.non_indexed_parameters.get());
            true
        }
        KindTable::Typed(kind) => {
            let (mut indexed, mut non_indexed) =
                (parameters.indexed.iter(), parameters.non_indexed.iter());
            kind.parameters.iter().all(|p| {
                let value = if p.indexed {
                    indexed.next()
                } else {
                    non_indexed.next()
                };
                value.is_some_and(|v| write_value(copy, &p.storage, v))
            })
        }
    }
}

/// One value in its column's binary form.
fn write_value(copy: &mut BinaryCopy, storage: &StorageType, parameter: &EventParameter) -> bool {
    match (storage, &parameter.value) {
        (StorageType::Numeric, ParamValue::Number(digits)) => copy.numeric(digits).is_some(),
        (StorageType::Boolean, ParamValue::Number(digit)) => {
            copy.boolean(digit != "0");
            true
        }
        (StorageType::Address, ParamValue::Text(text)) => match hex_bytes(text, 20) {
            Some(bytes) => {
                copy.bytes(&bytes);
                true
            }
            None => false,
        },
        (StorageType::Bytea, ParamValue::Text(text)) => {
            match text.strip_prefix("0x").map(hex::decode) {
                Some(Ok(bytes)) => {
                    copy.bytes(&bytes);
                    true
                }
                _ => false,
            }
        }
        (StorageType::Text, ParamValue::Text(text)) => {
            copy.text(text);
            true
        }
        _ => false,
    }
}

/// The `size` bytes of `0x`-prefixed hex.
fn hex_bytes(text: &str, size: usize) -> Option<Vec<u8>> {
    let bytes = hex::decode(text.strip_prefix("0x")?).ok()?;
    (bytes.len() == size).then_some(bytes)
}
