-- eventeum's roles and privileges as they are now. CREATE EXTENSION runs this
-- file last (see src/lib.rs), once every function exists, SQL and Rust alike.
-- It runs with search_path set to the extension's schema.

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
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventeum_consumer') THEN
        CREATE ROLE eventeum_consumer NOLOGIN;
    END IF;
END
$$;
GRANT eventeum_reader TO eventeum_admin;

-- Privileges -----------------------------------------------------------------
-- PUBLIC gets nothing. Management goes through SECURITY DEFINER functions with
-- a fixed search_path; readers see events and status but never node URLs or
-- broker credentials.
REVOKE ALL ON SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA eventeum FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventeum FROM PUBLIC;
GRANT USAGE ON SCHEMA eventeum TO eventeum_reader, eventeum_admin, eventeum_consumer;
-- The kind tables: readers read them through typed views (security_invoker);
-- each table grants SELECT to eventeum_reader when it is made.
REVOKE ALL ON SCHEMA eventeum_store FROM PUBLIC;
GRANT USAGE ON SCHEMA eventeum_store TO eventeum_reader, eventeum_admin;

GRANT SELECT ON contract_events, event_kinds, event_nodes, event_sources, event_partitions, retention_log, view_indexes, undecodable_logs, blocks, transactions, node_status, backfill_status,
                node_state, recent_blocks, filter_backfill, contract_event_filters, transaction_monitors,
                config_version, metrics, address_sets, address_set_members, member_backfill
   TO eventeum_reader;
-- Columns without secrets: selecting url or options is a permission error.
GRANT SELECT (name, options, created_at) ON nodes TO eventeum_reader;
GRANT SELECT (name, kind, created_at) ON broadcasters TO eventeum_reader;
-- The admin reads everything, secrets included, and changes it only through the functions.
GRANT SELECT ON ALL TABLES IN SCHEMA eventeum TO eventeum_admin;
-- Set members are the one table an application writes directly (an INSERT
-- from its own trigger, say); its checks and triggers guard it as watch() does.
GRANT INSERT, UPDATE, DELETE ON address_set_members TO eventeum_admin;
-- ...and its statement trigger bumps config_version for whoever wrote it.
ALTER FUNCTION bump_config_version() SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;

-- The typed views' trigger creates views and indexes as the owner; views
-- read with their reader's privileges (security_invoker), which includes
-- the function their bytea columns call.
ALTER FUNCTION filter_view_trigger() SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp;
GRANT EXECUTE ON FUNCTION parameter_bytes(text) TO eventeum_reader;

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

-- Consumers (eventeum_consumer) may call poll and ack, each for the groups
-- granted to them (grant_consumer_group); the admin may consume every group.
-- Readers read; they change no delivery state.
DO $$
DECLARE
    admin_functions text[] := ARRAY['add_node', 'remove_node', 'add_filter', 'remove_filter',
        'add_transaction_monitor', 'remove_transaction_monitor', 'add_broadcaster', 'remove_broadcaster',
        'list_broadcasters', 'replay_dead_letters', 'create_consumer_group', 'grant_consumer_group',
        'revoke_consumer_group', 'publish', 'create_address_set', 'drop_address_set', 'watch', 'unwatch',
        'add_filters_from_abi', 'set_view'];
    reader_functions text[] := ARRAY['list_filters', 'list_transaction_monitors', 'health', 'prometheus'];
    consumer_functions text[] := ARRAY['poll', 'ack'];
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature,
                    CASE WHEN p.proname = ANY (reader_functions) THEN 'eventeum_reader'
                         WHEN p.proname = ANY (consumer_functions) THEN 'eventeum_consumer, eventeum_admin'
                         ELSE 'eventeum_admin' END AS grantees
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'eventeum'::regnamespace
                AND p.proname = ANY (admin_functions || reader_functions || consumer_functions)
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, eventeum, pg_temp',
                       f.signature);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f.signature, f.grantees);
    END LOOP;
END
$$;

-- The worker serves one database (eventeum.database). The extension may be
-- created in another (pg_restore does so), but nothing configured there is
-- followed: say so now; the API refuses to configure it (55000).
DO $$
BEGIN
    IF current_setting('eventeum.database', true) IS DISTINCT FROM current_database()
       AND current_setting('eventeum.database', true) IS NOT NULL THEN
        RAISE WARNING 'eventeum''s worker serves database "%", not "%"', current_setting('eventeum.database', true), current_database()
            USING HINT = 'functions that configure eventeum refuse to run here; set eventeum.database and restart to serve this database';
    END IF;
END
$$;
