-- eventeum 0.1.0 -> 0.2.0: roles and grants, health, metrics.
--
-- The upgrade script (ALTER EXTENSION eventeum UPDATE); a fresh install reads
-- sql/current/ instead, and e2e/test_upgrade.py checks that both give the
-- same catalog. It runs with search_path set to the extension's schema.

-- Roles ----------------------------------------------------------------------
-- Cluster-wide, so they may exist already (another database, an earlier install).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventeum_reader') THEN
        CREATE ROLE eventeum_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventeum_admin') THEN
        CREATE ROLE eventeum_admin NOLOGIN;
    END IF;
END
$$;
GRANT eventeum_reader TO eventeum_admin;

-- Counters ---------------------------------------------------------------------
-- Monotonic counters behind the metrics, kept in the same transactions as the
-- changes they count (by the worker), so that they survive restarts and never
-- double count.
CREATE TABLE counters (
    metric text NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}',
    value  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, labels)
);
COMMENT ON TABLE counters IS
  'Internal: monotonic counters behind eventeum.metrics (events stored per status, RPC calls and errors, deliveries, reorgs, delivery latency buckets).';

-- Per broadcaster: the last success and failure, for health().
CREATE TABLE broadcaster_state (
    broadcaster       text PRIMARY KEY REFERENCES broadcasters (name) ON DELETE CASCADE,
    last_delivered_at timestamptz,
    last_failed_at    timestamptz,
    last_error        text
);
COMMENT ON TABLE broadcaster_state IS
  'Per broadcaster: when a broker last acknowledged a message, when it last failed, and why (credentials scrubbed).';

-- Health -----------------------------------------------------------------------
CREATE FUNCTION health() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH worker AS (
        SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE backend_type = 'eventeum') AS running
    ), node_health AS (
        SELECT s.name,
               jsonb_build_object(
                   'status', CASE WHEN s.status = 'DOWN' THEN 'DOWN' ELSE 'UP' END,
                   'nodeStatus', s.status,
                   'latestBlock', s.latest_block,
                   'currentBlock', s.current_block,
                   'syncing', s.syncing,
                   'lastError', s.last_error) AS detail,
               s.status = 'DOWN' AS down
          FROM eventeum.node_status s
    ), pending AS (
        SELECT o.broadcaster, count(*) AS backlog, min(o.created_at) AS oldest
          FROM eventeum.outbox o
         WHERE o.delivered_at IS NULL
         GROUP BY o.broadcaster
    ), broadcaster_health AS (
        SELECT b.name,
               jsonb_build_object(
                   'status', CASE WHEN b.kind = 'group' THEN 'UP'
                                  WHEN st.last_failed_at > COALESCE(st.last_delivered_at, '-infinity') THEN 'DOWN'
                                  WHEN st.last_delivered_at IS NULL THEN 'UNKNOWN'
                                  ELSE 'UP' END,
                   'kind', b.kind,
                   'lastDelivery', st.last_delivered_at,
                   'lastError', st.last_error,
                   'backlog', COALESCE(p.backlog, 0)) AS detail,
               b.kind <> 'group' AND st.last_failed_at > COALESCE(st.last_delivered_at, '-infinity') AS down
          FROM eventeum.broadcasters b
          LEFT JOIN eventeum.broadcaster_state st ON st.broadcaster = b.name
          LEFT JOIN pending p ON p.broadcaster = b.name
    )
    SELECT jsonb_build_object(
        'status', CASE WHEN NOT w.running
                         OR EXISTS (SELECT 1 FROM node_health WHERE down)
                         OR EXISTS (SELECT 1 FROM broadcaster_health WHERE down)
                       THEN 'DOWN' ELSE 'UP' END,
        'details', jsonb_build_object(
            'worker', jsonb_build_object('status', CASE WHEN w.running THEN 'UP' ELSE 'DOWN' END),
            'nodes', COALESCE((SELECT jsonb_object_agg(name, detail) FROM node_health), '{}'),
            'broadcasters', COALESCE((SELECT jsonb_object_agg(name, detail) FROM broadcaster_health), '{}'),
            'outbox', jsonb_build_object(
                'backlog', COALESCE((SELECT sum(backlog) FROM pending), 0),
                'oldestAgeSeconds', (SELECT round(extract(epoch FROM now() - min(oldest))::numeric, 3) FROM pending)),
            'deadLetters', (SELECT count(*) FROM eventeum.dead_letters)))
      FROM worker w
$$;
COMMENT ON FUNCTION health() IS
  'Eventeum''s /monitoring/health as jsonb: {"status": "UP"|"DOWN", "details": {worker, nodes, broadcasters, outbox, deadLetters}}. DOWN when the worker is not running, a node is DOWN or a broker''s last attempt failed.';

