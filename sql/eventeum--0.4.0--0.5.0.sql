-- 0.4.0 -> 0.5.0: least privilege.
-- - Broker options are named and typed; librdkafka properties are no longer
--   passed through. Those with a named option are moved to it; any other
--   leaves the broadcaster unusable (its lane says why) until it is added again.
-- - The API refuses to configure a database the worker does not serve.
-- - Consumer groups are granted to roles; readers no longer poll or ack.

-- The functions written in Rust that the SQL below calls.
CREATE FUNCTION "require_served_database"() RETURNS void
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'require_served_database_sql_wrapper';
CREATE FUNCTION "require_consumer"(
	"group" TEXT /* & str */
) RETURNS void
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'require_consumer_wrapper';
COMMENT ON FUNCTION require_served_database() IS
  'Internal: raises 55000 unless the worker serves this database (eventeum.database).';
COMMENT ON FUNCTION require_consumer(text) IS
  'Internal: raises 42501 unless the calling role may poll and ack the consumer group.';

-- Messages are stored as the bytes brokers receive (compact, Eventeum's
-- field order): jsonb reorders and respaces them.
ALTER TABLE outbox ALTER COLUMN payload TYPE text USING payload::text;
ALTER TABLE dead_letters ALTER COLUMN payload TYPE text USING payload::text;

