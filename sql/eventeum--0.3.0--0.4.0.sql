-- 0.3.0 -> 0.4.0: a node or filter is followed from the chain's state when
-- its transaction committed. Every filter live following takes over now gets
-- a filter_backfill row with its first block; a filter without a row is one
-- the follower has still to start, from the block its registration resolves to.

COMMENT ON TABLE filter_backfill IS
  'Per filter live following has taken over: from_block is its first block (startBlock, or the first block mined at or after its registration), and blocks from_block..to_block, below the block where live following took it over, are fetched for it alone.';

-- Filters 0.3.0 already follows keep following from where they are, rather
-- than being started again from their registration.
INSERT INTO filter_backfill (filter_id, node, from_block, to_block, current_block)
SELECT f.id, f.node, 0, s.latest_block, s.latest_block
  FROM contract_event_filters f
  JOIN node_state s ON s.node = f.node
 WHERE s.latest_block IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM filter_backfill b WHERE b.filter_id = f.id);

-- Nodes that refuse calls for their rate limit are RATE_LIMITED, and counted.

CREATE OR REPLACE VIEW metrics AS
WITH eventeum_labels AS (
    SELECT jsonb_build_object('application', 'Eventeum',
                              'environment', COALESCE(NULLIF(current_setting('eventeum.environment', true), ''), 'default')) AS labels
), node_gauges AS (
    -- Prometheus metric names may hold [a-zA-Z0-9_:] only.
    SELECT 'eventeum_' || regexp_replace(s.name, '[^a-zA-Z0-9_]', '_', 'g') || '_' || g.suffix AS family, g.value, g.help
      FROM eventeum.node_status s,
           LATERAL (VALUES
               ('syncing', s.syncing::int::float8, 'Whether the node is more than syncingThreshold blocks behind its head (1) or not (0).'),
               ('latestBlock', s.latest_block::float8, 'The last block processed.'),
               ('currentBlock', s.current_block::float8, 'The node''s head.'),
               ('status', CASE s.status WHEN 'SUBSCRIBED' THEN 0 WHEN 'CONNECTED' THEN 1
                                        WHEN 'RATE_LIMITED' THEN 3 ELSE 2 END::float8,
                          'Node status: 0 subscribed, 1 connected, 2 down, 3 rate limited.')) AS g(suffix, value, help)
)
SELECT g.family AS name, g.family, 'gauge' AS type, l.labels, g.value, g.help
  FROM node_gauges g, eventeum_labels l
 WHERE g.value IS NOT NULL
UNION ALL
SELECT m.name, m.family, m.type, c.labels, c.value, m.help
  FROM eventeum.counters c
  JOIN (VALUES
      ('events', 'eventeum_events_total', 'eventeum_events_total', 'counter', 'Contract events stored or re-stated, per node and the status they took.'),
      ('rpc_calls', 'eventeum_rpc_calls_total', 'eventeum_rpc_calls_total', 'counter', 'JSON-RPC calls made to a node.'),
      ('rpc_errors', 'eventeum_rpc_errors_total', 'eventeum_rpc_errors_total', 'counter', 'JSON-RPC calls to a node that failed or timed out.'),
      ('rpc_rate_limited', 'eventeum_rpc_rate_limited_total', 'eventeum_rpc_rate_limited_total', 'counter', 'JSON-RPC calls a node refused for its rate limit (each retried after a wait).'),
      ('rpc_incomplete', 'eventeum_rpc_incomplete_answers_total', 'eventeum_rpc_incomplete_answers_total', 'counter', 'eth_getLogs answers missing logs that the block''s logsBloom and a query by block hash showed were there (a lagging backend); each range was fetched again.'),
      ('delivered', 'eventeum_messages_delivered_total', 'eventeum_messages_delivered_total', 'counter', 'Messages a broker acknowledged, per broadcaster.'),
      ('failed', 'eventeum_messages_failed_total', 'eventeum_messages_failed_total', 'counter', 'Delivery attempts that failed, per broadcaster.'),
      ('dead_lettered', 'eventeum_messages_dead_lettered_total', 'eventeum_messages_dead_lettered_total', 'counter', 'Messages moved to dead_letters, per broadcaster.'),
      ('reorgs', 'eventeum_reorgs_total', 'eventeum_reorgs_total', 'counter', 'Forks detected and rewound, per node.'),
      ('latency_bucket', 'eventeum_delivery_latency_seconds_bucket', 'eventeum_delivery_latency_seconds', 'histogram',
       'Seconds from a message''s commit (with the block it reports) to the broker''s acknowledgement.'),
      ('latency_sum', 'eventeum_delivery_latency_seconds_sum', 'eventeum_delivery_latency_seconds', 'histogram', NULL),
      ('latency_count', 'eventeum_delivery_latency_seconds_count', 'eventeum_delivery_latency_seconds', 'histogram', NULL)
  ) AS m(metric, name, family, type, help) ON m.metric = c.metric
UNION ALL
SELECT 'eventeum_outbox_backlog', 'eventeum_outbox_backlog', 'gauge', jsonb_build_object('broadcaster', q.broadcaster),
       count(*)::float8, 'Messages waiting to be delivered, per broadcaster.'
  FROM eventeum.outbox_pending q
 GROUP BY q.broadcaster
UNION ALL
SELECT 'eventeum_outbox_oldest_age_seconds', 'eventeum_outbox_oldest_age_seconds', 'gauge', '{}',
       COALESCE(extract(epoch FROM now() - min(q.created_at)), 0)::float8,
       'Age of the oldest undelivered message.'
  FROM eventeum.outbox_pending q
UNION ALL
SELECT 'eventeum_dead_letters', 'eventeum_dead_letters', 'gauge', '{}', count(*)::float8,
       'Messages in dead_letters.'
  FROM eventeum.dead_letters;

-- A node may have several urls: the chain they serve and each one's health.
ALTER TABLE node_state ADD COLUMN chain_id bigint, ADD COLUMN endpoints jsonb;
COMMENT ON COLUMN node_state.chain_id IS 'The chain the node''s urls serve (eth_chainId), learned from the first that answered; a url serving another is not used.';
COMMENT ON COLUMN node_state.endpoints IS 'Each of the node''s urls (redacted): whether it serves now, whether it is healthy, and its last error.';
CREATE OR REPLACE VIEW node_status AS
SELECT n.name,
       COALESCE(s.status, 'DOWN') AS status,
       s.latest_block,
       s.current_block,
       COALESCE(s.current_block - s.latest_block > (n.options ->> 'syncingThreshold')::bigint, false) AS syncing,
       CASE WHEN s.node IS NULL THEN 'not reached yet' ELSE s.last_error END AS last_error,
       s.last_reorg,
       s.last_reorg_at,
       s.updated_at,
       s.chain_id,
       (SELECT e ->> 'url' FROM jsonb_array_elements(s.endpoints) AS e
         WHERE (e ->> 'serving')::boolean) AS url,
       s.endpoints
  FROM nodes n
  LEFT JOIN node_state s ON s.node = n.name;
COMMENT ON VIEW node_status IS
  'One row per node: status (SUBSCRIBED, CONNECTED, RATE_LIMITED or DOWN), latest_block (processed), current_block (the node''s head), syncing (head minus processed above syncingThreshold), last_error, the last fork seen (last_reorg), the chain served (chain_id), the url serving now (url, redacted) and the health of each of its urls (endpoints).';
