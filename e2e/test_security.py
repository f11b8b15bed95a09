"""Roles and secrets: what eventeum_admin, eventeum_reader and a role with no
grant may do, and that node URLs with credentials never leak."""

import json

import psycopg
import pytest
from harness import free_port, wait_until

# Every function the extension defines, with arguments that would succeed or
# fail on their own merits: a permission error must come first.
MANAGEMENT_CALLS = [
    "SELECT eventeum.add_node('sec_x', 'http://127.0.0.1:1')",
    "SELECT eventeum.remove_node('sec_x')",
    "SELECT eventeum.add_filter('{}'::jsonb)",
    "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 x)')",
    "SELECT eventeum.remove_filter('sec_x')",
    "SELECT eventeum.add_transaction_monitor('{}'::jsonb)",
    "SELECT eventeum.remove_transaction_monitor('sec_x')",
    "SELECT eventeum.add_broadcaster('sec_x', 'http', '{}')",
    "SELECT eventeum.remove_broadcaster('sec_x')",
    "SELECT * FROM eventeum.list_broadcasters()",
    "SELECT eventeum.replay_dead_letters()",
    "SELECT eventeum.create_consumer_group('sec_x')",
    "SELECT eventeum.create_address_set('sec_x')",
    "SELECT eventeum.drop_address_set('sec_x')",
    "SELECT eventeum.watch('sec_x', '0x5FbDB2315678afecb367f032d93F642f64180aa3')",
    "SELECT eventeum.unwatch('sec_x', '0x5FbDB2315678afecb367f032d93F642f64180aa3')",
    "SELECT eventeum.set_view('sec_x', 'false')",
    "SELECT eventeum.add_filters_from_abi('*', '[]')",
    "SELECT eventeum._filter_view_changed(NULL, NULL, NULL, NULL)",
    "INSERT INTO eventeum.address_set_members (set_name, address) VALUES ('sec_x', '0x' || repeat('1', 40))",
    "SELECT eventeum.grant_consumer_group('sec_x', 'sec_reader')",
    "SELECT eventeum.revoke_consumer_group('sec_x', 'sec_reader')",
    "SELECT * FROM eventeum.poll('sec_x')",
    "SELECT eventeum.ack('sec_x', ARRAY['m'])",
    "SELECT eventeum.require_consumer('sec_x')",
    "SELECT eventeum.require_served_database()",
    "SELECT eventeum.publish('d', 'k', '{}')",
    "SELECT eventeum.wake_relay_at_commit()",
    "SELECT eventeum.destination('http', '{}', 'BLOCK', NULL)",
    "INSERT INTO eventeum.nodes (name, url, options) VALUES ('sec_x', 'http://x', '{}')",
    # contract_events is a view of the kind tables, whose keys these name.
    "UPDATE eventeum.event_sources SET node = 'x'",
    "DELETE FROM eventeum.outbox",
    "UPDATE eventeum.config_version SET version = 0",
]
READER_FUNCTIONS = {"list_filters", "list_transaction_monitors", "health", "prometheus"}
CONSUMER_FUNCTIONS = {"poll", "ack"}
# What typed views call as their reader (security_invoker), and the compact
# types' functions their operators call: pure, so not SECURITY DEFINER.
TYPE_FUNCTIONS = {f"{t}_{f}" for t in ("address", "hash")
                  for f in ("in", "out", "recv", "send", "eq", "ne", "lt", "le", "gt", "ge", "cmp", "hash",
                            "hash_extended")}
VIEW_FUNCTIONS = {"parameter_bytes"} | TYPE_FUNCTIONS
ADMIN_FUNCTIONS = {"add_node", "remove_node", "add_filter", "remove_filter", "add_transaction_monitor",
                   "remove_transaction_monitor", "add_broadcaster", "remove_broadcaster", "list_broadcasters",
                   "replay_dead_letters", "create_consumer_group", "grant_consumer_group", "revoke_consumer_group",
                   "publish", "create_address_set", "drop_address_set", "watch", "unwatch",
                   "add_filters_from_abi", "set_view"}