CREATE OR REPLACE FUNCTION publish(destination text, key text, payload jsonb, broadcaster text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
DECLARE
    seq bigint := nextval('eventeum.app_message_seq');
    targets int;
BEGIN
    PERFORM eventeum.require_served_database();
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
        SELECT 'app-' || seq, 'APP', b.name, publish.destination, publish.key, publish.payload::text
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

CREATE OR REPLACE FUNCTION create_consumer_group(name text, types text[] DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventeum.require_served_database();
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'consumer group name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF types IS NOT NULL AND NOT types <@ ARRAY['CONTRACT_EVENT', 'TRANSACTION', 'BLOCK', 'APP'] THEN
        RAISE EXCEPTION 'unknown message type in %', types USING ERRCODE = '22023',
            HINT = 'types are CONTRACT_EVENT, TRANSACTION, BLOCK and APP';
    END IF;
    IF EXISTS (SELECT 1 FROM eventeum.broadcasters b WHERE b.name = create_consumer_group.name) THEN
        RAISE EXCEPTION 'broadcaster or consumer group "%" already exists', name USING ERRCODE = '23505';
    END IF;
    INSERT INTO eventeum.broadcasters (name, kind, options)
    VALUES (name, 'group', jsonb_build_object('types', to_jsonb(types)));
    RETURN name;
END
$$;
COMMENT ON FUNCTION create_consumer_group(text, text[]) IS
  'Creates a consumer group: it receives every message (of the given types) from now on, once; workers share it with poll and ack. Grant it to the roles that consume it with grant_consumer_group.';

-- Which roles may poll and ack which consumer group, besides eventeum_admin.
-- Role names, not oids, so that a dump restores into another cluster.
CREATE TABLE consumer_group_grants (
    group_name text NOT NULL REFERENCES broadcasters (name) ON DELETE CASCADE,
    role_name  text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, role_name)
);
COMMENT ON TABLE consumer_group_grants IS
  'Roles (and their members) that may poll and ack a consumer group; eventeum_admin may consume every group. Change with grant_consumer_group and revoke_consumer_group.';

CREATE FUNCTION grant_consumer_group("group" text, role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM eventeum.require_served_database();
    IF NOT EXISTS (SELECT 1 FROM eventeum.broadcasters b WHERE b.name = grant_consumer_group."group" AND b.kind = 'group') THEN
        RAISE EXCEPTION 'consumer group "%" does not exist', grant_consumer_group."group" USING ERRCODE = '42704';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = grant_consumer_group.role) THEN
        RAISE EXCEPTION 'role "%" does not exist', grant_consumer_group.role USING ERRCODE = '42704';
    END IF;
    INSERT INTO eventeum.consumer_group_grants (group_name, role_name)
    VALUES (grant_consumer_group."group", grant_consumer_group.role)
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION grant_consumer_group(text, text) IS
  'Lets a role (and its members) poll and ack one consumer group. The role also needs eventeum_consumer, which may call poll and ack at all.';

CREATE FUNCTION revoke_consumer_group("group" text, role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eventeum.broadcasters b WHERE b.name = revoke_consumer_group."group" AND b.kind = 'group') THEN
        RAISE EXCEPTION 'consumer group "%" does not exist', revoke_consumer_group."group" USING ERRCODE = '42704';
    END IF;
    DELETE FROM eventeum.consumer_group_grants g
     WHERE g.group_name = revoke_consumer_group."group" AND g.role_name = revoke_consumer_group.role;
END
$$;
COMMENT ON FUNCTION revoke_consumer_group(text, text) IS
  'Takes back grant_consumer_group: the role may no longer poll or ack the group.';

CREATE OR REPLACE FUNCTION poll("group" text, max int DEFAULT 100, visibility_timeout interval DEFAULT '30 seconds')
RETURNS TABLE (message_id text, type text, key text, payload jsonb, attempts int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
BEGIN
    PERFORM eventeum.require_consumer(poll."group");
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
    SELECT t.message_id, t.type, t.key, t.payload::jsonb, t.attempts FROM taken t ORDER BY t.id;
END
$$;
COMMENT ON FUNCTION poll(text, int, interval) IS
  'Takes up to max messages of a consumer group (granted to the caller, or any group for eventeum_admin). Pollers of one group compete: no message goes to two at once. A message not acked within visibility_timeout is given out again.';

CREATE OR REPLACE FUNCTION ack("group" text, message_ids text[]) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp AS $$
DECLARE
    acked int;
BEGIN
    PERFORM eventeum.require_consumer(ack."group");
    WITH done AS (
        UPDATE eventeum.outbox o SET delivered_at = now()
         WHERE o.broadcaster = ack."group" AND o.message_id = ANY (message_ids) AND o.delivered_at IS NULL
        RETURNING o.id
    ), dequeued AS (
        DELETE FROM eventeum.outbox_pending q USING done
         WHERE q.broadcaster = ack."group" AND q.id = done.id
    )
    SELECT count(*)::int INTO acked FROM done;
    RETURN acked;
END
$$;
COMMENT ON FUNCTION ack(text, text[]) IS 'Marks messages of a consumer group (granted to the caller) as done; returns how many were pending.';

SELECT pg_catalog.pg_extension_config_dump('consumer_group_grants', '');

-- Kafka options: librdkafka properties with a named option move to it.
DO $$
DECLARE
    b record;
    named constant jsonb := '{"compression.type": "compression", "compression.codec": "compression",
        "linger.ms": "lingerMs", "queue.buffering.max.ms": "lingerMs", "batch.size": "batchSize",
        "message.max.bytes": "messageMaxBytes", "client.id": "clientId"}';
    numeric_options constant text[] := ARRAY['lingerMs', 'batchSize', 'messageMaxBytes'];
    property text;
    value jsonb;
    merged jsonb;
    left_over text[];
BEGIN
    FOR b IN SELECT x.name, x.options FROM eventeum.broadcasters x WHERE x.kind = 'kafka' AND x.options ? 'librdkafka' LOOP
        merged := b.options - 'librdkafka';
        left_over := ARRAY[]::text[];
        FOR property, value IN SELECT * FROM jsonb_each(b.options -> 'librdkafka') LOOP
            IF named ? property THEN
                merged := merged || jsonb_build_object(named ->> property,
                    CASE WHEN named ->> property = ANY (numeric_options) THEN to_jsonb((value #>> '{}')::bigint)
                         ELSE to_jsonb(value #>> '{}') END);
            ELSE
                left_over := left_over || property;
            END IF;
        END LOOP;
        IF cardinality(left_over) > 0 THEN
            -- Kept as they are, so nothing is lost; the relay refuses to use them.
            merged := merged || jsonb_build_object('librdkafka', b.options -> 'librdkafka');
            RAISE WARNING 'kafka broadcaster "%" sets librdkafka properties that are no longer passed through: %', b.name, left_over
                USING HINT = 'its messages wait until it is removed and added again with named options (see the README)';
        END IF;
        UPDATE eventeum.broadcasters SET options = merged WHERE name = b.name;
    END LOOP;
END
$$;

-- Roles and privileges.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventeum_consumer') THEN
        CREATE ROLE eventeum_consumer NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA eventeum TO eventeum_consumer;
REVOKE ALL ON FUNCTION require_served_database(), require_consumer(text), grant_consumer_group(text, text),
    revoke_consumer_group(text, text) FROM PUBLIC;
REVOKE ALL ON TABLE consumer_group_grants FROM PUBLIC;
GRANT SELECT ON consumer_group_grants TO eventeum_admin;
REVOKE EXECUTE ON FUNCTION poll(text, int, interval), ack(text, text[]) FROM eventeum_reader;
GRANT EXECUTE ON FUNCTION poll(text, int, interval), ack(text, text[]) TO eventeum_consumer, eventeum_admin;
ALTER FUNCTION grant_consumer_group(text, text) SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;
ALTER FUNCTION revoke_consumer_group(text, text) SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;
GRANT EXECUTE ON FUNCTION grant_consumer_group(text, text), revoke_consumer_group(text, text) TO eventeum_admin;
-- CREATE OR REPLACE reset what privileges.sql set on a fresh install.
ALTER FUNCTION create_consumer_group(text, text[]) SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;

-- TRANSACTION messages carry the block's timestamp and the call data, as Eventeum's do.
ALTER TABLE transaction_states ADD COLUMN input text, ADD COLUMN block_timestamp bigint;
CREATE OR REPLACE VIEW transactions AS
SELECT monitor_id, node, hash, from_address, to_address, contract_address, value, nonce, block_number,
       block_hash, transaction_index, status, revert_reason, created_at, updated_at, input, block_timestamp
  FROM transaction_states
 WHERE reported;

-- HTTP broadcasters POST Eventeum's bare details from 0.5.0 on; those made
-- before keep the whole message their consumers parse.
UPDATE broadcasters SET options = options || '{"envelope": true}' WHERE kind = 'http';

-- maxBlocksToSync takes Eventeum's meaning from 0.5.0 on (a follower that
-- starts further behind skips to the last that many blocks); the most blocks
-- per eth_getLogs it used to set is maxBlockRange.
DO $$
DECLARE
    node record;
BEGIN
    FOR node IN SELECT name, options ->> 'maxBlocksToSync' AS range FROM eventeum.nodes
                 WHERE coalesce((options ->> 'maxBlocksToSync')::bigint, 0) > 0 LOOP
        RAISE WARNING 'eventeum: node "%": maxBlocksToSync % is now maxBlockRange (blocks per eth_getLogs); maxBlocksToSync now means what it meant in Eventeum', node.name, node.range;
    END LOOP;
END
$$;
UPDATE nodes
   SET options = (options - 'maxBlocksToSync')
                 || jsonb_build_object('maxBlockRange', coalesce(options -> 'maxBlocksToSync', '0'),
                                       'maxBlocksToSync', 0, 'confirmedIsFinal', false);
