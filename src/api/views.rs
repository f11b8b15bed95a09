//! Typed views (backends): each filter's view over its rows in its kind's
//! table, with a named, typed column per event parameter.
//!
//! A trigger on `contract_event_filters` creates, changes and drops them, so
//! `add_filter`, `set_view`, `remove_filter`, an upgrade and a restore all
//! take the same path: a restored dump has the views and the kind tables
//! with their indexes (pg_dump dumps them, they are not members of the
//! extension). The worker builds the indexes a view asks for.

use pgrx::prelude::{pg_extern, pg_sys, Spi};
use pgrx::JsonB;
use serde_json::Value;

use super::{
    at_most_one, exists_with, leave_extension, or_raise, raise, require_served_database, run,
};
use crate::error::ApiError;
use crate::kind::{KindTable, STORE_SCHEMA};
use crate::spec::FilterDefinition;
use crate::view::{ident, literal, marker, TypedView, ViewRequest, ViewSource, DEFAULT_SCHEMA};

/// Sets a filter's typed view: `false` (or NULL) drops it, a name or
/// `{"name", "schema", "index": [column, …]}` (re)creates it, what it
/// leaves out taking its default. A view whose schema and name stay is
/// kept and only its indexes change. Returns the view as the filter now
/// stores it.
#[pg_extern(volatile)]
fn set_view(filter_id: &str, view: Option<JsonB>) -> JsonB {
    require_served_database();
    let definition = at_most_one(Spi::get_one_with_args::<JsonB>(
        "SELECT definition FROM eventeum.contract_event_filters WHERE id = $1",
        &[filter_id.into()],
    ))
    .unwrap_or_else(|| raise(ApiError::not_found("filter", filter_id)))
    .0;
    let mut filter = or_raise(FilterDefinition::from_json(&definition));
    let current = filter.typed_view(filter_id);
    let request = view.map(|v| v.0).unwrap_or(Value::Null);
    filter.view = or_raise(ViewRequest::from_json(
        Some(&request),
        &filter.specification,
    ));
    if let Some(view) = filter.typed_view(filter_id) {
        let moved = current
            .as_ref()
            .is_none_or(|c| (&c.schema, &c.name) != (&view.schema, &view.name));
        if moved {
            check_target(&view);
        }
    }
    let stored = filter.to_json(filter_id);
    Spi::connect_mut(|client| {
        client
            .update(
                "UPDATE eventeum.contract_event_filters SET definition = $2 WHERE id = $1",
                None,
                &[filter_id.into(), JsonB(stored.clone()).into()],
            )
            .map(|_| ())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot set the view: {e}"));
    JsonB(stored["view"].clone())
}

/// Raises unless the caller may create `view`: its schema exists (3F000)
/// and is `eventeum` or one where the caller may CREATE (42501). Called
/// before the filter is written; the trigger then refuses a name that is
/// taken (42P07).
pub(super) fn check_target(view: &TypedView) {
    let schema = at_most_one(Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1",
        &[view.schema.as_str().into()],
    ))
    .unwrap_or_else(|| {
        raise(ApiError::NoSchema {
            name: view.schema.clone(),
        })
    });
    if view.schema != DEFAULT_SCHEMA {
        // The functions run as the extension's owner: ask for the role that
        // called them (SET ROLE included), whom SECURITY DEFINER does not change.
        // SAFETY: GetOuterUserId reads a backend global; no preconditions.
        let caller = unsafe { pg_sys::GetOuterUserId() };
        let system = view.schema.starts_with("pg_") || view.schema == "information_schema";
        let allowed = !system
            && exists_with(
                "SELECT pg_catalog.has_schema_privilege($1, $2, 'CREATE')",
                &[caller.into(), schema.into()],
            );
        if !allowed {
            raise(ApiError::Forbidden {
                message: format!(
                    "permission denied to create a view in schema \"{}\"",
                    view.schema
                ),
                hint: Some(
                    "name a schema you may create objects in, or leave out \"schema\" for eventeum"
                        .into(),
                ),
            });
        }
    }
}

/// What holds `view`'s name: nothing (None), this filter's view, marked by
/// its comment (Some(true)), or another relation (Some(false)).
fn occupant(view: &TypedView) -> Option<bool> {
    at_most_one(Spi::get_one_with_args::<bool>(
        "SELECT c.relkind = 'v' AND pg_catalog.obj_description(c.oid, 'pg_class') IS NOT DISTINCT FROM $3
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2",
        &[
            view.schema.as_str().into(),
            view.name.as_str().into(),
            marker(&view.filter_id).into(),
        ],
    ))
}

/// The trigger's work: from the row's old definition to its new one (either
/// may be NULL). Not callable by users; the trigger runs as the owner.
/// Makes the new definition's kind table when it is the first of its kind;
/// indexes are left to the index builder (see `crate::indexer`), so that
/// a restored dump's own `CREATE INDEX` finds none in its way.
#[pg_extern(volatile)]
fn _filter_view_changed(
    old_id: Option<&str>,
    old_definition: Option<JsonB>,
    new_id: Option<&str>,
    new_definition: Option<JsonB>,
) {
    let parse = |definition: Option<JsonB>| FilterDefinition::from_json(&definition?.0).ok();
    let view_of = |id: Option<&str>, filter: &Option<FilterDefinition>| -> Option<TypedView> {
        filter.as_ref()?.typed_view(id?)
    };
    if !super::kinds::store_exists() {
        // An update script older than 0.8.0 (run by this library in a chain
        // of updates): the 0.8.0 update makes every view again.
        return;
    }
    let (old_filter, new_filter) = (parse(old_definition), parse(new_definition));
    if let Some(filter) = &new_filter {
        super::kinds::ensure_kind_table(&KindTable::of(&filter.specification));
    }
    let old = view_of(old_id, &old_filter);
    let new = view_of(new_id, &new_filter);
    if let Some(old) = &old {
        let kept: Vec<String> = new.iter().flat_map(|n| n.index_names()).collect();
        for index in old.index_names() {
            if !kept.contains(&index) {
                run(&format!(
                    "DROP INDEX IF EXISTS {STORE_SCHEMA}.{}",
                    ident(&index)
                ));
            }
        }
        let moved = new
            .as_ref()
            .is_none_or(|n| (&n.schema, &n.name) != (&old.schema, &old.name));
        if moved && occupant(old) == Some(true) {
            run(&format!("DROP VIEW {}", old.qualified_name()));
        }
    }
    if let (Some(new), Some(filter)) = (&new, &new_filter) {
        create(new, filter);
    }
}

/// Where `filter`'s view reads its rows.
pub(super) fn view_source(filter_id: &str, filter: &FilterDefinition) -> ViewSource {
    let spec = &filter.specification;
    // Registers the filter's events, and its node with them.
    let filter_key = super::kinds::event_source(
        filter_id,
        &filter.node,
        &spec.event_name,
        &alloy::primitives::hex::encode_prefixed(spec.topic0()),
    );
    ViewSource {
        table: KindTable::of(spec),
        filter_key,
        node_key: super::kinds::registered_node_key(&filter.node),
        node: filter.node.clone(),
    }
}

fn create(view: &TypedView, filter: &FilterDefinition) {
    let occupant = occupant(view);
    if occupant == Some(true) {
        return;
    }
    if occupant.is_some() {
        raise(ApiError::RelationExists {
            schema: view.schema.clone(),
            name: view.name.clone(),
            hint: Some(
                "name the view with \"view\": {\"name\": …} (or \"view\": false for none)".into(),
            ),
        });
    }
    run(&view.create_sql(&view_source(&view.filter_id, filter)));
    let name = view.qualified_name();
    run(&format!(
        "COMMENT ON VIEW {name} IS {}",
        literal(&view.comment())
    ));
    run(&format!("GRANT SELECT ON {name} TO eventeum_reader"));
    leave_extension("VIEW", &name);
}
