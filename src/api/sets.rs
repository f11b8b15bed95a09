//! Address sets (backends): `create_address_set`, `drop_address_set`,
//! `watch` and `unwatch`. The members are rows of
//! `eventeum.address_set_members`, which an application may also write
//! with plain `INSERT` and `DELETE`; the worker sees a change when its
//! transaction commits.

use pgrx::prelude::{default, pg_extern, Spi};

use super::{exists, or_raise, raise, require_served_database, wake_worker_at_commit};
use crate::error::ApiError;
use crate::matcher::stored_address;
use crate::spec::{parse_address, validate_set_name};

/// Creates an address set for filters to follow by name. Returns the name;
/// an existing set is left as it is.
#[pg_extern(volatile)]
fn create_address_set(name: &str) -> String {
    require_served_database();
    let name = or_raise(validate_set_name(name));
    update(
        "INSERT INTO eventeum.address_sets (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &name,
        None,
    );
    wake_worker_at_commit();
    name
}

/// Drops an address set and its members. Raises 2BP01 while a filter follows it.
#[pg_extern(volatile)]
fn drop_address_set(name: &str) {
    let users: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT id FROM eventeum.contract_event_filters
                  WHERE address_set = $1
                     OR definition -> 'indexedParameterFilters' @> jsonb_build_array(jsonb_build_object('addressSet', $1::text))
                  ORDER BY id",
                None,
                &[name.into()],
            )?
            .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    if !users.is_empty() {
        raise(ApiError::InUse {
            kind: "address set",
            name: name.to_string(),
            detail: format!("followed by filter(s) {}", users.join(", ")),
        });
    }
    if update(
        "DELETE FROM eventeum.address_sets WHERE name = $1",
        name,
        None,
    ) == 0
    {
        raise(ApiError::not_found("address set", name));
    }
    wake_worker_at_commit();
}

/// Adds `address` to the set. With `start_block`, its events are backfilled
/// from that block for every filter that follows the set; without, it is
/// followed from the block the worker is at when this commits. Returns false
/// when it is a member already (left as it is).
#[pg_extern(volatile)]
fn watch(set_name: &str, address: &str, start_block: default!(Option<i64>, "NULL")) -> bool {
    require_served_database();
    let address = or_raise(parse_address(address));
    if start_block.is_some_and(|b| b < 0) {
        raise(ApiError::invalid(format!(
            "start block must not be negative, got {}",
            start_block.unwrap_or_default()
        )));
    }
    require_set(set_name);
    let added = Spi::connect_mut(|client| {
        client
            .update(
                "INSERT INTO eventeum.address_set_members (set_name, address, start_block)
                 VALUES ($1, $2, $3) ON CONFLICT (set_name, address) DO NOTHING",
                None,
                &[
                    set_name.into(),
                    stored_address(&address).into(),
                    start_block.into(),
                ],
            )
            .map(|t| t.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot watch {address}: {e}"));
    wake_worker_at_commit();
    added > 0
}

/// Removes `address` from the set: it is no longer followed. Its stored
/// events stay. Returns false when it was not a member.
#[pg_extern(volatile)]
fn unwatch(set_name: &str, address: &str) -> bool {
    let address = or_raise(parse_address(address));
    require_set(set_name);
    let removed = update(
        "DELETE FROM eventeum.address_set_members WHERE set_name = $1 AND address = $2",
        set_name,
        Some(&stored_address(&address)),
    );
    wake_worker_at_commit();
    removed > 0
}

/// Raises 42704 unless the set exists.
pub(super) fn require_set(name: &str) {
    if !exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.address_sets WHERE name = $1)",
        name,
    ) {
        raise(ApiError::NotFound {
            kind: "address set",
            name: name.to_string(),
            hint: Some("create it with eventeum.create_address_set(name)".into()),
        });
    }
}

/// Runs a mutating statement with one or two text arguments through
/// `update`, so that its statement triggers see it; returns the rows it touched.
fn update(sql: &str, first: &str, second: Option<&str>) -> usize {
    let mut args = vec![first.into()];
    args.extend(second.map(Into::into));
    Spi::connect_mut(|client| client.update(sql, None, &args).map(|t| t.len()))
        .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
}
