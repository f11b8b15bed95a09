-- eventeum 0.7.0 -> 0.8.0: storage for years (issue 34, docs/ARCHITECTURE.md,
-- "Storage for years"): the compact types eventeum.address and eventeum.hash,
-- and one table per event kind in schema eventeum_store, into which
-- contract_events' rows move; contract_events becomes a view of them.

-- Compact types ---------------------------------------------------------------
-- eventeum.address (20 bytes) and eventeum.hash (32 bytes) are stored as a
-- bytea of that length (21 and 33 bytes on disk, where their hex text takes
-- 43 and 67) and read and print as Eventeum's text: EIP-55 for an address,
-- lower-case 0x hex for a hash. Input takes 0x hex in any case; an address
-- in mixed case must carry its EIP-55 checksum. Comparison and hashing are
-- bytea's own, so their B-tree and hash indexes are bytea's; a cast to text
-- is implicit, so text functions and comparisons with text keep working.
CREATE TYPE address;
CREATE FUNCTION address_in(cstring) RETURNS address
    AS 'MODULE_PATHNAME', 'address_in_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_out(address) RETURNS cstring
    AS 'MODULE_PATHNAME', 'address_out_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_recv(internal) RETURNS address
    AS 'MODULE_PATHNAME', 'address_recv_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_send(address) RETURNS bytea
    AS 'byteasend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE address (
    INPUT = address_in, OUTPUT = address_out, RECEIVE = address_recv, SEND = address_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE address IS
  'An Ethereum address: 20 bytes, shown in EIP-55 mixed case. Input: 0x and 40 hex digits, in lower case or with a valid EIP-55 checksum.';

CREATE TYPE hash;
CREATE FUNCTION hash_in(cstring) RETURNS hash
    AS 'MODULE_PATHNAME', 'hash_in_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_out(hash) RETURNS cstring
    AS 'MODULE_PATHNAME', 'hash_out_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_recv(internal) RETURNS hash
    AS 'MODULE_PATHNAME', 'hash_recv_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_send(hash) RETURNS bytea
    AS 'byteasend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE hash (
    INPUT = hash_in, OUTPUT = hash_out, RECEIVE = hash_recv, SEND = hash_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE hash IS
  'A 32-byte hash (a block or transaction hash, a bytes32 topic), shown as 0x and 64 lower-case hex digits. Input: 0x and 64 hex digits in any case.';

