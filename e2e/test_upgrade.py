"""Upgrades: the previous release's install script, then ALTER EXTENSION
eventeum UPDATE, gives the same schema as a fresh install."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import PG_CONFIG, keccak256, to_checksum

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "sql" / "releases"

# What a schema is made of, each as sorted text rows, for objects in schema eventeum.
DESCRIBE = {
    "members": """
        SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
          FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
         WHERE e.extname = 'eventeum' AND d.deptype = 'e'""",
    "relations": """
        SELECT c.relname || ' ' || c.relkind::text || ' ' || COALESCE(c.relacl::text, '') || ' '
               || COALESCE(obj_description(c.oid, 'pg_class'), '')
          FROM pg_class c WHERE c.relnamespace = 'eventeum'::regnamespace""",
    "columns": """
        SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
               || a.attnotnull::text || ' ' || COALESCE(pg_get_expr(ad.adbin, ad.adrelid), '') || ' '
               || COALESCE(a.attacl::text, '') || ' ' || COALESCE(col_description(c.oid, a.attnum), '')
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
         WHERE c.relnamespace = 'eventeum'::regnamespace""",
    "constraints": """
        SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'eventeum'::regnamespace""",
    "indexes": "SELECT indexdef FROM pg_indexes WHERE schemaname = 'eventeum'",
    "triggers": """
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'eventeum'::regnamespace AND NOT t.tgisinternal""",
    "views": "SELECT viewname || ' ' || definition FROM pg_views WHERE schemaname = 'eventeum'",
    "functions": """
        SELECT pg_get_functiondef(p.oid) || COALESCE(p.proacl::text, '') || ' '
               || COALESCE(obj_description(p.oid, 'pg_proc'), '')
          FROM pg_proc p WHERE p.pronamespace = 'eventeum'::regnamespace""",
    "types": """
        SELECT t.typname || ' ' || COALESCE(string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder), '')
          FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
         WHERE t.typnamespace = 'eventeum'::regnamespace GROUP BY t.typname""",
    "dumped": """
        SELECT c::regclass::text || ' ' || condition
          FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, condition) WHERE e.extname = 'eventeum'""",
    "schema": """
        SELECT nspname || ' ' || COALESCE(nspacl::text, '') FROM pg_namespace WHERE nspname = 'eventeum'""",
}


def describe(conn):
    return {part: sorted(r[0] for r in conn.execute(sql)) for part, sql in DESCRIBE.items()}


def versions():
    """Released versions with a frozen install script, oldest first."""
    return sorted(p.name.split("--")[1].removesuffix(".sql") for p in RELEASES.glob("eventeum--*.sql"))


@pytest.fixture(scope="module")
def released_scripts():
    """Puts the frozen install scripts of earlier releases where CREATE EXTENSION finds them."""
    extension_dir = Path(subprocess.check_output([PG_CONFIG, "--sharedir"], text=True).strip()) / "extension"
    placed = []
    for script in RELEASES.glob("eventeum--*.sql"):
        target = extension_dir / script.name
        if not target.exists():
            shutil.copy(script, target)
            placed.append(target)
    yield
    for target in placed:
        target.unlink()


@pytest.fixture
def scratch_databases(cluster):
    names = []

    def create(name):
        with cluster.connect("postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        names.append(name)
        return cluster.connect(name)

    yield create
    with cluster.connect("postgres") as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("previous", versions())
def test_update_from_a_previous_release_equals_a_fresh_install(released_scripts, scratch_databases, previous):
    with scratch_databases("upgrade_fresh") as fresh:
        fresh.execute("CREATE EXTENSION eventeum")
        current = fresh.execute("SELECT extversion FROM pg_extension WHERE extname = 'eventeum'").fetchone()[0]
        expected = describe(fresh)
    assert previous != current

    with scratch_databases("upgrade_old") as old:
        old.execute("CREATE EXTENSION eventeum VERSION %s" % psql_literal(previous))
        assert describe(old) != expected, "the old release differs, or this test proves nothing"
        # Data written under the old release survives the update.
        # (Straight into the table: the worker does not serve this database,
        # so the API refuses to configure it; a restored dump writes it so too.)
        old.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES ('kept', 'http://127.0.0.1:8545', '{}')")
        old.execute("ALTER EXTENSION eventeum UPDATE")
        assert old.execute("SELECT extversion FROM pg_extension WHERE extname = 'eventeum'").fetchone()[0] == current
        upgraded = describe(old)
        assert old.execute("SELECT name FROM eventeum.nodes").fetchall() == [("kept",)]

    for part in DESCRIBE:
        assert upgraded[part] == expected[part], f"{part} differ after ALTER EXTENSION UPDATE from {previous}"


def test_pending_messages_stay_queued_across_the_update_to_0_3_0(released_scripts, scratch_databases):
    """0.3.0 moved the list of pending outbox rows into eventeum.outbox_pending:
    what 0.2.0 had not delivered is still given out after the update, and
    nothing already delivered comes back."""
    with scratch_databases("upgrade_queue") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.2.0'")
        conn.execute("SELECT eventeum.create_consumer_group('readers', ARRAY['APP'])")
        for n in range(3):
            conn.execute("SELECT eventeum.publish('jobs', %s, %s)", (f"k{n}", f'{{"n": {n}}}'))
        first = conn.execute("SELECT message_id FROM eventeum.poll('readers', 1)").fetchone()[0]
        assert conn.execute("SELECT eventeum.ack('readers', %s)", ([first],)).fetchone()[0] == 1
        conn.execute("ALTER EXTENSION eventeum UPDATE TO '0.3.0'")
        left = conn.execute("SELECT key, payload FROM eventeum.poll('readers') ORDER BY key").fetchall()
        assert left == [("k1", {"n": 1}), ("k2", {"n": 2})]
        assert conn.execute("SELECT count(*) FROM eventeum.outbox_pending").fetchone()[0] == 2


def test_filters_followed_before_0_4_0_keep_their_place(released_scripts, scratch_databases):
    """0.4.0 starts a filter at its registration unless it has a
    filter_backfill row. The update gives one to every filter 0.3.0 already
    followed (its node has a checkpoint), so none is started over; a filter
    whose node was never reached is left to start at its registration."""
    with scratch_databases("upgrade_filters") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.3.0'")
        # The worker does not serve this database: the rows are written as a
        # restored dump writes them.
        for node in ("followed", "unreached"):
            conn.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES (%s, 'http://127.0.0.1:1', '{}')",
                         (node,))
            conn.execute("""INSERT INTO eventeum.contract_event_filters
                                (id, node, contract_address, event_name, event_signature, definition)
                            VALUES (%s, %s, %s, 'Ping', %s, '{}')""",
                         (f"f-{node}", node, "0x" + "11" * 20, "0x" + "22" * 32))
        followed = "f-followed"
        conn.execute("INSERT INTO eventeum.node_state (node, latest_block) VALUES ('followed', 1234)")
        conn.execute("ALTER EXTENSION eventeum UPDATE TO '0.4.0'")
        rows = conn.execute("SELECT filter_id, from_block, to_block, current_block "
                            "FROM eventeum.filter_backfill").fetchall()
        assert rows == [(followed, 0, 1234, 1234)]


def test_kafka_options_of_0_4_0_move_to_named_options(released_scripts, scratch_databases):
    """0.5.0 no longer passes librdkafka properties through. The update moves
    those with a named option to it; any other stays, with a WARNING, and the
    relay refuses to use the broadcaster until it is added again."""
    with scratch_databases("upgrade_kafka") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.4.0'")
        named = {"bootstrapServers": "k:9092", "librdkafka": {"linger.ms": "5", "compression.type": "lz4",
                                                                "client.id": "indexer"}}
        risky = {"bootstrapServers": "k:9092", "librdkafka": {"batch.size": 1000,
                                                                "plugin.library.paths": "/tmp/x.so"}}
        for name, options in (("named", named), ("risky", risky)):
            conn.execute("INSERT INTO eventeum.broadcasters (name, kind, options) VALUES (%s, 'kafka', %s)",
                         (name, json.dumps(options)))
        # An HTTP broadcaster of 0.4.0 keeps posting the whole message.
        conn.execute("INSERT INTO eventeum.broadcasters (name, kind, options) "
                     "VALUES ('hook', 'http', '{\"contractEventsUrl\": \"http://h/e\"}')")
        warnings = []
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
        conn.execute("ALTER EXTENSION eventeum UPDATE TO '0.5.0'")
        options = dict(conn.execute("SELECT name, options FROM eventeum.broadcasters").fetchall())
        assert options["named"] == {"bootstrapServers": "k:9092", "lingerMs": 5, "compression": "lz4",
                                    "clientId": "indexer"}
        assert options["risky"] == {"bootstrapServers": "k:9092", "batchSize": 1000,
                                    "librdkafka": risky["librdkafka"]}
        assert any("risky" in w and "plugin.library.paths" in w for w in warnings), warnings
        assert not any('"named"' in w for w in warnings), warnings
        assert options["hook"] == {"contractEventsUrl": "http://h/e", "envelope": True}


def test_node_range_caps_and_outbox_payloads_of_0_4_0_move(released_scripts, scratch_databases):
    """0.5.0 gives maxBlocksToSync Eventeum's meaning: the range cap it was in
    0.4.0 moves to maxBlockRange, with a WARNING when it was set. Outbox
    payloads become the text brokers receive, still pending and unchanged
    in value."""
    with scratch_databases("upgrade_nodes") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.4.0'")
        conn.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES "
                     "('capped', 'http://n:1', '{\"maxBlocksToSync\": 500, \"pollingInterval\": 100}'), "
                     "('plain', 'http://n:1', '{\"maxBlocksToSync\": 0}')")
        conn.execute("SELECT eventeum.create_consumer_group('readers', ARRAY['APP'])")
        conn.execute("SELECT eventeum.publish('jobs', 'k', '{\"b\": [1, 2], \"a\": \"x\"}')")
        warnings = []
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
        conn.execute("ALTER EXTENSION eventeum UPDATE TO '0.5.0'")
        options = dict(conn.execute("SELECT name, options FROM eventeum.nodes").fetchall())
        assert options["capped"] == {"maxBlockRange": 500, "maxBlocksToSync": 0, "pollingInterval": 100,
                                     "confirmedIsFinal": False}
        assert options["plain"] == {"maxBlockRange": 0, "maxBlocksToSync": 0, "confirmedIsFinal": False}
        assert [w for w in warnings if "maxBlockRange" in w] == [
            'eventeum: node "capped": maxBlocksToSync 500 is now maxBlockRange (blocks per eth_getLogs); '
            "maxBlocksToSync now means what it meant in Eventeum"]
        assert conn.execute("SELECT pg_typeof(payload)::text, payload::jsonb FROM eventeum.outbox").fetchall() == \
            [("text", {"a": "x", "b": [1, 2]})]
        assert conn.execute("SELECT payload FROM eventeum.poll('readers')").fetchall() == \
            [({"a": "x", "b": [1, 2]},)]


def psql_literal(text):
    assert text.replace(".", "").isalnum()
    return f"'{text}'"


def test_upgrade_scripts_lead_from_every_release_to_the_current_version():
    """A chain of sql/eventeum--<old>--<new>.sql from each frozen release to
    the version in Cargo.toml, one script per release and no stray one."""
    current = next(line.split('"')[1] for line in (ROOT / "Cargo.toml").read_text().splitlines()
                   if line.startswith("version = "))
    steps = dict(p.name.removesuffix(".sql").split("--")[1:] for p in (ROOT / "sql").glob("eventeum--*--*.sql"))
    released = versions()
    assert sorted(steps) == released, "one upgrade script from each release"
    for version in released:
        seen = {version}
        while version != current:
            version = steps[version]
            assert version not in seen, "the upgrade scripts loop"
            seen.add(version)


def test_filters_from_before_0_7_0_get_their_typed_views(released_scripts, scratch_databases):
    """0.7.0 gives every filter a typed view: the update creates one for each
    filter there is (none, with a NOTICE, where the default name is taken),
    outside the extension, so that pg_dump keeps it. (This library makes the
    views in the 0.8.0 update, over the kind tables, so the chain goes on to it.)"""
    transfer = {"eventName": "Transfer",
                "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS", "name": "from"},
                                                {"position": 1, "type": "ADDRESS", "name": "to"}],
                "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256", "name": "value"}]}
    with scratch_databases("upgrade_views") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.6.0'")
        conn.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES ('default', 'http://127.0.0.1:8545', '{}')")
        for fid in ("Old Transfers", "nodes"):
            definition = {"id": fid, "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                          "eventSpecification": transfer, "node": "default"}
            conn.execute("""INSERT INTO eventeum.contract_event_filters
                                   (id, node, contract_address, event_name, event_signature, definition)
                            VALUES (%s, 'default', %s, 'Transfer', '0x', %s)""",
                         (fid, definition["contractAddress"], json.dumps(definition)))
        conn.execute("ALTER EXTENSION eventeum UPDATE")
        columns = conn.execute("""SELECT attname::text FROM pg_attribute WHERE attrelid = 'eventeum.old_transfers'::regclass
                                     AND attnum > 0 ORDER BY attnum""").fetchall()
        assert [c for (c,) in columns][:3] == ["from", "to", "value"]
        assert conn.execute("""SELECT count(*) FROM pg_depend WHERE objid = 'eventeum.old_transfers'::regclass
                                  AND deptype = 'e'""").fetchone() == (0,)
        assert conn.execute("SELECT definition -> 'view' FROM eventeum.contract_event_filters WHERE id = 'nodes'"
                            ).fetchone() == (False,)
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'eventeum.nodes'::regclass").fetchone() == ("r",)


def test_the_0_8_0_update_moves_events_into_kind_tables(released_scripts, scratch_databases):
    """contract_events' rows move into the kind tables: a typed filter's rows
    into its kind's table, with a column per value; a filter with an array,
    and a removed filter's rows, into the JSON table. contract_events reads
    the same rows after the update, JSON lists included, and the typed
    view shows the values."""
    transfer = {"eventName": "Transfer",
                "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS", "name": "from"},
                                                {"position": 1, "type": "ADDRESS", "name": "to"}],
                "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256", "name": "value"}]}
    listed = {"eventName": "Listed",
              "nonIndexedParameterDefinitions": [{"position": 0, "type": "UINT256[]", "name": "amounts"}]}
    alice, bob = to_checksum("0x" + "11" * 20), to_checksum("0x" + "22" * 20)

    def row(i, filter_id, name, indexed, non_indexed):
        block_hash, tx = "0x" + f"{i:064x}", "0x" + f"{i + 1000:064x}"
        return (f"{tx}-{block_hash}-{i}", filter_id, name, to_checksum("0x" + "5f" * 20), i, block_hash, tx, i,
                json.dumps(indexed), json.dumps(non_indexed), "0x" + f"{i:064x}",
                "CONFIRMED" if i % 2 else "UNCONFIRMED", 1700000000 + i)

    rows = [row(i, "transfers", "Transfer",
                [{"type": "address", "value": alice}, {"type": "address", "value": bob}],
                [{"type": "uint256", "value": 10**30 + i}]) for i in range(1, 6)]
    rows.append(row(6, "listed", "Listed", [], [{"type": "uint256[]", "value": [{"type": "uint256", "value": 7}]}]))
    rows.append(row(7, "gone", "Gone", [], [{"type": "bool", "value": 1}]))
    with scratch_databases("upgrade_moves") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.7.0'")
        conn.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES ('default', 'http://127.0.0.1:8545', '{}')")
        for fid, spec in (("transfers", transfer), ("listed", listed)):
            definition = {"id": fid, "contractAddress": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                          "eventSpecification": spec, "node": "default"}
            conn.execute("""INSERT INTO eventeum.contract_event_filters
                                   (id, node, contract_address, event_name, event_signature, definition)
                            VALUES (%s, 'default', %s, %s, %s, %s)""",
                         (fid, definition["contractAddress"], spec["eventName"],
                          "0x" + f"{[r[1] for r in rows].index(fid) + 1:064x}", json.dumps(definition)))
        topic0 = {"transfers": "0x" + keccak256(b"Transfer(address,address,uint256)").hex(),
                  "listed": "0x" + keccak256(b"Listed(uint256[])").hex(), "gone": "0x" + "77" * 32}
        for fid in ("transfers", "listed"):
            conn.execute("UPDATE eventeum.contract_event_filters SET event_signature = %s WHERE id = %s",
                         (topic0[fid], fid))
        for r in rows:
            conn.execute("""INSERT INTO eventeum.contract_events
                                   (id, filter_id, node, name, address, block_number, block_hash, transaction_hash,
                                    log_index, indexed_parameters, non_indexed_parameters,
                                    event_specification_signature, status, block_timestamp)
                            VALUES (%s, %s, 'default', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""", r)
        for fid, topic in topic0.items():
            conn.execute("UPDATE eventeum.contract_events SET event_specification_signature = %s WHERE filter_id = %s",
                         (topic, fid))
        columns = ("id, filter_id, node, name, address, block_number, block_hash, transaction_hash, log_index, "
                   "indexed_parameters, non_indexed_parameters, event_specification_signature, correlation_id, "
                   "status, block_timestamp, created_at, updated_at")
        before = conn.execute(f"SELECT {columns} FROM eventeum.contract_events ORDER BY id").fetchall()
        conn.execute("ALTER EXTENSION eventeum UPDATE")
        after = conn.execute(f"SELECT {columns} FROM eventeum.contract_events ORDER BY id").fetchall()
        assert after == before
        tables = dict(conn.execute("SELECT kind, table_name FROM eventeum.event_kinds").fetchall())
        assert set(tables) == {"address!,address!,uint256", "(values as Eventeum's JSON lists)"}
        counts = {kind: conn.execute(f"SELECT count(*) FROM eventeum_store.{name}").fetchone()[0]
                  for kind, name in tables.items()}
        assert counts == {"address!,address!,uint256": 5, "(values as Eventeum's JSON lists)": 2}
        assert conn.execute('SELECT "to", value, status::text FROM eventeum.transfers ORDER BY block_number').fetchall() \
            == [(bob, 10**30 + i, "CONFIRMED" if i % 2 else "UNCONFIRMED") for i in range(1, 6)]
        assert conn.execute("SELECT to_regclass('eventeum.contract_events_0_7')").fetchone() == (None,)
        assert conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'eventeum.contract_events'::regclass"
                            ).fetchone() == ("v",)


def test_the_0_8_0_update_moves_a_million_events(released_scripts, scratch_databases):
    """The update at scale: 1,000,000 rows of one typed filter, over three
    partitions' worth of blocks, move in the update's transaction; the
    contract_events view renders each exactly as the table held it, and the
    partitions made by the update script are not extension members (pg_dump
    would leave them out)."""
    rows = 1_000_000
    spec = {"eventName": "Transfer",
            "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS", "name": "from"},
                                            {"position": 1, "type": "ADDRESS", "name": "to"}],
            "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256", "name": "value"}]}
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    topic0 = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
    # Each row's text hashed, the hashes summed: the same rows give the same digest.
    digest = """SELECT count(*), sum(('x' || left(md5(concat_ws('|', id, filter_id, node, name, address,
                           block_number, block_hash, transaction_hash, log_index, indexed_parameters::text,
                           non_indexed_parameters::text, event_specification_signature, status,
                           block_timestamp)), 15))::bit(60)::bigint)
                  FROM eventeum.contract_events"""
    with scratch_databases("upgrade_million") as conn:
        conn.execute("CREATE EXTENSION eventeum VERSION '0.7.0'")
        conn.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES ('default', 'http://127.0.0.1:8545', '{}')")
        definition = {"id": "transfers", "contractAddress": contract, "eventSpecification": spec, "node": "default"}
        conn.execute("""INSERT INTO eventeum.contract_event_filters
                               (id, node, contract_address, event_name, event_signature, definition)
                        VALUES ('transfers', 'default', %s, 'Transfer', %s, %s)""",
                     (contract, topic0, json.dumps(definition)))
        # Addresses of decimal digits only: their EIP-55 form is themselves.
        conn.execute("""
            INSERT INTO eventeum.contract_events
                   (id, filter_id, node, name, address, block_number, block_hash, transaction_hash, log_index,
                    indexed_parameters, non_indexed_parameters, event_specification_signature, status,
                    block_timestamp)
            SELECT tx || '-' || bh || '-' || (i %% 4), 'transfers', 'default', 'Transfer', %(contract)s,
                   i / 4 * 9, bh, tx, (i %% 4)::integer,
                   jsonb_build_array(jsonb_build_object('type', 'address', 'value', '0x' || lpad((i %% 997)::text, 40, '0')),
                                     jsonb_build_object('type', 'address', 'value', '0x' || lpad((i %% 991)::text, 40, '0'))),
                   jsonb_build_array(jsonb_build_object('type', 'uint256', 'value', i::numeric * 1000000000000000000)),
                   %(topic0)s, 'CONFIRMED', 1700000000 + i / 4 * 36
              FROM generate_series(0, %(last)s) AS i,
                   LATERAL (SELECT '0x' || md5('b' || (i / 4)) || md5('B' || (i / 4)) AS bh,
                                   '0x' || md5('t' || i) || md5('T' || i) AS tx) AS h""",
                     {"contract": contract, "topic0": topic0, "last": rows - 1})
        before = conn.execute(digest).fetchone()
        assert before[0] == rows
        conn.execute("ALTER EXTENSION eventeum UPDATE")
        assert conn.execute(digest).fetchone() == before, "contract_events renders every row as it was"
        assert conn.execute("SELECT table_name, from_block, to_block FROM eventeum.event_partitions ORDER BY 2"
                            ).fetchall() == [(conn.execute("SELECT table_name FROM eventeum.event_kinds WHERE kind = %s",
                                                           ("address!,address!,uint256",)).fetchone()[0], a, a + 999_999)
                                             for a in (0, 1_000_000, 2_000_000)]
        assert conn.execute("""SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
                                WHERE d.deptype = 'e' AND d.classid = 'pg_class'::regclass
                                  AND c.relnamespace = 'eventeum_store'::regnamespace""").fetchone() == (0,)
        assert conn.execute("""SELECT sum(value), count(DISTINCT "to") FROM eventeum.transfers""").fetchone() \
            == (sum(range(rows)) * 10**18, 991)
