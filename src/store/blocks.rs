//! Block events (main thread).

use alloy::primitives::hex;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use super::records_of;
use crate::config::BlockHeader;
use crate::message::{BlockRecord, Outgoing};

/// Stores block events; returns the BLOCK payloads of the blocks that are new.
pub(super) fn store_blocks(
    client: &mut SpiClient<'_>,
    node: &str,
    blocks: &[BlockHeader],
) -> SpiResult<Vec<Outgoing>> {
    if blocks.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Value> = blocks
        .iter()
        .map(|b| {
            json!({"hash": hex::encode_prefixed(b.hash), "number": b.number,
                   "parent_hash": hex::encode_prefixed(b.parent_hash), "timestamp": b.timestamp})
        })
        .collect();
    let inserted = client.update(
        "INSERT INTO eventeum.blocks AS b (node, hash, number, parent_hash, \"timestamp\")
         SELECT $1, r.hash, r.number, r.parent_hash, r.\"timestamp\"
           FROM jsonb_to_recordset($2::text::jsonb) AS r(hash text, number bigint, parent_hash text, \"timestamp\" bigint)
          ORDER BY r.number
         ON CONFLICT (node, hash) DO UPDATE SET status = 'CANONICAL' WHERE b.status = 'INVALIDATED'
         RETURNING to_jsonb(b)::text",
        None,
        &[node.into(), Value::Array(rows).to_string().into()],
    )?;
    let mut records = records_of::<BlockRecord>(inserted)?;
    records.sort_by_key(|b| b.number);
    Ok(records.iter().map(BlockRecord::outgoing).collect())
}
