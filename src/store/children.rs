//! Factories' children in address sets (main thread): added in the
//! transaction of the step that stores their factory event, and taken out
//! again in the transaction of the fork that invalidates it.

use std::collections::HashSet;

use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};

use crate::config::{Child, ConfigSnapshot, NodeConfig};
use crate::matcher::stored_address;
use crate::message::ContractEventRecord;

/// Adds the children that are not members yet, each from its factory
/// event's block. Nothing is written (and `config_version` is not bumped)
/// when every child is a member already, as on a replay.
pub(super) fn add_children(
    client: &mut SpiClient<'_>,
    node: &str,
    children: &[Child],
) -> SpiResult<()> {
    if children.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Child) -> String| children.iter().map(f).collect::<Vec<_>>();
    let sets = column(|c| c.set.clone());
    let addresses = column(|c| stored_address(&c.address));
    let blocks: Vec<i64> = children.iter().map(|c| c.block_number as i64).collect();
    let filters = column(|c| c.filter_id.clone());
    let events = column(|c| c.event_id.clone());
    // Only new members, in a set that still exists; the first event of a
    // child wins when it appears twice.
    let new = "SELECT DISTINCT ON (c.s, c.a) c.s, c.a, c.b, c.f, c.e
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS c(s, a, b, f, e)
                 JOIN eventeum.address_sets s ON s.name = c.s
                WHERE NOT EXISTS (SELECT 1 FROM eventeum.address_set_members m
                                   WHERE m.set_name = c.s AND m.address = c.a)
                ORDER BY c.s, c.a, c.b";
    let args = || {
        [
            sets.clone().into(),
            addresses.clone().into(),
            blocks.clone().into(),
            filters.clone().into(),
            events.clone().into(),
        ]
    };
    let any_new = client
        .select(&format!("SELECT EXISTS ({new})"), None, &args())?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if any_new {
        let [a1, a2, a3, a4, a5] = args();
        let args = [a1, a2, a3, a4, a5, node.into()];
        client.update(
            &format!(
                "INSERT INTO eventeum.address_set_members
                        (set_name, address, start_block, source_filter, source_event, source_node)
                 SELECT s, a, b, f, e, $6 FROM ({new}) AS n(s, a, b, f, e)
                 ON CONFLICT (set_name, address) DO NOTHING"
            ),
            None,
            &args,
        )?;
    }
    Ok(())
}

/// Takes out of their sets the children whose factory event a fork just
/// invalidated (`rows`); their events in the dropped blocks are invalidated
/// with the rest of those blocks.
pub(super) fn drop_children(
    client: &mut SpiClient<'_>,
    node: &NodeConfig,
    rows: &[ContractEventRecord],
) -> SpiResult<()> {
    let (filters, events): (Vec<String>, Vec<String>) = rows
        .iter()
        .filter(|r| {
            node.filters
                .iter()
                .any(|f| f.id == r.filter_id && !f.feeds.is_empty())
        })
        .map(|r| (r.filter_id.clone(), r.id.clone()))
        .unzip();
    if filters.is_empty() {
        return Ok(());
    }
    client.update(
        "DELETE FROM eventeum.address_set_members m
          USING unnest($2::text[], $3::text[]) AS d(f, e)
          WHERE m.source_node = $1 AND m.source_filter = d.f AND m.source_event = d.e",
        None,
        &[node.name.as_str().into(), filters.into(), events.into()],
    )?;
    Ok(())
}

/// Which factory feeds a set: its node, filter and set, and the address parameter.
pub type FeedKey = (String, String, String, u32);

/// Adds the children of factory events stored before the factory's feed
/// was configured (the filter naming the factory came after it, or the
/// worker restarted): once per feed this worker has not seen yet. Run after
/// a snapshot is loaded and before any step built from it is applied, so
/// every creation event is either stored already (and found here) or
/// stored by a step that carries its children.
pub fn catch_up_children(snapshot: &ConfigSnapshot, seen: &mut HashSet<FeedKey>) -> SpiResult<()> {
    for node in snapshot.nodes.values() {
        for filter in node.filters.iter().filter(|f| !f.feeds.is_empty()) {
            let specification = &filter.definition.specification;
            for feed in &filter.feeds {
                let key = (
                    node.name.clone(),
                    filter.id.clone(),
                    feed.set.clone(),
                    feed.position,
                );
                if seen.contains(&key) {
                    continue;
                }
                let (column, index) = match specification.locate(feed.position) {
                    Some((true, i)) => ("indexed_parameters", i),
                    Some((false, i)) => ("non_indexed_parameters", i),
                    None => continue,
                };
                let stored = format!(
                    "SELECT DISTINCT ON (a) a, e.block_number, e.id
                       FROM eventeum.contract_events e,
                            LATERAL (SELECT lower(e.{column} -> {index} ->> 'value') AS a) v
                      WHERE e.filter_id = $1 AND e.node = $2 AND e.status <> 'INVALIDATED'
                        AND v.a ~ '^0x[0-9a-f]{{40}}$'
                        AND NOT EXISTS (SELECT 1 FROM eventeum.address_set_members m
                                         WHERE m.set_name = $3 AND m.address = v.a)
                        AND EXISTS (SELECT 1 FROM eventeum.address_sets s WHERE s.name = $3)
                      ORDER BY a, e.block_number"
                );
                let args = || {
                    [
                        filter.id.as_str().into(),
                        node.name.as_str().into(),
                        feed.set.as_str().into(),
                    ]
                };
                Spi::connect_mut(|client| {
                    let any = client
                        .select(&format!("SELECT EXISTS ({stored})"), None, &args())?
                        .first()
                        .get_one::<bool>()?
                        .unwrap_or(false);
                    if any {
                        client.update(
                            &format!(
                                "INSERT INTO eventeum.address_set_members
                                        (set_name, address, start_block, source_filter, source_event, source_node)
                                 SELECT $3, a, block_number, $1, id, $2 FROM ({stored}) AS n
                                 ON CONFLICT (set_name, address) DO NOTHING"
                            ),
                            None,
                            &args(),
                        )?;
                    }
                    Ok::<_, pgrx::spi::SpiError>(())
                })?;
                seen.insert(key);
            }
        }
    }
    Ok(())
}
