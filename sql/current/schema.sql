-- eventeum's schema as it is now: every table, type, view and SQL function,
-- each in its current definition. CREATE EXTENSION runs this file first (see
-- src/lib.rs), then the functions written in Rust, then privileges.sql.
--
-- An upgrade is a script sql/eventeum--<old>--<new>.sql that turns the last
-- release's schema into this one; e2e/test_upgrade.py checks that an
-- upgraded database and a fresh install have the same catalog. A change here
-- needs its upgrade script, and a change there its counterpart here.

CREATE TYPE event_status AS ENUM ('UNCONFIRMED', 'CONFIRMED', 'INVALIDATED');
COMMENT ON TYPE event_status IS
  'Life of an event: UNCONFIRMED when stored, CONFIRMED after numBlocksToWait blocks, INVALIDATED when a fork removed it.';

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

-- Bumped by any change to the configuration tables; the worker compares it
-- to notice new nodes and filters without a restart.
CREATE TABLE config_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO config_version VALUES (true, 1);

CREATE FUNCTION bump_config_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE eventeum.config_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TABLE nodes (
    name       text PRIMARY KEY CHECK (btrim(name) <> ''),
    url        text NOT NULL,
    options    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nodes IS 'Ethereum nodes the worker follows; managed with add_node and remove_node.';
COMMENT ON COLUMN nodes.options IS 'Eventeum node options with every default filled in.';

CREATE TABLE node_state (
    node          text PRIMARY KEY REFERENCES nodes (name) ON DELETE CASCADE,
    latest_block  bigint,
    current_block bigint,
    status        text NOT NULL DEFAULT 'CONNECTED',
    last_error    text,
    last_reorg    text,
    last_reorg_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    chain_id      bigint,
    endpoints     jsonb
);
COMMENT ON COLUMN node_state.chain_id IS 'The chain the node''s urls serve (eth_chainId), learned from the first that answered; a url serving another is not used.';
COMMENT ON COLUMN node_state.endpoints IS 'Each of the node''s urls (redacted): whether it serves now, whether it is healthy, and its last error.';
COMMENT ON TABLE node_state IS 'Per node: the checkpoint (latest_block, the last block committed), the head seen, and health.';

CREATE TABLE recent_blocks (
    node        text NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    number      bigint NOT NULL,
    hash        text NOT NULL,
    parent_hash text NOT NULL,
    timestamp   bigint,
    PRIMARY KEY (node, number)
);
COMMENT ON TABLE recent_blocks IS
  'Per node, the canonical blocks committed most recently: the window forks are checked against.';
COMMENT ON COLUMN recent_blocks.timestamp IS
  'The block''s timestamp (NULL for blocks remembered before 0.8.0): the chain''s time, which retainFor counts from.';

CREATE VIEW node_status AS
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

-- Address sets: lists of contracts (or of indexed address values) that
-- filters follow by name. A change is live when its transaction commits: the
-- statement triggers bump config_version.
CREATE TABLE address_sets (
    name       text PRIMARY KEY CHECK (btrim(name) = name AND name <> '' AND length(name) <= 128),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE address_sets IS
  'Named address sets that filters follow ("addressSet", or an addressSet in indexedParameterFilters); managed with create_address_set and drop_address_set.';

CREATE TABLE address_set_members (
    set_name    text NOT NULL REFERENCES address_sets (name) ON DELETE CASCADE,
    address     text NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    start_block bigint CHECK (start_block >= 0),
    added_at    timestamptz NOT NULL DEFAULT now(),
    source_node   text,
    source_filter text,
    source_event  text,
    PRIMARY KEY (set_name, address)
);
CREATE INDEX address_set_members_by_source ON address_set_members (source_node, source_filter, source_event)
    WHERE source_event IS NOT NULL;
COMMENT ON TABLE address_set_members IS
  'The members of each address set; watch and unwatch change them, and so may a plain INSERT or DELETE. Addresses are stored in lower case.';
COMMENT ON COLUMN address_set_members.start_block IS
  'The first block to backfill this address from, for the filters that follow its set; NULL: followed from the block the worker is at when the row commits.';
COMMENT ON COLUMN address_set_members.source_event IS
  'For a child a factory created: the factory event (Eventeum id) of filter source_filter on node source_node. A fork that invalidates it removes the member.';

CREATE FUNCTION normalize_set_member() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.address := lower(btrim(NEW.address));
    RETURN NEW;
END
$$;
CREATE TRIGGER address_set_members_normalized BEFORE INSERT OR UPDATE ON address_set_members
    FOR EACH ROW EXECUTE FUNCTION normalize_set_member();
CREATE TRIGGER address_sets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON address_sets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER address_set_members_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON address_set_members
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();

-- Not a configuration table: its progress does not bump config_version.
CREATE TABLE member_backfill (
    node          text NOT NULL,
    set_name      text NOT NULL,
    address       text NOT NULL,
    from_block    bigint NOT NULL,
    to_block      bigint NOT NULL,
    current_block bigint NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, set_name, address),
    FOREIGN KEY (set_name, address) REFERENCES address_set_members (set_name, address) ON DELETE CASCADE
);
CREATE INDEX ON member_backfill (set_name, address);
COMMENT ON TABLE member_backfill IS
  'Per node and set member added with a start_block: blocks from_block..to_block, below the block where live following took it over, are fetched for that address alone.';

CREATE TABLE contract_event_filters (
    id               text PRIMARY KEY CHECK (btrim(id) <> ''),
    node             text NOT NULL REFERENCES nodes (name),
    contract_address text,
    event_name       text NOT NULL,
    event_signature  text NOT NULL,
    start_block      bigint CHECK (start_block >= 0),
    definition       jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    address_set      text
);
CREATE INDEX ON contract_event_filters (node);
COMMENT ON TABLE contract_event_filters IS 'Contract-event filters; managed with add_filter and remove_filter.';
COMMENT ON COLUMN contract_event_filters.contract_address IS 'The one contract it follows (EIP-55); NULL when it follows any contract or an address set.';
COMMENT ON COLUMN contract_event_filters.address_set IS 'The address set whose members it follows, if any.';
COMMENT ON COLUMN contract_event_filters.event_signature IS 'topic0: keccak256 of the canonical event signature.';
COMMENT ON COLUMN contract_event_filters.definition IS 'The filter in Eventeum''s REST format, as list_filters returns it.';

-- Not a configuration table: its progress does not bump config_version.
CREATE TABLE filter_backfill (
    filter_id     text PRIMARY KEY REFERENCES contract_event_filters (id) ON DELETE CASCADE,
    node          text NOT NULL,
    from_block    bigint NOT NULL,
    to_block      bigint NOT NULL,
    current_block bigint NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE filter_backfill IS
  'Per filter live following has taken over: from_block is its first block (startBlock, or the first block mined at or after its registration), and blocks from_block..to_block, below the block where live following took it over, are fetched for it alone.';


CREATE TRIGGER nodes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER filters_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON contract_event_filters
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();

CREATE TABLE transaction_monitors (
    id         text PRIMARY KEY CHECK (btrim(id) <> ''),
    node       text NOT NULL REFERENCES nodes (name),
    type       text NOT NULL CHECK (type IN ('HASH', 'FROM_ADDRESS', 'TO_ADDRESS')),
    value      text NOT NULL,
    statuses   text[] NOT NULL,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON transaction_monitors (node);
COMMENT ON TABLE transaction_monitors IS
  'Transaction monitors; managed with add_transaction_monitor and remove_transaction_monitor. A HASH monitor ends itself once its transaction is final.';
CREATE TRIGGER monitors_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON transaction_monitors
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();

CREATE TYPE transaction_status AS ENUM ('UNCONFIRMED', 'CONFIRMED', 'FAILED', 'INVALIDATED');

CREATE FUNCTION monitor_wants(monitor_id text, status text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT status = ANY (m.statuses) FROM eventeum.transaction_monitors m WHERE m.id = monitor_id), false)
$$;
COMMENT ON FUNCTION monitor_wants(text, text) IS 'Internal: whether a monitor asked for a transaction status.';

-- Every matched transaction the worker tracks; `transactions` shows those that
-- reached a status their monitor asked for.
CREATE TABLE transaction_states (
    monitor_id           text NOT NULL,
    node                 text NOT NULL,
    hash                 text NOT NULL,
    from_address         text NOT NULL,
    to_address           text,
    contract_address     text,
    value                numeric(78, 0) NOT NULL,
    nonce                bigint NOT NULL,
    block_number         bigint NOT NULL,
    block_hash           text NOT NULL,
    transaction_index    integer NOT NULL,
    status               transaction_status NOT NULL,
    revert_reason        text,
    reported             boolean NOT NULL,
    invalidated_at_block bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    input                text,    -- the call data; NULL for rows stored before 0.5.0
    block_timestamp      bigint,  -- the block's, in seconds; NULL likewise
    PRIMARY KEY (monitor_id, hash, block_hash)
);
CREATE INDEX transaction_states_unconfirmed ON transaction_states (node, block_number) WHERE status = 'UNCONFIRMED';
CREATE INDEX transaction_states_by_block ON transaction_states (node, block_number);
COMMENT ON TABLE transaction_states IS
  'Internal: every transaction a monitor matched, tracked until final. reported is true once it reached a status the monitor asked for.';

CREATE VIEW transactions AS
SELECT monitor_id, node, hash, from_address, to_address, contract_address, value, nonce, block_number,
       block_hash, transaction_index, status, revert_reason, created_at, updated_at, input, block_timestamp
  FROM transaction_states
 WHERE reported;
COMMENT ON VIEW transactions IS
  'One row per (monitor, transaction, block) that reached a status its monitor asked for, with its current status. Each change to an asked status is sent on NOTIFY eventeum_transaction_events.';

CREATE TABLE blocks (
    node        text NOT NULL,
    hash        text NOT NULL,
    number      bigint NOT NULL,
    parent_hash text NOT NULL,
    "timestamp" bigint NOT NULL,
    status      text NOT NULL DEFAULT 'CANONICAL' CHECK (status IN ('CANONICAL', 'INVALIDATED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, hash)
);
CREATE INDEX blocks_by_number ON blocks (node, number);
COMMENT ON TABLE blocks IS
  'Block events, per node (blockNotification on): each new block is sent on NOTIFY eventeum_block_events; INVALIDATED after a fork.';

CREATE FUNCTION list_transaction_monitors() RETURNS SETOF jsonb
LANGUAGE sql STABLE AS $$
    SELECT definition FROM eventeum.transaction_monitors ORDER BY created_at, id
$$;
COMMENT ON FUNCTION list_transaction_monitors() IS 'Every transaction monitor, in Eventeum''s format plus its id.';

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

CREATE VIEW backfill_status AS
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

CREATE TABLE undecodable_logs (
    filter_id        text NOT NULL,
    node             text NOT NULL,
    address          text NOT NULL,
    block_number     bigint NOT NULL,
    block_hash       text NOT NULL,
    transaction_hash text NOT NULL,
    log_index        integer NOT NULL,
    topics           text[] NOT NULL,
    data             text NOT NULL,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (filter_id, node, block_hash, transaction_hash, log_index)
);
CREATE INDEX undecodable_logs_by_block ON undecodable_logs (node, block_number);
COMMENT ON TABLE undecodable_logs IS
  'Logs that matched a filter''s address and signature hash but not its parameter types, with the reason. Kept until the node''s retention (retainBlocks, retainFor) removes them.';

CREATE FUNCTION list_filters() RETURNS SETOF jsonb
LANGUAGE sql STABLE AS $$
    SELECT definition FROM eventeum.contract_event_filters ORDER BY created_at, id
$$;
COMMENT ON FUNCTION list_filters() IS 'Every contract-event filter, in Eventeum''s GET /api/rest/v1/event-filter format plus node and startBlock.';

-- Typed views: one per filter (see src/api/views.rs), created, changed and
-- dropped by this trigger, also when a dump's filter rows are restored.
CREATE FUNCTION parameter_bytes(value text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value OPERATOR(pg_catalog.~) '^0x([0-9a-fA-F]{2})*$' THEN pg_catalog.decode(pg_catalog.substr(value, 3), 'hex')
                ELSE pg_catalog.convert_to(value, 'UTF8') END
$$;
COMMENT ON FUNCTION parameter_bytes(text) IS
  'A bytes or bytesN parameter''s value as bytea: its 0x hex, or its text when eventeum.bytes_to_ascii wrote it as text. Typed views and their indexes use it.';

CREATE FUNCTION filter_view_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM eventeum._filter_view_changed(NULL, NULL, NEW.id, NEW.definition);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM eventeum._filter_view_changed(OLD.id, OLD.definition, NEW.id, NEW.definition);
    ELSE
        PERFORM eventeum._filter_view_changed(OLD.id, OLD.definition, NULL, NULL);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER typed_view AFTER INSERT OR DELETE OR UPDATE OF definition ON contract_event_filters
    FOR EACH ROW EXECUTE FUNCTION filter_view_trigger();

-- Delivery: broadcasters, the transactional outbox, dead letters, consumer groups.

CREATE TABLE broadcasters (
    name       text PRIMARY KEY CHECK (btrim(name) <> ''),
    kind       text NOT NULL CHECK (kind IN ('kafka', 'rabbitmq', 'http', 'group')),
    options    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE broadcasters IS
  'Where messages go: kafka, rabbitmq and http broadcasters (add_broadcaster), and SQL consumer groups (create_consumer_group).';
CREATE TRIGGER broadcasters_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON broadcasters
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    message_id      text NOT NULL,
    type            text NOT NULL,
    broadcaster     text NOT NULL,
    destination     text,
    key             text,
    -- The message's bytes as brokers receive them (compact, Eventeum's field
    -- order); jsonb would reorder and respace them.
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    UNIQUE (broadcaster, message_id, destination)
)
-- Room on every page for each row's delivered version (rows are about 1 kB),
-- so that marking a row delivered is a HOT update in place.
WITH (fillfactor = 50);
COMMENT ON TABLE outbox IS
  'One row per (message, broadcaster), written in the same transaction as the state change it reports. message_id is stable across replays.';

-- The outbox's undelivered rows, in delivery order. Every writer of the
-- outbox writes its row here in the same statement (publish,
-- replay_dead_letters, the worker); delivering, dead-lettering, ack and
-- remove_broadcaster delete it, each locking outbox before outbox_pending.
CREATE TABLE outbox_pending (
    broadcaster text NOT NULL,
    id          bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (broadcaster, id)
);
COMMENT ON TABLE outbox_pending IS
  'Internal: the outbox rows still to be delivered (or acked, for consumer groups), by broadcaster in outbox order. Write outbox rows through publish(); a row inserted straight into eventeum.outbox is not sent.';

CREATE TABLE dead_letters (
    id          bigint PRIMARY KEY,
    message_id  text NOT NULL,
    type        text NOT NULL,
    broadcaster text NOT NULL,
    destination text,
    key         text,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL,
    attempts    integer NOT NULL,
    reason      text NOT NULL,
    dead_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dead_letters IS 'Messages a broker rejected for good, with the reason; replay_dead_letters puts them back.';

-- Where a message of `type` goes on a broadcaster, or NULL when it does not take that type.
CREATE FUNCTION destination(kind text, options jsonb, type text, route text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
        WHEN 'kafka' THEN CASE type
            WHEN 'CONTRACT_EVENT' THEN options ->> 'contractEvents'
            WHEN 'TRANSACTION' THEN options ->> 'transactionEvents'
            WHEN 'BLOCK' THEN options ->> 'blockEvents' END
        WHEN 'rabbitmq' THEN CASE type
            WHEN 'CONTRACT_EVENT' THEN (options ->> 'contractEvents') || '.' || route
            WHEN 'TRANSACTION' THEN (options ->> 'transactionEvents') || '.' || route
            WHEN 'BLOCK' THEN CASE WHEN (options ->> 'blockNotification')::boolean THEN options ->> 'blockEvents' END END
        WHEN 'http' THEN CASE type
            WHEN 'CONTRACT_EVENT' THEN options ->> 'contractEventsUrl'
            WHEN 'TRANSACTION' THEN options ->> 'transactionEventsUrl'
            WHEN 'BLOCK' THEN options ->> 'blockEventsUrl' END
        WHEN 'group' THEN CASE
            WHEN options -> 'types' IS NULL OR options -> 'types' = 'null'::jsonb OR options -> 'types' ? type THEN type END
    END
$$;
COMMENT ON FUNCTION destination(text, jsonb, text, text) IS
  'Internal: the topic, routing key or URL of a message on a broadcaster; NULL when the broadcaster does not take it.';

CREATE SEQUENCE app_message_seq;

CREATE FUNCTION publish(destination text, key text, payload jsonb, broadcaster text DEFAULT NULL) RETURNS bigint
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
COMMENT ON FUNCTION publish(text, text, jsonb, text) IS
  'Transactional outbox for application events: writes the message for every broadcaster (or the one named) inside the caller''s transaction, so a rollback publishes nothing. Returns its sequence number; its message id is app-<n>.';

CREATE FUNCTION create_consumer_group(name text, types text[] DEFAULT NULL) RETURNS text
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

CREATE FUNCTION poll("group" text, max int DEFAULT 100, visibility_timeout interval DEFAULT '30 seconds')
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

CREATE FUNCTION ack("group" text, message_ids text[]) RETURNS int
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

-- pg_dump keeps the user's configuration and data.
SELECT pg_catalog.pg_extension_config_dump('nodes', '');
SELECT pg_catalog.pg_extension_config_dump('node_state', '');
SELECT pg_catalog.pg_extension_config_dump('recent_blocks', '');
SELECT pg_catalog.pg_extension_config_dump('filter_backfill', '');
SELECT pg_catalog.pg_extension_config_dump('contract_event_filters', '');
SELECT pg_catalog.pg_extension_config_dump('event_nodes', '');
SELECT pg_catalog.pg_extension_config_dump('event_sources', '');
SELECT pg_catalog.pg_extension_config_dump('event_node_keys', '');
SELECT pg_catalog.pg_extension_config_dump('event_source_keys', '');
SELECT pg_catalog.pg_extension_config_dump('event_partitions', '');
SELECT pg_catalog.pg_extension_config_dump('retention_log', '');
SELECT pg_catalog.pg_extension_config_dump('transaction_monitors', '');
SELECT pg_catalog.pg_extension_config_dump('transaction_states', '');
SELECT pg_catalog.pg_extension_config_dump('blocks', '');
SELECT pg_catalog.pg_extension_config_dump('broadcasters', '');
SELECT pg_catalog.pg_extension_config_dump('outbox', '');
SELECT pg_catalog.pg_extension_config_dump('dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('undecodable_logs', '');
-- Its one row is the extension's own (CREATE EXTENSION inserts it): a dump
-- that carried it could not be restored.
SELECT pg_catalog.pg_extension_config_dump('config_version', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('outbox_pending', '');
SELECT pg_catalog.pg_extension_config_dump('consumer_group_grants', '');
SELECT pg_catalog.pg_extension_config_dump('address_sets', '');
SELECT pg_catalog.pg_extension_config_dump('address_set_members', '');
SELECT pg_catalog.pg_extension_config_dump('member_backfill', '');
