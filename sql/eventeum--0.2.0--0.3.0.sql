-- eventeum 0.2.0 -> 0.3.0: the outbox's pending rows get their own table.
--
-- Marking a row delivered used to be a full update: delivered_at was in the
-- predicate of the index of pending rows, so every delivered message wrote a
-- new ~1 kB tuple and new entries in both of the outbox's indexes, and that
-- was most of what the relay cost. Now the pending rows are listed in the
-- narrow table outbox_pending; no index of outbox names delivered_at, and
-- outbox pages keep half their room, so marking a row delivered is a HOT
-- update in place, and leaving the queue is a delete of a narrow row.
--
-- Everything that writes the outbox writes outbox_pending in the same
-- statement (publish, replay_dead_letters, the worker); everything that
-- delivers, dead-letters or drops a message deletes its row there.
--
-- The upgrade script (ALTER EXTENSION eventeum UPDATE); a fresh install reads
-- sql/current/ instead, and e2e/test_upgrade.py checks that both give the
-- same catalog. It runs with search_path set to the extension's schema.

-- The queue --------------------------------------------------------------------
DROP INDEX outbox_pending;
CREATE TABLE outbox_pending (
    broadcaster text NOT NULL,
    id          bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (broadcaster, id)
);
COMMENT ON TABLE outbox_pending IS
  'Internal: the outbox rows still to be delivered (or acked, for consumer groups), by broadcaster in outbox order. Write outbox rows through publish(); a row inserted straight into eventeum.outbox is not sent.';
INSERT INTO outbox_pending (broadcaster, id, created_at)
SELECT broadcaster, id, created_at FROM outbox WHERE delivered_at IS NULL;
-- Room on every page for each row's delivered version (rows are about 1 kB).
ALTER TABLE outbox SET (fillfactor = 50);
SELECT pg_catalog.pg_extension_config_dump('outbox_pending', '');
REVOKE ALL ON outbox_pending FROM PUBLIC;
GRANT SELECT ON outbox_pending TO eventeum_admin;

-- Writers and readers of the queue ----------------------------------------------
CREATE OR REPLACE FUNCTION publish(destination text, key text, payload jsonb, broadcaster text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
DECLARE
    seq bigint := nextval('eventeum.app_message_seq');
    targets int;
BEGIN
    IF destination IS NULL OR btrim(destination) = '' THEN
        RAISE EXCEPTION 'destination must not be empty' USING ERRCODE = '22023';
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be null' USING ERRCODE = '22023';
    END IF;
    IF publish.broadcaster IS NOT NULL AND NOT EXISTS (SELECT 1 FROM eventeum.broadcasters b WHERE b.name = publish.broadcaster) THEN
        RAISE EXCEPTION 'broadcaster "%" does not exist', publish.broadcaster USING ERRCODE = '42704';
    END IF;
    WITH added AS (
        INSERT INTO eventeum.outbox (message_id, type, broadcaster, destination, key, payload)
        SELECT 'app-' || seq, 'APP', b.name, publish.destination, publish.key, publish.payload
          FROM eventeum.broadcasters b
         WHERE (publish.broadcaster IS NULL OR b.name = publish.broadcaster)
           AND (b.kind <> 'group' OR eventeum.destination(b.kind, b.options, 'APP', NULL) IS NOT NULL)
        RETURNING outbox.broadcaster, outbox.id, outbox.created_at)
    INSERT INTO eventeum.outbox_pending (broadcaster, id, created_at)
    SELECT a.broadcaster, a.id, a.created_at FROM added a;
    GET DIAGNOSTICS targets = ROW_COUNT;
    IF targets > 0 THEN
        PERFORM eventeum.wake_relay_at_commit();
    END IF;
    RETURN seq;
END
$$;

CREATE OR REPLACE FUNCTION poll("group" text, max int DEFAULT 100, visibility_timeout interval DEFAULT '30 seconds')
RETURNS TABLE (message_id text, type text, key text, payload jsonb, attempts int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eventeum.broadcasters b WHERE b.name = poll."group" AND b.kind = 'group') THEN
        RAISE EXCEPTION 'consumer group "%" does not exist', poll."group" USING ERRCODE = '42704';
    END IF;
    RETURN QUERY
    WITH taken AS (
        UPDATE eventeum.outbox o
           SET next_attempt_at = now() + visibility_timeout, attempts = o.attempts + 1
         WHERE o.id IN (SELECT p.id FROM eventeum.outbox_pending q JOIN eventeum.outbox p ON p.id = q.id
                         WHERE q.broadcaster = poll."group" AND p.next_attempt_at <= now()
                         ORDER BY q.id LIMIT max FOR UPDATE OF p SKIP LOCKED)
        RETURNING o.id, o.message_id, o.type, o.key, o.payload, o.attempts)
    SELECT t.message_id, t.type, t.key, t.payload, t.attempts FROM taken t ORDER BY t.id;
END
$$;

CREATE OR REPLACE FUNCTION ack("group" text, message_ids text[]) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
    WITH done AS (
        UPDATE eventeum.outbox o SET delivered_at = now()
         WHERE o.broadcaster = ack."group" AND o.message_id = ANY (message_ids) AND o.delivered_at IS NULL
        RETURNING o.id
    ), dequeued AS (
        DELETE FROM eventeum.outbox_pending q USING done
         WHERE q.broadcaster = ack."group" AND q.id = done.id
    )
    SELECT count(*)::int FROM done
$$;

-- Health and metrics count the queue instead of scanning the outbox.
CREATE OR REPLACE FUNCTION health() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
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
        SELECT q.broadcaster, count(*) AS backlog, min(q.created_at) AS oldest
          FROM eventeum.outbox_pending q
         GROUP BY q.broadcaster
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
