//! The configuration snapshot the followers work from, read in one transaction (main thread).

use std::collections::BTreeMap;
use std::sync::Arc;

use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::Value;

use alloy::primitives::Address;

use crate::broadcast::BroadcasterKind;
use crate::config::{
    Backfill, BackfillOf, BroadcasterConfig, ConfigSnapshot, Feed, FilterConfig, MonitorConfig,
    NodeConfig,
};
use crate::matcher::{AddressSet, AddressSets, Member};
use crate::monitor::TransactionMonitor;
use crate::node::NodeOptions;
use crate::spec::FilterDefinition;

/// The installed version of the extension, or None when it is not installed.
pub fn installed_version() -> SpiResult<Option<String>> {
    Spi::get_one(
        "SELECT (SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'eventeum')",
    )
}

/// `eventeum.config_version`, or None when the extension is not installed.
pub fn config_version() -> SpiResult<Option<i64>> {
    let installed =
        Spi::get_one::<bool>("SELECT to_regclass('eventeum.config_version') IS NOT NULL")?
            .unwrap_or(false);
    if !installed {
        return Ok(None);
    }
    Spi::get_one::<i64>("SELECT version FROM eventeum.config_version")
}

/// Reads nodes, checkpoints and filters into one snapshot.
pub fn load_snapshot(bytes_to_ascii: bool) -> SpiResult<ConfigSnapshot> {
    Spi::connect(|client| {
        let version = client
            .select("SELECT version FROM eventeum.config_version", None, &[])?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0);
        let mut nodes = BTreeMap::new();
        let rows = client.select(
            "SELECT n.name, n.url, n.options::text, s.latest_block,
                    (extract(epoch FROM n.created_at) * 1000000)::int8, s.chain_id
               FROM eventeum.nodes n LEFT JOIN eventeum.node_state s ON s.node = n.name",
            None,
            &[],
        )?;
        for row in rows {
            let name: String = row.get(1)?.unwrap_or_default();
            let options_text: String = row.get(3)?.unwrap_or_default();
            let options = serde_json::from_str::<Value>(&options_text)
                .ok()
                .and_then(|v| NodeOptions::from_json(&v).ok());
            let Some(options) = options else {
                pgrx::warning!("eventeum: node \"{name}\" has invalid options; not following it");
                continue;
            };
            let node = NodeConfig {
                name: name.clone(),
                url: row.get(2)?.unwrap_or_default(),
                options,
                added_at: row.get::<i64>(5)?.unwrap_or_default(),
                checkpoint: row.get::<i64>(4)?.and_then(|b| u64::try_from(b).ok()),
                chain_id: row.get::<i64>(6)?.and_then(|c| u64::try_from(c).ok()),
                recent_blocks: BTreeMap::new(),
                filters: vec![],
                monitors: vec![],
                member_backfills: BTreeMap::new(),
            };
            nodes.insert(name, node);
        }
        let rows = client.select(
            "SELECT node, number, hash FROM eventeum.recent_blocks",
            None,
            &[],
        )?;
        for row in rows {
            let node: String = row.get(1)?.unwrap_or_default();
            let number: i64 = row.get(2)?.unwrap_or_default();
            let hash: String = row.get(3)?.unwrap_or_default();
            if let (Some(node), Ok(hash)) = (nodes.get_mut(&node), hash.parse()) {
                node.recent_blocks.insert(number as u64, hash);
            }
        }
        let mut backfills = std::collections::HashMap::new();
        let rows = client.select(
            "SELECT filter_id, from_block, to_block, current_block FROM eventeum.filter_backfill",
            None,
            &[],
        )?;
        for row in rows {
            let id: String = row.get(1)?.unwrap_or_default();
            let [from, to, current] =
                [2, 3, 4].map(|i| row.get::<i64>(i).ok().flatten().unwrap_or(0) as u64);
            backfills.insert(id, Backfill { from, to, current });
        }
        let rows = client.select(
            "SELECT node, set_name, address, from_block, to_block, current_block FROM eventeum.member_backfill",
            None,
            &[],
        )?;
        for row in rows {
            let node: String = row.get(1)?.unwrap_or_default();
            let set: String = row.get(2)?.unwrap_or_default();
            let address: String = row.get(3)?.unwrap_or_default();
            let [from, to, current] =
                [4, 5, 6].map(|i| row.get::<i64>(i).ok().flatten().unwrap_or(0) as u64);
            if let (Some(node), Ok(address)) = (nodes.get_mut(&node), address.parse()) {
                node.member_backfills.insert(
                    BackfillOf::Member { set, address },
                    Backfill { from, to, current },
                );
            }
        }
        let sets = address_sets(client)?;
        let storage = super::kinds::StorageKeys::load(client, bytes_to_ascii)?;
        let mut filters: BTreeMap<String, Vec<FilterConfig>> = BTreeMap::new();
        for (id, added_at, definition) in definitions(
            client,
            "contract_event_filters",
            "filter",
            FilterDefinition::from_json,
        )? {
            if nodes.contains_key(&definition.node) {
                let backfill = backfills.get(&id).copied();
                let mut filter = FilterConfig::new(id, definition, added_at, backfill, &sets);
                filter.storage = storage.of(&filter);
                if filter.storage.is_none() {
                    pgrx::warning!(
                        "eventeum: filter \"{}\" has no key in eventeum.event_sources; its events are not stored",
                        filter.id
                    );
                }
                filters
                    .entry(filter.definition.node.clone())
                    .or_default()
                    .push(filter);
            }
        }
        for (name, mut filters) in filters {
            connect_factories(&mut filters);
            if let Some(node) = nodes.get_mut(&name) {
                node.filters = filters.into_iter().map(Arc::new).collect();
            }
        }
        for (id, _, monitor) in definitions(
            client,
            "transaction_monitors",
            "transaction monitor",
            TransactionMonitor::from_json,
        )? {
            if let Some(node) = nodes.get_mut(&monitor.node) {
                node.monitors.push(Arc::new(MonitorConfig { id, monitor }));
            }
        }
        let mut broadcasters = Vec::new();
        let rows = client.select(
            "SELECT name, kind, options::text FROM eventeum.broadcasters WHERE kind <> 'group' ORDER BY name",
            None,
            &[],
        )?;
        for row in rows {
            let name: String = row.get(1)?.unwrap_or_default();
            let kind: String = row.get(2)?.unwrap_or_default();
            let options: Value = serde_json::from_str(&row.get::<String>(3)?.unwrap_or_default())
                .unwrap_or_default();
            if let Ok(kind) = BroadcasterKind::parse(&kind) {
                broadcasters.push(BroadcasterConfig {
                    name,
                    kind,
                    options,
                });
            }
        }
        let outbox_readers = super::emit::outbox_readers(client)?;
        Ok(ConfigSnapshot {
            version,
            bytes_to_ascii,
            nodes,
            broadcasters,
            outbox_readers,
            kind_tables: storage.tables,
        })
    })
}