-- Their comparisons, B-tree and hash operator classes, and casts: the same for both.
CREATE FUNCTION address_eq(address, address) RETURNS boolean
    AS 'byteaeq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR = (LEFTARG = address, RIGHTARG = address, FUNCTION = address_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE FUNCTION address_ne(address, address) RETURNS boolean
    AS 'byteane' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <> (LEFTARG = address, RIGHTARG = address, FUNCTION = address_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE FUNCTION address_lt(address, address) RETURNS boolean
    AS 'bytealt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR < (LEFTARG = address, RIGHTARG = address, FUNCTION = address_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE FUNCTION address_le(address, address) RETURNS boolean
    AS 'byteale' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <= (LEFTARG = address, RIGHTARG = address, FUNCTION = address_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE FUNCTION address_gt(address, address) RETURNS boolean
    AS 'byteagt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR > (LEFTARG = address, RIGHTARG = address, FUNCTION = address_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE FUNCTION address_ge(address, address) RETURNS boolean
    AS 'byteage' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR >= (LEFTARG = address, RIGHTARG = address, FUNCTION = address_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE FUNCTION address_cmp(address, address) RETURNS integer
    AS 'byteacmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION address_hash(address) RETURNS integer
    AS 'hashvarlena' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_hash_extended(address, bigint) RETURNS bigint
    AS 'hashvarlenaextended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR CLASS address_ops DEFAULT FOR TYPE address USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 address_cmp(address, address);
CREATE OPERATOR CLASS address_hash_ops DEFAULT FOR TYPE address USING hash AS
    OPERATOR 1 =, FUNCTION 1 address_hash(address), FUNCTION 2 address_hash_extended(address, bigint);
CREATE CAST (address AS text) WITH INOUT AS IMPLICIT;
CREATE CAST (text AS address) WITH INOUT;
CREATE CAST (address AS bytea) WITHOUT FUNCTION;
CREATE FUNCTION hash_eq(hash, hash) RETURNS boolean
    AS 'byteaeq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR = (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE FUNCTION hash_ne(hash, hash) RETURNS boolean
    AS 'byteane' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <> (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE FUNCTION hash_lt(hash, hash) RETURNS boolean
    AS 'bytealt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR < (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE FUNCTION hash_le(hash, hash) RETURNS boolean
    AS 'byteale' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <= (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE FUNCTION hash_gt(hash, hash) RETURNS boolean
    AS 'byteagt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR > (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE FUNCTION hash_ge(hash, hash) RETURNS boolean
    AS 'byteage' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR >= (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE FUNCTION hash_cmp(hash, hash) RETURNS integer
    AS 'byteacmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION hash_hash(hash) RETURNS integer
    AS 'hashvarlena' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_hash_extended(hash, bigint) RETURNS bigint
    AS 'hashvarlenaextended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR CLASS hash_ops DEFAULT FOR TYPE hash USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 hash_cmp(hash, hash);
CREATE OPERATOR CLASS hash_hash_ops DEFAULT FOR TYPE hash USING hash AS
    OPERATOR 1 =, FUNCTION 1 hash_hash(hash), FUNCTION 2 hash_hash_extended(hash, bigint);
CREATE CAST (hash AS text) WITH INOUT AS IMPLICIT;
CREATE CAST (text AS hash) WITH INOUT;
CREATE CAST (hash AS bytea) WITHOUT FUNCTION;
-- PUBLIC gets nothing, as on a fresh install (privileges.sql).
REVOKE ALL ON FUNCTION
    address_in(cstring),
    address_out(address),
    address_recv(internal),
    address_send(address),
    address_eq(address, address),
    address_ne(address, address),
    address_lt(address, address),
    address_le(address, address),
    address_gt(address, address),
    address_ge(address, address),
    address_cmp(address, address),
    address_hash(address),
    address_hash_extended(address, bigint),
    hash_in(cstring),
    hash_out(hash),
    hash_recv(internal),
    hash_send(hash),
    hash_eq(hash, hash),
    hash_ne(hash, hash),
    hash_lt(hash, hash),
    hash_le(hash, hash),
    hash_gt(hash, hash),
    hash_ge(hash, hash),
    hash_cmp(hash, hash),
    hash_hash(hash),
    hash_hash_extended(hash, bigint)
   FROM PUBLIC;
-- The compact types' functions: whoever reads events compares and hashes
-- them through their operators, which check EXECUTE.
GRANT EXECUTE ON FUNCTION
    address_in(cstring),
    address_out(address),
    address_recv(internal),
    address_send(address),
    address_eq(address, address),
    address_ne(address, address),
    address_lt(address, address),
    address_le(address, address),
    address_gt(address, address),
    address_ge(address, address),
    address_cmp(address, address),
    address_hash(address),
    address_hash_extended(address, bigint),
    hash_in(cstring),
    hash_out(hash),
    hash_recv(internal),
    hash_send(hash),
    hash_eq(hash, hash),
    hash_ne(hash, hash),
    hash_lt(hash, hash),
    hash_le(hash, hash),
    hash_gt(hash, hash),
    hash_ge(hash, hash),
    hash_cmp(hash, hash),
    hash_hash(hash),
    hash_hash_extended(hash, bigint)
   TO eventeum_reader;

-- Kind tables ------------------------------------------------------------------
-- Event storage (docs/ARCHITECTURE.md, "Storage for years"). Rows live in one
-- table per event kind in schema eventeum_store, made by the filter trigger
-- when a filter of a new kind is added; rows carry small keys for their
-- node and filter, which these two tables name. Neither loses a row when
-- its node or filter is removed: the events stay, and so do their names.
CREATE SCHEMA eventeum_store;
COMMENT ON SCHEMA eventeum_store IS
  'eventeum''s event tables, one per event kind (see eventeum.event_kinds). Nothing else lives here: a publication of the schema replicates every event.';

CREATE SEQUENCE event_node_keys AS integer;
CREATE TABLE event_nodes (
    node_key integer PRIMARY KEY DEFAULT nextval('event_node_keys'),
    name     text NOT NULL UNIQUE
);
ALTER SEQUENCE event_node_keys OWNED BY event_nodes.node_key;
COMMENT ON TABLE event_nodes IS 'The key of each node that stored events (the node_key of eventeum_store''s rows).';

CREATE SEQUENCE event_source_keys AS integer;
CREATE TABLE event_sources (
    source_key integer PRIMARY KEY DEFAULT nextval('event_source_keys'),
    filter_id  text NOT NULL,
    node       text NOT NULL,
    event_name text NOT NULL,
    topic0     text NOT NULL,
    UNIQUE (filter_id, node, event_name, topic0)
);
ALTER SEQUENCE event_source_keys OWNED BY event_sources.source_key;
COMMENT ON TABLE event_sources IS
  'The filter each stored event came from (the filter_key of eventeum_store''s rows): its id, node, event name and topic0.';

CREATE FUNCTION _event_source(filter_id text, node text, event_name text, topic0 text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    found integer;
BEGIN
    INSERT INTO eventeum.event_nodes (name) VALUES (_event_source.node) ON CONFLICT (name) DO NOTHING;
    SELECT s.source_key INTO found FROM eventeum.event_sources s
     WHERE s.filter_id = _event_source.filter_id AND s.node = _event_source.node
       AND s.event_name = _event_source.event_name AND s.topic0 = _event_source.topic0;
    IF found IS NULL THEN
        INSERT INTO eventeum.event_sources (filter_id, node, event_name, topic0)
        VALUES (_event_source.filter_id, _event_source.node, _event_source.event_name, _event_source.topic0)
        RETURNING source_key INTO found;
    END IF;
    RETURN found;
END
$$;
COMMENT ON FUNCTION _event_source(text, text, text, text) IS
  'The key of a filter''s events (and of its node), made when missing. Called by add_filter and the upgrade.';

ALTER TABLE contract_events RENAME TO contract_events_0_7;

-- Eventeum's shape, over every kind table: replaced (same columns) each time a
-- kind table is made. With none yet, it is empty.
CREATE VIEW contract_events AS
SELECT NULL::text AS id, NULL::text AS filter_id, NULL::text AS node, NULL::text AS name, NULL::text AS address,
       NULL::bigint AS block_number, NULL::text AS block_hash, NULL::text AS transaction_hash,
       NULL::integer AS log_index, NULL::jsonb AS indexed_parameters, NULL::jsonb AS non_indexed_parameters,
       NULL::text AS event_specification_signature, NULL::text AS correlation_id,
       NULL::event_status AS status, NULL::bigint AS block_timestamp, NULL::timestamptz AS created_at,
       NULL::timestamptz AS updated_at
 WHERE false;
COMMENT ON VIEW contract_events IS
  'One row per (filter, log), in Eventeum''s shape, over every kind table in eventeum_store. id is Eventeum''s <txHash>-<blockHash>-<logIndex>. Every insert and status change is sent on NOTIFY eventeum_contract_events.';

CREATE VIEW event_kinds AS
SELECT c.relname::text AS table_name,
       pg_catalog.substr(pg_catalog.obj_description(c.oid, 'pg_class'), 22) AS kind,
       COALESCE((SELECT sum(GREATEST(p.reltuples, 0)) FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class p ON p.oid = i.inhrelid
                  WHERE i.inhparent = c.oid), GREATEST(c.reltuples, 0))::bigint AS estimated_rows,
       (SELECT count(*) FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) AS partitions
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'eventeum_store'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition;
COMMENT ON VIEW event_kinds IS
  'Each kind table in eventeum_store: its name, its kind (each parameter''s Solidity type, ! after an indexed one), its rows by the statistics and its partitions.';

ALTER TABLE recent_blocks ADD COLUMN timestamp bigint;
COMMENT ON COLUMN recent_blocks.timestamp IS
  'The block''s timestamp (NULL for blocks remembered before 0.8.0): the chain''s time, which retainFor counts from.';

-- Each kind table is partitioned by (node_key, block_number) range; the
-- worker makes the partitions (docs/ARCHITECTURE.md, "Partitions") and
-- records them here, and retention drops them whole.
CREATE TABLE event_partitions (
    table_name     text NOT NULL,
    node_key       integer NOT NULL,
    from_block     bigint NOT NULL,
    to_block       bigint NOT NULL,
    partition_name text NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, node_key, from_block),
    CHECK (from_block <= to_block)
);
CREATE INDEX ON event_partitions (node_key, to_block);
COMMENT ON TABLE event_partitions IS
  'Each partition of a kind table in eventeum_store: its node''s events of blocks from_block..to_block. Made by the worker.';

-- Retention also removes a node's blocks, monitored transactions and
-- undecodable logs out of its window, found by block.
CREATE INDEX undecodable_logs_by_block ON undecodable_logs (node, block_number);
COMMENT ON TABLE undecodable_logs IS
  'Logs that matched a filter''s address and signature hash but not its parameter types, with the reason. Kept until the node''s retention (retainBlocks, retainFor) removes them.';

CREATE TABLE retention_log (
    node       text NOT NULL,
    table_name text NOT NULL,
    from_block bigint NOT NULL,
    to_block   bigint NOT NULL,
    rows       bigint NOT NULL,
    removed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON retention_log (node, to_block);
COMMENT ON TABLE retention_log IS
  'Every partition the nodes'' retention options (retainBlocks, retainFor) removed: the node, the kind table, its blocks and how many rows left with it.';

CREATE TABLE view_indexes (
    index_name       text PRIMARY KEY,
    filter_id        text NOT NULL,
    view_name        text NOT NULL,
    column_name      text NOT NULL,
    kind_table       text NOT NULL,
    state            text NOT NULL DEFAULT 'PENDING'
                     CHECK (state IN ('PENDING', 'BUILDING', 'READY', 'FAILED')),
    partitions_done  integer NOT NULL DEFAULT 0,
    partitions_total integer NOT NULL DEFAULT 0,
    builder_pid      integer,
    error            text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE view_indexes IS
  'Each index a typed view asks for ("index" in its filter''s "view") and how far the index builder is: PENDING, BUILDING (partitions_done of partitions_total; builder_pid is its row in pg_stat_progress_create_index), READY, or FAILED with the error. Written by the index builder.';

CREATE OR REPLACE VIEW backfill_status AS
SELECT filter_id, node, from_block, to_block, current_block,
       current_block >= to_block AS done,
       CASE WHEN current_block >= to_block THEN interval '0'
            WHEN current_block >= from_block AND updated_at > started_at
            THEN (updated_at - started_at) * ((to_block - current_block)::float8 / (current_block - from_block + 1))
       END AS eta,
       started_at, updated_at,
       (SELECT max(r.to_block) + 1 FROM eventeum.retention_log r WHERE r.node = filter_backfill.node) AS kept_from_block
  FROM filter_backfill;
COMMENT ON VIEW backfill_status IS
  'Backfill progress per filter: from/to/current block, done, an ETA at the rate so far, and kept_from_block: the first block whose events retention has not removed (NULL when it removed none).';


SELECT pg_catalog.pg_extension_config_dump('event_nodes', '');
SELECT pg_catalog.pg_extension_config_dump('event_sources', '');
SELECT pg_catalog.pg_extension_config_dump('event_node_keys', '');
SELECT pg_catalog.pg_extension_config_dump('event_source_keys', '');
SELECT pg_catalog.pg_extension_config_dump('event_partitions', '');
SELECT pg_catalog.pg_extension_config_dump('retention_log', '');

REVOKE ALL ON FUNCTION _event_source(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON event_nodes, event_sources, event_kinds, contract_events, event_partitions, retention_log, view_indexes FROM PUBLIC;
REVOKE ALL ON SEQUENCE event_node_keys, event_source_keys FROM PUBLIC;
GRANT USAGE ON SCHEMA eventeum_store TO eventeum_reader, eventeum_admin;
GRANT SELECT ON contract_events, event_kinds, event_nodes, event_sources, event_partitions, retention_log, view_indexes TO eventeum_reader;
GRANT SELECT ON contract_events, event_kinds, event_nodes, event_sources, event_partitions, retention_log, view_indexes TO eventeum_admin;

CREATE FUNCTION make_partitions(kind_table text, node text, from_block bigint, to_block bigint) RETURNS integer
    STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'make_partitions_wrapper';
REVOKE ALL ON FUNCTION make_partitions(text, text, bigint, bigint) FROM PUBLIC;
CREATE FUNCTION event_tables_ddl() RETURNS SETOF text
    STRICT STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'event_tables_ddl_wrapper';
REVOKE ALL ON FUNCTION event_tables_ddl() FROM PUBLIC;
COMMENT ON FUNCTION event_tables_ddl() IS
  'The statements that make this database''s kind tables (plain, not partitioned) and the contract_events view over them on a logical-replication subscriber; each may run again when kinds are added.';
COMMENT ON FUNCTION make_partitions(text, text, bigint, bigint) IS
  'Makes the partitions of a kind table (eventeum.event_kinds.table_name) that a node''s blocks from_block..to_block need, at its partitionBlocks; returns how many it made. The worker makes its own: this is for rows loaded by hand.';

-- Every filter's events get their keys (and so do the rows of filters since
-- removed), then the filters' typed views are made again over the kind
-- tables (the trigger makes each kind's table), and the rows move.
SELECT _event_source(id, node, event_name, event_signature) FROM contract_event_filters;
SELECT _event_source(filter_id, node, name, event_specification_signature)
  FROM (SELECT DISTINCT filter_id, node, name, event_specification_signature FROM contract_events_0_7) removed;
DO $$
DECLARE
    view record;
BEGIN
    FOR view IN
        SELECT c.oid::regclass AS name FROM pg_catalog.pg_class c
         WHERE c.relkind = 'v'
           AND pg_catalog.obj_description(c.oid, 'pg_class') LIKE 'eventeum typed view of filter %'
    LOOP
        EXECUTE pg_catalog.format('DROP VIEW %s', view.name);
    END LOOP;
END
$$;
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT id FROM contract_event_filters ORDER BY created_at, id LOOP
        BEGIN
            UPDATE contract_event_filters SET definition = definition WHERE id = f.id;
        EXCEPTION WHEN duplicate_table THEN
            -- Only when the chain of updates started before 0.7.0: this
            -- library makes the views of 0.7.0 here.
            RAISE NOTICE 'filter "%" gets no typed view: its default name is taken', f.id
                USING HINT = 'give it one with eventeum.set_view(id, ''{"name": "..."}'')';
            UPDATE contract_event_filters SET definition = definition || '{"view": false}' WHERE id = f.id;
        END;
    END LOOP;
END
$$;
CREATE FUNCTION "_move_events_0_7_0"() RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', '_move_events_0_7_0_wrapper';
SELECT _move_events_0_7_0();
DROP FUNCTION _move_events_0_7_0();
-- Out of the extension first: that takes it off the list of tables pg_dump dumps.
ALTER EXTENSION eventeum DROP TABLE contract_events_0_7;
DROP TABLE contract_events_0_7;
