-- 0.5.0 -> 0.6.0: dynamic contract sets.
-- - Address sets (address_sets, address_set_members) that filters follow by
--   name, changed by watch/unwatch or plain INSERT and DELETE; members added
--   with a start_block are backfilled on their own (member_backfill).
-- - A filter follows one contract, any contract, or a set's members; it may
--   constrain its indexed parameters (indexedParameterFilters), and a
--   factory's events may add children to its set (source_* columns).

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

ALTER TABLE contract_event_filters ALTER COLUMN contract_address DROP NOT NULL;
ALTER TABLE contract_event_filters ADD COLUMN address_set text;
COMMENT ON COLUMN contract_event_filters.contract_address IS 'The one contract it follows (EIP-55); NULL when it follows any contract or an address set.';
COMMENT ON COLUMN contract_event_filters.address_set IS 'The address set whose members it follows, if any.';

-- The functions written in Rust: add_filter's signature form takes address_set.
DROP FUNCTION add_filter(text, text, text, bigint, text);
CREATE FUNCTION "add_filter"(
	"contract_address" TEXT, /* core::option::Option<&str> */
	"event_signature" TEXT, /* core::option::Option<&str> */
	"node" TEXT DEFAULT 'default', /* &str */
	"start_block" bigint DEFAULT NULL, /* core::option::Option<i64> */
	"id" TEXT DEFAULT NULL, /* core::option::Option<alloc::string::String> */
	"address_set" TEXT DEFAULT NULL /* core::option::Option<&str> */
) RETURNS TEXT /* alloc::string::String */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'add_filter_signature_wrapper';
CREATE FUNCTION "create_address_set"(
	"name" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'create_address_set_wrapper';
CREATE FUNCTION "drop_address_set"(
	"name" TEXT /* &str */
) RETURNS void
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_address_set_wrapper';
CREATE FUNCTION "watch"(
	"set_name" TEXT, /* &str */
	"address" TEXT, /* &str */
	"start_block" bigint DEFAULT NULL /* core::option::Option<i64> */
) RETURNS bool /* bool */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'watch_wrapper';
CREATE FUNCTION "unwatch"(
	"set_name" TEXT, /* &str */
	"address" TEXT /* &str */
) RETURNS bool /* bool */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unwatch_wrapper';
COMMENT ON FUNCTION add_filter(jsonb) IS
  'Adds a contract-event filter given as Eventeum''s REST body (id, contractAddress, eventSpecification, correlationIdStrategy) plus optional node, startBlock, addressSet (in place of contractAddress; contractAddress null or "*" follows any contract) and indexedParameterFilters. Returns the filter id.';
COMMENT ON FUNCTION add_filter(text, text, text, bigint, text, text) IS
  'Adds a contract-event filter from a Solidity event signature, e.g. Transfer(address indexed from, address indexed to, uint256 value), for one contract, any contract (''*''), or the members of address_set (contract_address NULL). Returns the filter id.';
COMMENT ON FUNCTION create_address_set(text) IS
  'Creates an address set that filters follow by name ("addressSet"). Returns the name; an existing set is left as it is.';
COMMENT ON FUNCTION drop_address_set(text) IS
  'Drops an address set and its members; refused (2BP01) while a filter follows it.';
COMMENT ON FUNCTION watch(text, text, bigint) IS
  'Adds an address to a set. With start_block its events are backfilled from there for every filter following the set; without, it is followed from the block the worker is at when this commits. Returns false if it was a member already.';
COMMENT ON FUNCTION unwatch(text, text) IS
  'Removes an address from a set; it is no longer followed and its stored events stay. Returns false if it was not a member.';

-- Privileges, as privileges.sql gives them.
GRANT SELECT ON address_sets, address_set_members, member_backfill TO eventeum_reader;
GRANT SELECT ON address_sets, address_set_members, member_backfill TO eventeum_admin;
GRANT INSERT, UPDATE, DELETE ON address_set_members TO eventeum_admin;
ALTER FUNCTION bump_config_version() SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;
REVOKE ALL ON FUNCTION normalize_set_member() FROM PUBLIC;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY['add_filter(text, text, text, bigint, text, text)', 'create_address_set(text)',
                             'drop_address_set(text)', 'watch(text, text, bigint)', 'unwatch(text, text)']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO eventeum_admin', f);
    END LOOP;
END
$$;

SELECT pg_catalog.pg_extension_config_dump('address_sets', '');
SELECT pg_catalog.pg_extension_config_dump('address_set_members', '');
SELECT pg_catalog.pg_extension_config_dump('member_backfill', '');