/// Gives each factory's filter the sets its events feed: those of the
/// filters on the same node that name it as their `factory`.
fn connect_factories(filters: &mut [FilterConfig]) {
    let feeds: Vec<(String, Feed)> = filters
        .iter()
        .filter_map(|child| {
            let factory = child.definition.factory.as_ref()?;
            let set = child.definition.emitters.set()?;
            let Some(parent) = filters.iter().find(|f| f.id == factory.filter) else {
                pgrx::warning!(
                    "eventeum: filter \"{}\" names factory filter \"{}\", which is not on its node; no children are added",
                    child.id,
                    factory.filter
                );
                return None;
            };
            match factory.position_in(&parent.definition.specification) {
                Ok(position) => Some((
                    parent.id.clone(),
                    Feed {
                        set: set.to_string(),
                        position,
                    },
                )),
                Err(e) => {
                    pgrx::warning!("eventeum: filter \"{}\": {e}", child.id);
                    None
                }
            }
        })
        .collect();
    for (parent, feed) in feeds {
        if let Some(parent) = filters.iter_mut().find(|f| f.id == parent) {
            if !parent.feeds.contains(&feed) {
                parent.feeds.push(feed);
            }
        }
    }
}

/// Every address set with its members. A member whose address does not
/// parse (written around the table's check) is skipped with a WARNING.
fn address_sets(client: &SpiClient<'_>) -> SpiResult<AddressSets> {
    let mut sets: BTreeMap<String, AddressSet> = BTreeMap::new();
    for row in client.select("SELECT name FROM eventeum.address_sets", None, &[])? {
        let name: String = row.get(1)?.unwrap_or_default();
        sets.insert(
            name.clone(),
            AddressSet {
                name,
                members: Default::default(),
            },
        );
    }
    let rows = client.select(
        "SELECT set_name, address, start_block, (extract(epoch FROM added_at) * 1000000)::int8
           FROM eventeum.address_set_members",
        None,
        &[],
    )?;
    for row in rows {
        let set: String = row.get(1)?.unwrap_or_default();
        let address: String = row.get(2)?.unwrap_or_default();
        let member = Member {
            start_block: row.get::<i64>(3)?.and_then(|b| u64::try_from(b).ok()),
            added_at: row.get::<i64>(4)?.unwrap_or_default(),
        };
        match (sets.get_mut(&set), address.parse::<Address>()) {
            (Some(set), Ok(address)) => {
                set.members.insert(address, member);
            }
            (_, Err(e)) => {
                pgrx::warning!(
                    "eventeum: member \"{address}\" of address set \"{set}\" is skipped: {e}"
                )
            }
            (None, Ok(_)) => {}
        }
    }
    Ok(sets
        .into_iter()
        .map(|(name, set)| (name, Arc::new(set)))
        .collect())
}

/// The `definition` column of a configuration table, parsed; a definition
/// that no longer parses is skipped with a WARNING rather than stopping the worker.
pub(super) fn definitions<T>(
    client: &SpiClient<'_>,
    table: &str,
    what: &str,
    parse: fn(&Value) -> crate::error::ApiResult<T>,
) -> SpiResult<Vec<(String, i64, T)>> {
    let rows = client.select(
        &format!(
            "SELECT id, definition::text, (extract(epoch FROM created_at) * 1000000)::int8
               FROM eventeum.{table} ORDER BY created_at, id"
        ),
        None,
        &[],
    )?;
    let mut parsed = Vec::new();
    for row in rows {
        let id: String = row.get(1)?.unwrap_or_default();
        let text: String = row.get(2)?.unwrap_or_default();
        let added_at: i64 = row.get(3)?.unwrap_or_default();
        let definition = serde_json::from_str::<Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| parse(&v).map_err(|e| e.to_string()));
        match definition {
            Ok(definition) => parsed.push((id, added_at, definition)),
            Err(e) => pgrx::warning!("eventeum: {what} \"{id}\" is invalid and is skipped: {e}"),
        }
    }
    Ok(parsed)
}
