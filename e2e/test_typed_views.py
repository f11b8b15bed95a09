"""Typed views: each filter's events as named, typed columns, from a real
contract's logs; filters from ABI JSON as solc writes it (our TypedEvents and
EventEmitter, and Uniswap V2's pair from npm's @uniswap/v2-core 1.0.1, see
e2e/contracts/uniswap-v2/README.md); hostile names; indexes the planner
uses; readers; and a pg_dump restored into another database."""

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql
import pytest
from harness import DEPLOYER, PGBIN, ROOT, Emitter, keccak256, to_checksum, wait_until

CONTRACTS = ROOT / "e2e" / "contracts"
TYPED = CONTRACTS / "TypedEvents.json"
UNISWAP_PAIR = CONTRACTS / "uniswap-v2" / "UniswapV2Pair.json"
UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
# Quotes, a backslash, a NUL inside and spaces at both ends: the JSON (and so
# the view) has Eventeum's form of it, trimmed and without the NUL.
TEXT = b"  it's \"q\" \\ a\x00b  "
TEXT_STORED = "it's \"q\" \\ ab"


def abi_of(path: Path) -> list:
    return json.loads(path.read_text())["abi"]


def view_rows(db, view: str, columns: str = "*"):
    return db.execute(f"SELECT {columns} FROM {view} ORDER BY block_number, log_index").fetchall()


def wait_view(db, view: str, count: int = 1, timeout: float = 30):
    wait_until(lambda: db.execute(f"SELECT count(*) FROM {view}").fetchone()[0] >= count,
               timeout=timeout, what=f"{count} rows in {view}")
    rows = view_rows(db, view)
    assert len(rows) == count, rows
    return rows


def column_types(db, schema: str, view: str) -> list[tuple[str, str]]:
    return db.execute("""SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                          WHERE attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND attnum > 0
                          ORDER BY attnum""", (schema, view)).fetchall()


META = [("block_number", "bigint"), ("block_time", "timestamp with time zone"),
        ("transaction_hash", "eventeum.hash"), ("log_index", "integer"), ("status", "eventeum.event_status"),
        ("node", "text"), ("contract_address", "eventeum.address")]


def uses_index(db, plan: str, index: str) -> bool:
    """Whether `plan` scans typed-view index `index`, or (kind tables being
    partitioned) the index it made on a partition."""
    partitions = [r[0] for r in db.execute("""SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                                 WHERE i.inhparent = ('eventeum_store.' || quote_ident(%s))::regclass""",
                                             (index,)).fetchall()]
    return any(f"Index Scan Backward using {name} " in plan for name in [index] + partitions)


def view_index(db, prefix: str) -> str:
    """The index the index builder makes for a typed view's column, once it
    is ready: valid, with every partition's attached."""
    query = """SELECT v.index_name FROM eventeum.view_indexes v
                 JOIN pg_class c ON c.relname = v.index_name AND c.relnamespace = 'eventeum_store'::regnamespace
                 JOIN pg_index i ON i.indexrelid = c.oid
                WHERE v.index_name LIKE %s AND v.state = 'READY' AND i.indisvalid"""
    wait_until(lambda: len(db.execute(query, (prefix + "%",)).fetchall()) == 1, what=f"the index {prefix}*")
    return db.execute(query, (prefix + "%",)).fetchone()[0]


@pytest.fixture
def typed(anvil, cluster):
    return Emitter(anvil, artifact=TYPED)