SECRET = "pa55word-s3cret"
API_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def roles(cluster):
    members = {"sec_reader": "eventeum_reader", "sec_admin": "eventeum_admin", "sec_nobody": None}
    with cluster.connect() as conn:
        for role, group in members.items():
            conn.execute(f"DROP ROLE IF EXISTS {role}")
            conn.execute(f"CREATE ROLE {role} LOGIN")
            if group:
                conn.execute(f"GRANT {group} TO {role}")
    yield members
    with cluster.connect() as conn:
        for role in members:
            conn.execute(f"DROP ROLE {role}")


def connect_as(cluster, role):
    return psycopg.connect(cluster.conninfo().replace("user=postgres", f"user={role}"), autocommit=True)


def denied(conn, sql, params=()):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql, params)


def test_roles_exist_and_public_gets_nothing(db):
    assert {r for (r,) in db.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN ('eventeum_admin', 'eventeum_reader', 'eventeum_consumer')")} == \
        {"eventeum_admin", "eventeum_reader", "eventeum_consumer"}
    assert db.execute("SELECT pg_has_role('eventeum_admin', 'eventeum_reader', 'MEMBER')").fetchone()[0]
    public_functions = db.execute("""
        SELECT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'eventeum'::regnamespace
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))""").fetchall()
    assert public_functions == []
    public_relations = db.execute("""
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = 'eventeum'::regnamespace AND c.relacl IS NOT NULL
           AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)""").fetchall()
    assert public_relations == []


def test_functions_each_role_may_execute(db):
    def executable(role):
        return {name for (name,) in db.execute("""
            SELECT DISTINCT p.proname FROM pg_proc p
             WHERE p.pronamespace = 'eventeum'::regnamespace
               AND has_function_privilege(%s, p.oid, 'EXECUTE')""", (role,))}
    assert executable("eventeum_reader") == READER_FUNCTIONS | VIEW_FUNCTIONS
    assert executable("eventeum_consumer") == CONSUMER_FUNCTIONS
    assert executable("eventeum_admin") == READER_FUNCTIONS | VIEW_FUNCTIONS | CONSUMER_FUNCTIONS | ADMIN_FUNCTIONS
    # What they may execute runs as the owner, with a search_path that cannot be hijacked.
    loose = db.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = 'eventeum'::regnamespace AND p.proname = ANY (%s)
           AND NOT (p.prosecdef AND 'search_path=pg_catalog, eventeum, pg_temp' = ANY (p.proconfig))""",
                       (sorted(READER_FUNCTIONS | CONSUMER_FUNCTIONS | ADMIN_FUNCTIONS),)).fetchall()
    assert loose == []


def test_reader_is_denied_every_management_call(cluster, roles):
    with connect_as(cluster, "sec_reader") as reader:
        for sql in MANAGEMENT_CALLS:
            denied(reader, sql)


def test_reader_reads_events_and_status_but_no_secrets(cluster, roles, db):
    db.execute("SELECT eventeum.add_broadcaster('sec_rabbit', 'rabbitmq', %s)",
               (json.dumps({"url": f"amqp://guest:{SECRET}@127.0.0.1:1/%2f", "exchange": "x"}),))
    db.execute("SELECT eventeum.create_consumer_group('sec_group')")
    try:
        with connect_as(cluster, "sec_reader") as reader:
            for relation in ("contract_events", "blocks", "transactions", "undecodable_logs", "node_status",
                             "backfill_status", "metrics", "contract_event_filters", "transaction_monitors"):
                reader.execute(f"SELECT count(*) FROM eventeum.{relation}").fetchone()
            assert reader.execute("SELECT eventeum.health() ->> 'status'").fetchone()[0] in ("UP", "DOWN")
            reader.execute("SELECT * FROM eventeum.list_filters()").fetchall()
            reader.execute("LISTEN eventeum_contract_events")
            assert ("default",) in reader.execute("SELECT name FROM eventeum.nodes").fetchall()
            assert ("sec_rabbit",) in reader.execute("SELECT name FROM eventeum.broadcasters").fetchall()
            denied(reader, "SELECT url FROM eventeum.nodes")
            denied(reader, "SELECT * FROM eventeum.nodes")
            denied(reader, "SELECT options FROM eventeum.broadcasters")
            for relation in ("outbox", "outbox_pending", "dead_letters", "counters", "broadcaster_state"):
                denied(reader, f"SELECT * FROM eventeum.{relation}")
            shown = json.dumps(reader.execute("SELECT eventeum.health()").fetchone()[0])
            assert SECRET not in shown
        with connect_as(cluster, "sec_admin") as admin:
            urls = dict(admin.execute("SELECT name, url FROM eventeum.nodes").fetchall())
            assert urls["default"].startswith("http://127.0.0.1:")
            options = admin.execute("SELECT options FROM eventeum.broadcasters WHERE name = 'sec_rabbit'").fetchone()[0]
            assert SECRET in options["url"], "the admin reads the secret itself"
            admin.execute("SELECT count(*) FROM eventeum.outbox_pending").fetchone()
            listed = admin.execute("SELECT b FROM eventeum.list_broadcasters() b WHERE b->>'name' = 'sec_rabbit'")
            assert SECRET not in json.dumps(listed.fetchone()[0]), "listings redact it even for the admin"
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('sec_rabbit')")
        db.execute("SELECT eventeum.remove_broadcaster('sec_group')")


def test_admin_manages_through_the_functions_only(cluster, roles, anvil):
    with connect_as(cluster, "sec_admin") as admin:
        admin.execute("SELECT eventeum.add_node('sec_node', %s, '{\"pollingInterval\": 100}')", (anvil.url,))
        fid = admin.execute("SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', "
                            "'Ping(uint256 x)', 'sec_node')").fetchone()[0]
        assert admin.execute("SELECT count(*) FROM eventeum.list_filters() f WHERE f->>'id' = %s",
                             (fid,)).fetchone()[0] == 1
        admin.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        admin.execute("SELECT eventeum.remove_node('sec_node')")
        denied(admin, "DELETE FROM eventeum_store.events_json")
        denied(admin, "INSERT INTO eventeum.nodes (name, url, options) VALUES ('sec_x', 'http://x', '{}')")


def test_a_role_without_grants_can_do_nothing(cluster, roles, db):
    everything = [f"SELECT count(*) FROM eventeum.{name}" for (name,) in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'eventeum'::regnamespace AND relkind IN ('r', 'v')")]
    with connect_as(cluster, "sec_nobody") as nobody:
        for sql in MANAGEMENT_CALLS + everything + ["SELECT eventeum.health()", "SELECT eventeum.prometheus()",
                                                    "SELECT * FROM eventeum.poll('g')"]:
            denied(nobody, sql)


def test_node_url_credentials_never_reach_the_log_or_status(cluster, roles, db):
    closed = free_port()
    url = f"http://carol:{SECRET}@127.0.0.1:{closed}/v3/{API_KEY}?apikey={SECRET}x"
    with connect_as(cluster, "sec_admin") as admin:
        # Bad input quoting the URL: the error is reported without it.
        for bad_url, options in [(f"http://carol:{SECRET}@/v3/{API_KEY}", "{}"),
                                 (url, '{"blockStrategy": "PUBSUB"}')]:
            with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
                admin.execute("SELECT eventeum.add_node('sec_leaky', %s, %s)", (bad_url, options))
            assert SECRET not in str(error.value) and API_KEY not in str(error.value)
        admin.execute("SELECT eventeum.add_node('sec_leaky', %s, %s)",
                      (url, '{"pollingInterval": 100, "healthcheckInterval": 200}'))
    try:
        def down():
            row = db.execute("SELECT status, last_error FROM eventeum.node_status WHERE name = 'sec_leaky'").fetchone()
            return row if row and row[0] == "DOWN" and row[1] and "not reached" not in row[1] else None
        status, last_error = wait_until(down, timeout=30, what="the unreachable node to be DOWN")
        # Let the follower retry a few times, each failure logged.
        wait_until(lambda: cluster.log_text().count("sec_leaky") >= 3, timeout=30, what="logged retries")
        health = json.dumps(db.execute("SELECT eventeum.health()").fetchone()[0])
        for shown in (last_error, health, cluster.log_text()):
            assert SECRET not in shown and API_KEY not in shown and "carol" not in shown
        assert "127.0.0.1" in last_error, "the error still says where it failed"
    finally:
        db.execute("SELECT eventeum.remove_node('sec_leaky')")
