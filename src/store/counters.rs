//! Counters behind the metrics view and endpoint (main thread).

use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use crate::rpc::NodeCalls;
use crate::states::EventStatus;

/// The pages of the metrics endpoint, rendered by SQL.
pub fn render_pages() -> SpiResult<crate::metrics::Pages> {
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT eventeum.prometheus(), h::text, h ->> 'status' = 'UP'
                   FROM eventeum.health() h",
                Some(1),
                &[],
            )?
            .first();
        Ok(crate::metrics::Pages {
            metrics: row.get(1)?.unwrap_or_default(),
            health: row.get(2)?.unwrap_or_default(),
            healthy: row.get(3)?.unwrap_or(false),
        })
    })
}

/// Upper bounds, in seconds, of the delivery latency histogram's buckets.
const LATENCY_BUCKETS: [&str; 14] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60",
    "+Inf",
];

/// Counts delivered messages into the broadcaster's counters and its
/// cumulative latency histogram, in one statement.
pub(super) fn add_latencies(
    client: &mut SpiClient<'_>,
    broadcaster: &str,
    seconds: &[f64],
) -> SpiResult<()> {
    if seconds.is_empty() {
        return Ok(());
    }
    let (mut metrics, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for le in LATENCY_BUCKETS {
        let bound: f64 = le.parse().unwrap_or(f64::INFINITY); // "+Inf"
        metrics.push("latency_bucket");
        labels.push(json!({"broadcaster": broadcaster, "le": le}).to_string());
        values.push(seconds.iter().filter(|&&s| s <= bound).count() as f64);
    }
    let count = seconds.len() as f64;
    for (metric, value) in [
        ("delivered", count),
        ("latency_count", count),
        ("latency_sum", seconds.iter().sum()),
    ] {
        metrics.push(metric);
        labels.push(json!({"broadcaster": broadcaster}).to_string());
        values.push(value);
    }
    client.update(
        "INSERT INTO eventeum.counters AS c (metric, labels, value)
         SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(m, l, v)
         ON CONFLICT (metric, labels) DO UPDATE SET value = c.value + EXCLUDED.value",
        None,
        &[metrics.into(), labels.into(), values.into()],
    )?;
    Ok(())
}

/// Adds `by` to the counter `metric` with `labels` (see the `counters` table).
pub(super) fn add_to_counter(
    client: &mut SpiClient<'_>,
    metric: &str,
    labels: Value,
    by: f64,
) -> SpiResult<()> {
    client.update(
        "INSERT INTO eventeum.counters AS c (metric, labels, value) VALUES ($1, $2::text::jsonb, $3)
         ON CONFLICT (metric, labels) DO UPDATE SET value = c.value + EXCLUDED.value",
        None,
        &[metric.into(), labels.to_string().into(), by.into()],
    )?;
    Ok(())
}

/// Counts contract events that were stored with, or moved to, `status`.
pub(super) fn count_events(
    client: &mut SpiClient<'_>,
    node: &str,
    status: EventStatus,
    n: usize,
) -> SpiResult<()> {
    if n == 0 {
        return Ok(());
    }
    add_to_counter(
        client,
        "events",
        json!({"node": node, "status": status.as_str()}),
        n as f64,
    )
}

/// Adds the JSON-RPC calls and errors the followers made, per node.
pub fn record_call_counts(counts: &[NodeCalls]) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        for count in counts {
            let labels = json!({ "node": count.node });
            add_to_counter(client, "rpc_calls", labels.clone(), count.calls as f64)?;
            if count.errors > 0 {
                add_to_counter(client, "rpc_errors", labels.clone(), count.errors as f64)?;
            }
            if count.rate_limited > 0 {
                let value = count.rate_limited as f64;
                add_to_counter(client, "rpc_rate_limited", labels.clone(), value)?;
            }
            if count.incomplete > 0 {
                add_to_counter(client, "rpc_incomplete", labels, count.incomplete as f64)?;
            }
        }
        Ok(())
    })
}