-- Metrics ----------------------------------------------------------------------
CREATE VIEW metrics AS
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
               ('status', CASE s.status WHEN 'SUBSCRIBED' THEN 0 WHEN 'CONNECTED' THEN 1 ELSE 2 END::float8,
                          'Node status: 0 subscribed, 1 connected, 2 down.')) AS g(suffix, value, help)
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
SELECT 'eventeum_outbox_backlog', 'eventeum_outbox_backlog', 'gauge', jsonb_build_object('broadcaster', o.broadcaster),
       count(*)::float8, 'Messages waiting to be delivered, per broadcaster.'
  FROM eventeum.outbox o
 WHERE o.delivered_at IS NULL
 GROUP BY o.broadcaster
UNION ALL
SELECT 'eventeum_outbox_oldest_age_seconds', 'eventeum_outbox_oldest_age_seconds', 'gauge', '{}',
       COALESCE(extract(epoch FROM now() - min(o.created_at)), 0)::float8,
       'Age of the oldest undelivered message.'
  FROM eventeum.outbox o
 WHERE o.delivered_at IS NULL
UNION ALL
SELECT 'eventeum_dead_letters', 'eventeum_dead_letters', 'gauge', '{}', count(*)::float8,
       'Messages in dead_letters.'
  FROM eventeum.dead_letters;
COMMENT ON VIEW metrics IS
  'Every metric the worker serves at eventeum.metrics_address, one row per sample: name, family (for HELP and TYPE), type, labels, value, help. For scraping Postgres with postgres_exporter.';

CREATE FUNCTION prometheus() RETURNS text
LANGUAGE sql STABLE AS $$
    WITH samples AS (
        SELECT m.*,
               (SELECT string_agg(format('%s="%s"', l.key,
                                         replace(replace(replace(l.value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')),
                                  ',' ORDER BY l.key = 'le', l.key)
                  FROM jsonb_each_text(m.labels) AS l) AS label_text
          FROM eventeum.metrics m
    ), families AS (
        SELECT s.family,
               max(s.help) AS help,
               min(s.type) AS type,
               string_agg(s.name || COALESCE('{' || s.label_text || '}', '') || ' ' ||
                          s.value::text,
                          E'\n' ORDER BY s.name, (s.labels - 'le')::text,
                                          (CASE s.labels ->> 'le' WHEN '+Inf' THEN 'Infinity' ELSE s.labels ->> 'le' END)::float8)
                   AS lines
          FROM samples s
         GROUP BY s.family
    )
    SELECT COALESCE(string_agg(format(E'# HELP %s %s\n# TYPE %s %s\n%s\n', f.family, f.help, f.family, f.type, f.lines),
                               '' ORDER BY f.family), '')
      FROM families f
$$;
COMMENT ON FUNCTION prometheus() IS
  'The metrics view in Prometheus'' text exposition format: what the worker serves at http://<eventeum.metrics_address>/metrics.';

-- Privileges -----------------------------------------------------------------
-- PUBLIC gets nothing. Management goes through SECURITY DEFINER functions with
-- a fixed search_path; readers see events and status but never node URLs or
-- broker credentials.
REVOKE ALL ON SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventeum FROM PUBLIC;
GRANT USAGE ON SCHEMA eventeum TO eventeum_reader, eventeum_admin;

GRANT SELECT ON contract_events, undecodable_logs, blocks, transactions, node_status, backfill_status,
                node_state, recent_blocks, filter_backfill, contract_event_filters, transaction_monitors,
                config_version, metrics
   TO eventeum_reader;
-- Columns without secrets: selecting url or options is a permission error.
GRANT SELECT (name, options, created_at) ON nodes TO eventeum_reader;
GRANT SELECT (name, kind, created_at) ON broadcasters TO eventeum_reader;
-- The admin reads everything, secrets included, and changes it only through the functions.
GRANT SELECT ON ALL TABLES IN SCHEMA eventeum TO eventeum_admin;

DO $$
DECLARE
    admin_functions text[] := ARRAY['add_node', 'remove_node', 'add_filter', 'remove_filter',
        'add_transaction_monitor', 'remove_transaction_monitor', 'add_broadcaster', 'remove_broadcaster',
        'list_broadcasters', 'replay_dead_letters', 'create_consumer_group', 'publish'];
    reader_functions text[] := ARRAY['list_filters', 'list_transaction_monitors', 'poll', 'ack',
        'health', 'prometheus'];
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature, p.proname = ANY (reader_functions) AS for_readers
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'eventeum'::regnamespace
                AND p.proname = ANY (admin_functions || reader_functions)
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp',
                       f.signature);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.signature,
                       CASE WHEN f.for_readers THEN 'eventeum_reader' ELSE 'eventeum_admin' END);
    END LOOP;
END
$$;
