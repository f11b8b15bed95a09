-- 0.6.0 -> 0.7.0: typed SQL access.
-- - Each filter gets a typed view (a named, typed column per event
--   parameter), created, changed and dropped with it by a trigger on
--   contract_event_filters; set_view names, moves, indexes or drops it.
-- - add_filter accepts an ABI event object as its eventSpecification, and
--   tuples, fixed-size and nested arrays; add_filters_from_abi registers a
--   contract ABI's events.
-- Filters added before this version get their default view at the end of
-- this script (none where its name is taken, with a NOTICE).

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

-- The functions written in Rust.
CREATE FUNCTION "add_filters_from_abi"(
	"contract_address" TEXT, /* &str */
	"abi" jsonb, /* pgrx::datum::json::JsonB */
	"events" TEXT[] DEFAULT NULL, /* core::option::Option<alloc::vec::Vec<alloc::string::String>> */
	"node" TEXT DEFAULT 'default', /* &str */
	"start_block" bigint DEFAULT NULL /* core::option::Option<i64> */
) RETURNS TEXT[] /* alloc::vec::Vec<alloc::string::String> */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'add_filters_from_abi_wrapper';
CREATE FUNCTION "set_view"(
	"filter_id" TEXT, /* &str */
	"view" jsonb /* core::option::Option<pgrx::datum::json::JsonB> */
) RETURNS jsonb /* pgrx::datum::json::JsonB */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_view_wrapper';
CREATE FUNCTION "_filter_view_changed"(
	"old_id" TEXT, /* core::option::Option<&str> */
	"old_definition" jsonb, /* core::option::Option<pgrx::datum::json::JsonB> */
	"new_id" TEXT, /* core::option::Option<&str> */
	"new_definition" jsonb /* core::option::Option<pgrx::datum::json::JsonB> */
) RETURNS void
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_filter_view_changed_wrapper';
COMMENT ON FUNCTION add_filters_from_abi(text, jsonb, text[], text, bigint) IS
  'Adds one contract-event filter per event of a contract ABI (a JSON array as solc and Foundry write it, or an artifact with an "abi" key): all its events or those named. Ids are <EventName>_<first 8 hex digits of the address>; each gets a typed view named after its id. Returns the ids.';
COMMENT ON FUNCTION set_view(text, jsonb) IS
  'Sets a filter''s typed view: false drops it; a name or {"name", "schema", "index": [column, ...]} creates it, moves it or changes its indexes. Returns the view as stored.';
COMMENT ON FUNCTION _filter_view_changed(text, jsonb, text, jsonb) IS
  'Internal: the typed_view trigger''s work on contract_event_filters (creates, changes and drops views and their indexes).';
COMMENT ON FUNCTION add_filter(jsonb) IS
  'Adds a contract-event filter given as Eventeum''s REST body (id, contractAddress, eventSpecification or an ABI event object, correlationIdStrategy) plus optional node, startBlock, addressSet (in place of contractAddress; contractAddress null or "*" follows any contract), indexedParameterFilters and view (its typed view: false, a name, or {name, schema, index}). Returns the filter id.';

-- Privileges, as privileges.sql gives them.
REVOKE ALL ON FUNCTION parameter_bytes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parameter_bytes(text) TO eventeum_reader;
REVOKE ALL ON FUNCTION filter_view_trigger() FROM PUBLIC;
ALTER FUNCTION filter_view_trigger() SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;
REVOKE ALL ON FUNCTION _filter_view_changed(text, jsonb, text, jsonb) FROM PUBLIC;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY['add_filters_from_abi(text, jsonb, text[], text, bigint)', 'set_view(text, jsonb)']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO eventeum_admin', f);
    END LOOP;
END
$$;

-- Views for the filters there are; they are left out of the extension (the
-- trigger drops them from it), so that pg_dump keeps them with the user's
-- objects that use them.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT id FROM contract_event_filters ORDER BY created_at, id LOOP
        BEGIN
            UPDATE contract_event_filters SET definition = definition WHERE id = f.id;
        EXCEPTION WHEN duplicate_table THEN
            RAISE NOTICE 'filter "%" gets no typed view: its default name is taken', f.id
                USING HINT = 'give it one with eventeum.set_view(id, ''{"name": "..."}'')';
            UPDATE contract_event_filters SET definition = definition || '{"view": false}' WHERE id = f.id;
        END;
    END LOOP;
END
$$;

-- config_version's one row is the extension's own (CREATE EXTENSION inserts
-- it): pg_dump no longer writes it, since a dump that carried it could not be
-- restored (a duplicate key).
SELECT pg_catalog.pg_extension_config_dump('config_version', 'WHERE false');