def test_every_type_and_tuples_round_trip_into_typed_columns(db, anvil, typed):
    ids = db.execute("SELECT eventeum.add_filters_from_abi(%s, %s)",
                     (typed.address, json.dumps(abi_of(TYPED)))).fetchone()[0]
    suffix = typed.address[2:10].lower()
    assert sorted(ids) == [f"Extremes_{suffix}", f"Keyed_{suffix}", f"Ordered_{suffix}"]
    views = {i.split("_")[0]: f"eventeum.{i.lower()}" for i in ids}
    receipt = typed.call("emitAll(string)", TEXT)
    block = int(receipt["blockNumber"], 16)
    timestamp = int(anvil.rpc("eth_getBlockByNumber", hex(block), False)["timestamp"], 16)
    me, it = to_checksum(DEPLOYER), typed.address

    assert column_types(db, "eventeum", views["Extremes"][9:]) == [
        ("max", "numeric"), ("min", "numeric"), ("small", "numeric"), ("word", "bytea"), ("blob", "bytea"),
        ("emptyBlob", "bytea"), ("text", "text"), ("emptyText", "text"), ("empty", "numeric[]"),
        ("pair", "text[]"), ("grid", "jsonb"), ("yes", "boolean")] + META
    (row,) = wait_view(db, views["Extremes"])
    assert row[:12] == (Decimal(UINT256_MAX), Decimal(INT256_MIN), Decimal(-128), keccak256(b"word"),
                        bytes.fromhex("00ff10"), b"", TEXT_STORED, "", [], [me, it], [[1, 2], []], True)
    assert str(row[0]) == str(UINT256_MAX) and str(row[1]) == str(INT256_MIN)  # every digit
    assert row[12] == block and row[13].timestamp() == timestamp
    assert row[14] == receipt["transactionHash"] and row[16:] == ("CONFIRMED", "default", it)

    assert column_types(db, "eventeum", views["Ordered"][9:]) == [
        ("seq", "numeric"), ("order", "jsonb"), ("last", "jsonb")] + META
    (row,) = wait_view(db, views["Ordered"])
    legs = [{"amount": -1, "to": me}, {"amount": 2**255 - 1, "to": it}]
    assert row[:3] == (7, {"maker": me, "price": 5, "id": "0x" + keccak256(b"id").hex(), "legs": legs,
                           "open": True, "note": TEXT_STORED}, legs[1])
    # jsonb numbers are exact: the int256 maximum comes back whole.
    assert db.execute(f"""SELECT "order" -> 'legs' -> 1 ->> 'amount' FROM {views['Ordered']}""").fetchone() == \
        (str(2**255 - 1),)

    # Indexed dynamic values (string, struct, bytes) are their topic: the keccak hash, as bytea.
    # This event's kind has a column per value, so its address is an eventeum.address
    # (Extremes and Ordered, with arrays and tuples, keep Eventeum's JSON lists).
    assert column_types(db, "eventeum", views["Keyed"][9:])[:4] == [
        ("key", "bytea"), ("order", "bytea"), ("blob", "bytea"), ("to", "eventeum.address")]
    (row,) = wait_view(db, views["Keyed"])
    log = next(lg for lg in receipt["logs"] if lg["topics"][0] == "0x" + keccak256(
        b"Keyed(string,(address,uint256,bytes32,(int256,address)[],bool,string),bytes,address)").hex())
    assert row[:4] == (keccak256(b"k"), bytes.fromhex(log["topics"][2][2:]), keccak256(bytes.fromhex("beef")), me)

    # The JSON keeps Eventeum's shape; a tuple is a list of typed components.
    order = db.execute("SELECT non_indexed_parameters -> 0 FROM eventeum.contract_events WHERE filter_id = %s",
                       (ids[[i.split("_")[0] for i in ids].index("Ordered")],)).fetchone()[0]
    assert order["type"] == "(address,uint256,bytes32,(int256,address)[],bool,string)"
    assert order["value"][0] == {"type": "address", "value": me}
    assert order["value"][3]["value"][0]["value"] == [{"type": "int256", "value": -1}, {"type": "address", "value": me}]
    for i in ids:
        db.execute("SELECT eventeum.remove_filter(%s)", (i,))
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)",
                      ([i.lower() for i in ids],)).fetchone() == (0,)


def test_full_solc_abis_register_every_event(db, emitter):
    abi = json.loads((CONTRACTS / "EventEmitter.json").read_text())["abi"]
    events = [i["name"] for i in abi if i["type"] == "event"]
    ids = db.execute("SELECT eventeum.add_filters_from_abi(%s, %s)", (emitter.address, json.dumps(abi))).fetchone()[0]
    assert len(ids) == len(events) == 18
    listed = {f["id"]: f for (f,) in db.execute("SELECT eventeum.list_filters()")}
    assert {listed[i]["eventSpecification"]["eventName"] for i in ids} == set(events)
    # Again: the same ids, nothing added.
    assert db.execute("SELECT eventeum.add_filters_from_abi(%s, %s)", (emitter.address, json.dumps(abi))).fetchone()[0] == ids
    emitter.call("emitAll()")
    suffix = emitter.address[2:10].lower()
    # Every width of every Eventeum type: uints at their maximum, ints at their minimum, bytesN a prefix.
    pattern = bytes(range(1, 33))
    for group, widths in {"a": range(1, 9), "b": range(9, 17), "c": range(17, 25), "d": range(25, 33)}.items():
        for kind, sql_type, expected in (("uints", "numeric", lambda n: 2 ** (8 * n) - 1),
                                         ("ints", "numeric", lambda n: -(2 ** (8 * n - 1))),
                                         ("bytes", "bytea", lambda n: pattern[:n])):
            view = f"{kind}{group}_{suffix}"
            assert [t for _, t in column_types(db, "eventeum", view)[:8]] == [sql_type] * 8, view
            (row,) = wait_view(db, f"eventeum.{view}")
            assert list(row[:8]) == [expected(n) for n in widths], view
    (row,) = wait_view(db, f"eventeum.indexeddynamic_{suffix}")
    assert row[:3] == (keccak256(b"key"), row[1], "value") and len(row[1]) == 32
    (row,) = wait_view(db, f"eventeum.arrays_{suffix}")
    assert row[:7] == ([1, 2, UINT256_MAX], [-5, INT256_MIN], [to_checksum(DEPLOYER), emitter.address],
                       ["alpha", "beta"], [True, False], [bytes.fromhex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")], [])
    (row,) = wait_view(db, f"eventeum.misc_{suffix}")
    assert row[:7] == (to_checksum(DEPLOYER), True, UINT256_MAX, "hello" + "world", False, emitter.address, -1)
    for i in ids:
        db.execute("SELECT eventeum.remove_filter(%s)", (i,))

    # A contract no one here wrote: Uniswap V2's pair, its events only, by name.
    pair = abi_of(UNISWAP_PAIR)
    ids = db.execute("SELECT eventeum.add_filters_from_abi(%s, %s, events => %s)",
                     (emitter.address, json.dumps({"abi": pair}), ["Swap", "Sync"])).fetchone()[0]
    assert [i.split("_")[0] for i in ids] == ["Swap", "Sync"]
    assert column_types(db, "eventeum", ids[0].lower()) == [
        ("sender", "eventeum.address"), ("amount0In", "numeric"), ("amount1In", "numeric"),
        ("amount0Out", "numeric"), ("amount1Out", "numeric"), ("to", "eventeum.address")] + META
    ids += db.execute("SELECT eventeum.add_filters_from_abi('*', %s)", (json.dumps(pair),)).fetchone()[0]
    assert sorted(i for i in ids if i.endswith("_any")) == [
        "Approval_any", "Burn_any", "Mint_any", "Swap_any", "Sync_any", "Transfer_any"]
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT eventeum.add_filters_from_abi('*', %s, events => '{Nope}')", (json.dumps(pair),))
    for i in ids:
        db.execute("SELECT eventeum.remove_filter(%s)", (i,))


def test_hostile_names_are_quoted_mapped_or_refused(db, typed):
    before = db.execute("SELECT count(*) FROM eventeum.contract_event_filters").fetchone()
    # Not a Solidity identifier: the whole ABI is refused, nothing registered.
    abi = abi_of(TYPED)
    bad = json.loads(json.dumps(abi))
    next(i for i in bad if i.get("name") == "Keyed")["inputs"][3]["name"] = 'x"); DROP TABLE eventeum.nodes; --'
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT eventeum.add_filters_from_abi(%s, %s)", (typed.address, json.dumps(bad)))
    assert db.execute("SELECT count(*) FROM eventeum.contract_event_filters").fetchone() == before

    # Eventeum's eventSpecification names anything: every name becomes a quoted column.
    nasty = 'x"); DROP TABLE eventeum.nodes; --'
    names = {"key": "select", "order": "status", "blob": nasty, "to": ""}
    spec = {"eventName": "Keyed",
            "indexedParameterDefinitions": [
                {"position": 0, "type": "STRING", "name": names["key"]},
                {"position": 1, "type": "TUPLE", "name": names["order"], "components": next(
                    i for i in abi if i.get("name") == "Keyed")["inputs"][1]["components"]},
                {"position": 2, "type": "BYTES", "name": names["blob"]}],
            "nonIndexedParameterDefinitions": [{"position": 3, "type": "ADDRESS", "name": names["to"]}]}
    view = 'v"\'; DROP TABLE eventeum.nodes; --'
    fid = db.execute("SELECT eventeum.add_filter(%s)", (json.dumps(
        {"id": "it's; --", "contractAddress": typed.address, "eventSpecification": spec,
         "view": {"name": view, "index": [nasty, "p3"]}}),)).fetchone()[0]
    assert fid == "it's; --"
    assert [c for c, _ in column_types(db, "eventeum", view)][:4] == ["select", "status_", nasty, "p3"]
    typed.call("emitAll(string)", b"x")
    quoted = sql.Identifier("eventeum", view).as_string(db)
    (row,) = wait_view(db, quoted)
    assert row[:4] == (keccak256(b"k"), row[1], keccak256(bytes.fromhex("beef")), to_checksum(DEPLOYER))
    assert db.execute("SELECT count(*) FROM eventeum.nodes").fetchone()[0] >= 1
    # The default view name is derived from the id, safely.
    fid2 = db.execute("SELECT eventeum.add_filter(%s, %s, id => %s)",
                      (typed.address, "Keyed(string indexed key, (address,uint256,bytes32,(int256,address)[],bool,string)"
                                      " indexed o, bytes indexed b, address to)",
                       "Robert'); DROP TABLE eventeum.nodes;--")).fetchone()[0]
    typed.call("emitAll(string)", b"y")
    assert db.execute("SELECT definition -> 'view' FROM eventeum.contract_event_filters WHERE id = %s",
                      (fid2,)).fetchone()[0] == {"schema": "eventeum", "name": "robert_drop_table_eventeum_nodes", "index": []}
    wait_view(db, "eventeum.robert_drop_table_eventeum_nodes", 1)

    # A name that is taken, a schema that does not exist or is not the caller's.
    with pytest.raises(psycopg.errors.DuplicateTable):
        db.execute("SELECT eventeum.add_filter(%s, %s, id => 'nodes')", (typed.address, "Keyed(string indexed key)"))
    with pytest.raises(psycopg.errors.InvalidSchemaName):
        db.execute("SELECT eventeum.set_view(%s, %s)", (fid, json.dumps({"schema": "nope"})))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("SELECT eventeum.set_view(%s, %s)", (fid, json.dumps({"schema": "pg_catalog"})))
    for f in (fid, fid2):
        db.execute("SELECT eventeum.remove_filter(%s)", (f,))
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname IN (%s, 'robert_drop_table_eventeum_nodes')",
                      (view,)).fetchone() == (0,)


def explain(db, sql: str, *args) -> str:
    db.execute("SET enable_seqscan = off")
    db.execute("SET enable_bitmapscan = off")
    try:
        return "\n".join(r[0] for r in db.execute("EXPLAIN " + sql, args).fetchall())
    finally:
        db.execute("RESET enable_seqscan")
        db.execute("RESET enable_bitmapscan")


def test_indexed_lookup_uses_the_index_and_set_view_moves_and_reindexes(db, cluster, emitter):
    fid = db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
        "id": "transfers-idx", "contractAddress": emitter.address,
        "eventSpecification": next(i for i in abi_of(CONTRACTS / "EventEmitter.json") if i.get("name") == "Transfer"),
        "view": {"name": "transfers_idx", "index": ["to"]}}),)).fetchone()[0]
    alice, bob = "0x" + "11" * 20, "0x" + "22" * 20
    for to in (alice, bob, alice):
        emitter.call("transfer(address,uint256)", to, 5)
    wait_view(db, "eventeum.transfers_idx", 3)
    rows = db.execute("""SELECT "from", "to", value FROM eventeum.transfers_idx WHERE "to" = %s
                          ORDER BY block_number DESC LIMIT 50""", (to_checksum(alice),)).fetchall()
    assert rows == [(to_checksum(DEPLOYER), to_checksum(alice), 5)] * 2
    index = view_index(db, "transfers_idx_to_")
    # The compact types' operators are found through search_path (REFERENCE, "Types").
    db.execute("SET search_path = eventeum, public")
    plan = explain(db, """SELECT * FROM eventeum.transfers_idx WHERE "to" = %s ORDER BY block_number DESC LIMIT 50""",
                   to_checksum(alice))
    assert uses_index(db, plan, index), plan

    # Index another column and move the view: the old name goes, one index per column.
    stored = db.execute("SELECT eventeum.set_view(%s, %s)",
                        (fid, json.dumps({"name": "transfers_moved", "index": ["from", "value"]}))).fetchone()[0]
    assert stored == {"schema": "eventeum", "name": "transfers_moved", "index": ["from", "value"]}
    assert db.execute("SELECT to_regclass('eventeum.transfers_idx')").fetchone() == (None,)
    assert len(view_rows(db, "eventeum.transfers_moved")) == 3
    index = view_index(db, "transfers_moved_value_")
    plan = explain(db, "SELECT * FROM eventeum.transfers_moved WHERE value = 5 ORDER BY block_number DESC LIMIT 5")
    assert uses_index(db, plan, index), plan
    # A user's view on the typed view keeps it from being dropped.
    db.execute("CREATE VIEW public.big_transfers AS SELECT * FROM eventeum.transfers_moved WHERE value > 1")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    db.execute("DROP VIEW public.big_transfers")
    db.execute("RESET search_path")
    assert db.execute("SELECT eventeum.set_view(%s, 'false')", (fid,)).fetchone()[0] is False
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'transfers_moved%%'").fetchone() == (0,)
    db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def test_readers_read_views_and_a_dump_restores_them_with_their_indexes(db, cluster, emitter, tmp_path):
    db.execute("DROP ROLE IF EXISTS tv_reader")
    db.execute("CREATE ROLE tv_reader LOGIN IN ROLE eventeum_reader")
    db.execute("CREATE SCHEMA IF NOT EXISTS app")
    db.execute("GRANT USAGE ON SCHEMA app TO eventeum_reader")
    fid = db.execute("SELECT eventeum.add_filter(%s, %s, id => 'dumped')",
                     (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
    db.execute("SELECT eventeum.set_view(%s, %s)", (fid, json.dumps({"schema": "app", "name": "Transfers", "index": ["to"]})))
    emitter.call("transfer(address,uint256)", "0x" + "33" * 20, 77)
    wait_view(db, 'app."Transfers"', 1)
    index = view_index(db, "transfers_to_")
    db.execute('CREATE VIEW public.transfer_totals AS SELECT "to", sum(value) AS total FROM app."Transfers" GROUP BY 1')
    with psycopg.connect(cluster.conninfo().replace("user=postgres", "user=tv_reader"), autocommit=True) as reader:
        assert reader.execute('SELECT value FROM app."Transfers"').fetchall() == [(77,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT eventeum.set_view(%s, 'false')", (fid,))
    try:
        dump = tmp_path / "dump.sql"
        subprocess.run([str(PGBIN / "pg_dump"), "-d", cluster.conninfo(), "-f", str(dump)], check=True)
        with cluster.connect("postgres") as conn:
            conn.execute("DROP DATABASE IF EXISTS tv_restored")
            conn.execute("CREATE DATABASE tv_restored")
        restore = subprocess.run([str(PGBIN / "psql"), "-d", cluster.conninfo("tv_restored"), "-v", "ON_ERROR_STOP=1",
                                  "-q", "-f", str(dump)], capture_output=True, text=True)
        assert restore.returncode == 0, restore.stderr
        with cluster.connect("tv_restored") as restored:
            assert restored.execute('SELECT "to", value FROM app."Transfers"').fetchall() == [
                (to_checksum("0x" + "33" * 20), 77)]
            assert restored.execute("SELECT total FROM public.transfer_totals").fetchall() == [(77,)]
            assert restored.execute("SELECT count(*) FROM pg_class WHERE relname = %s AND relkind IN ('i', 'I')",
                                    (index,)).fetchone() == (1,)
            assert restored.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = 'dumped'"
                                    ).fetchone() == (1,)
    finally:
        with cluster.connect("postgres") as conn:
            conn.execute("DROP DATABASE IF EXISTS tv_restored")
        db.execute("DROP VIEW IF EXISTS public.transfer_totals")
        db.execute("SELECT eventeum.remove_filter('dumped')")
        db.execute("DROP SCHEMA app")
        db.execute("DROP ROLE tv_reader")


def test_an_admin_creates_views_only_where_it_may(db, cluster, emitter):
    """The functions run as the extension's owner; the schema check asks
    for the role that called them."""
    db.execute("DROP ROLE IF EXISTS tv_admin")
    db.execute("CREATE ROLE tv_admin LOGIN IN ROLE eventeum_admin")
    db.execute("DROP SCHEMA IF EXISTS theirs CASCADE")
    db.execute("CREATE SCHEMA theirs")
    fid = db.execute("SELECT eventeum.add_filter(%s, %s, id => 'tv-admin')",
                     (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
    try:
        with psycopg.connect(cluster.conninfo().replace("user=postgres", "user=tv_admin"), autocommit=True) as admin:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin.execute("SELECT eventeum.set_view(%s, %s)", (fid, json.dumps({"schema": "theirs"})))
            db.execute("GRANT CREATE ON SCHEMA theirs TO tv_admin")
            assert admin.execute("SELECT eventeum.set_view(%s, %s)", (fid, json.dumps({"schema": "theirs"}))
                                 ).fetchone()[0] == {"schema": "theirs", "name": "tv_admin", "index": []}
        assert db.execute("SELECT to_regclass('theirs.tv_admin') IS NOT NULL").fetchone() == (True,)
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("DROP SCHEMA theirs")
        db.execute("DROP ROLE tv_admin")
