"""Typed views' indexes, built by the index builder (a background worker of
its own) concurrently, partition by partition: live ingestion goes on while
one is built on a million rows, its progress is visible, and a kill -9 in
the middle of a build is cleaned up and resumed."""

import json
import os
import signal

import pytest

from conftest import wait_caught_up
from harness import Emitter, wait_until
from live_events import LiveEvents
from test_backfill import BENCH
from test_forks import transfer
from test_partitions import add_node, remove_node
from test_restarts import new_worker, worker_pid

SIMPLE_INPUTS = [{"name": "who", "type": "address", "indexed": True},
                 {"name": "value", "type": "uint256", "indexed": False}]
ROWS = 1_000_000
BLOCKS = 10_000  # 100 rows a block
WIDTH = 2_500  # the node's partitionBlocks: the rows fill four partitions
LONGEST_STALL_MS = 1_000

BUILDER = """SELECT p.pid FROM pg_stat_progress_create_index p
               JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'eventeum index builder'"""


def keys(db, fid):
    return db.execute("""SELECT s.source_key, n.node_key FROM eventeum.event_sources s
                           JOIN eventeum.event_nodes n ON n.name = s.node WHERE s.filter_id = %s""",
                      (fid,)).fetchone()


def write_history(db, table, fid, node, contract, p_columns, p_values):
    """ROWS rows of filter `fid` in blocks 0..BLOCKS-1, as the worker writes them."""
    filter_key, node_key = keys(db, fid)
    db.execute("SELECT eventeum.make_partitions(%s, %s, 0, %s)", (table, node, BLOCKS - 1))
    db.execute(f"""INSERT INTO eventeum_store.{table}
                     (node_key, filter_key, block_number, log_index, status, block_timestamp, block_hash,
                      transaction_hash, address, {p_columns})
                   SELECT {node_key}, {filter_key}, i / 100, (i % 100)::integer, 'CONFIRMED', 1700000000 + i / 100,
                          ('0x' || md5('b' || i / 100) || md5('B' || i / 100))::eventeum.hash,
                          ('0x' || md5('t' || i) || md5('T' || i))::eventeum.hash, '{contract}'::eventeum.address,
                          {p_values}
                     FROM generate_series(0, {ROWS - 1}) AS i""")


def invalid_indexes(db):
    return db.execute("""SELECT c.relname::text FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
                          WHERE c.relnamespace = 'eventeum_store'::regnamespace AND NOT i.indisvalid""").fetchall()


def assert_ready(db, index_prefix, table):
    """The index is READY, valid, and every partition of `table` has its own, attached."""
    (name, state, done, total, pid, error), = db.execute(
        """SELECT index_name, state, partitions_done, partitions_total, builder_pid, error
             FROM eventeum.view_indexes WHERE index_name LIKE %s""", (index_prefix + "%",)).fetchall()
    partitions = db.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                            (f"eventeum_store.{table}",)).fetchone()[0]
    assert (state, done, total, pid, error) == ("READY", partitions, partitions, None, None)
    assert db.execute("""SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
                          WHERE c.relname = %s""", (name,)).fetchone() == (True,)
    assert db.execute("""SELECT count(*), bool_and(i.indisvalid) FROM pg_inherits h
                           JOIN pg_index i ON i.indexrelid = h.inhrelid
                          WHERE h.inhparent = ('eventeum_store.' || %s)::regclass""", (name,)).fetchone() == (
        partitions, True)
    assert invalid_indexes(db) == []
    return name


def empty_node(db, node):
    """Removes the node and its filters, and empties its partitions: a million
    rows would slow every later test's reads of contract_events."""
    node_key = db.execute("SELECT node_key FROM eventeum.event_nodes WHERE name = %s", (node,)).fetchone()[0]
    remove_node(db, node)
    for (partition,) in db.execute("SELECT partition_name FROM eventeum.event_partitions WHERE node_key = %s",
                                   (node_key,)).fetchall():
        db.execute(f"TRUNCATE eventeum_store.{partition}")


def test_an_index_built_on_a_million_rows_never_stalls_live_ingestion(cluster, anvil):
    """20 live events a second on the same kind table while set_view indexes a
    filter with a million rows in four partitions: no event waits more than a
    second for its row, the build's progress shows, and the index serves
    lookups once ready."""
    history, live = Emitter(anvil, artifact=BENCH), Emitter(anvil, artifact=BENCH)
    with cluster.connect_when_ready() as db:
        db.execute("SELECT eventeum.add_node('live', %s, %s)", (anvil.ws_url, json.dumps({
            "blockStrategy": "PUBSUB", "blockNotification": False, "numBlocksToWait": 0,
            "partitionBlocks": WIDTH})))
        wait_caught_up(db, "live", anvil.block_number())
        for fid, contract in [("history", history), ("live", live)]:
            db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
                "id": fid, "contractAddress": contract.address, "node": "live",
                "eventSpecification": {"type": "event", "name": "Simple", "inputs": SIMPLE_INPUTS},
                "view": {"name": f"{fid}_simple"}}),))
        table = db.execute("SELECT table_name FROM eventeum.event_kinds WHERE kind = 'address!,uint256'"
                           ).fetchone()[0]
        write_history(db, table, "history", "live", history.address, "p1, p2",
                      "('0x' || lpad((i % 997)::text, 40, '0'))::eventeum.address, i")
        try:
            wait_caught_up(db, "live", anvil.block_number())
            progress = []
            with LiveEvents(cluster, anvil, live, "live") as events:
                wait_until(lambda: len(events.arrived) >= 20, timeout=30, what="live events to flow")
                db.execute("""SELECT eventeum.set_view('history', '{"name": "history_simple", "index": ["who"]}')""")

                def ready():
                    row = db.execute("""SELECT v.state, v.partitions_done, v.partitions_total, p.pid IS NOT NULL
                                          FROM eventeum.view_indexes v
                                          LEFT JOIN pg_stat_progress_create_index p ON p.pid = v.builder_pid
                                         WHERE v.filter_id = 'history'""").fetchone()
                    if row and row not in progress:
                        progress.append(row)
                    return row is not None and row[0] == "READY"
                wait_until(ready, timeout=300, interval=0.02, what="the index to be ready")
            longest = events.longest_wait_ms()
            print(f"longest live wait {longest:.0f} ms of {len(events.sent)} events; progress seen {progress}")
            index = assert_ready(db, "history_simple_who_", table)
            # Its progress showed while it was built: partitions done of four,
            # with the builder's own row in pg_stat_progress_create_index.
            building = [r for r in progress if r[0] == "BUILDING"]
            assert building and all(total >= 4 for _, _, total, _ in building), progress
            assert any(seen for *_, seen in building), progress
            assert longest <= LONGEST_STALL_MS, f"a live event waited {longest:.0f} ms during the build"
            assert len(events.sent) >= 20
            plan = "\n".join(r[0] for r in db.execute(
                "EXPLAIN SELECT * FROM eventeum.history_simple WHERE who = %s ORDER BY block_number DESC LIMIT 5",
                ("0x" + "0" * 37 + "996",)).fetchall())
            assert "Index Scan Backward using" in plan and "Seq Scan" not in plan, plan
            assert db.execute("SELECT count(*) FROM eventeum.history_simple WHERE who = %s",
                              ("0x" + "0" * 37 + "996",)).fetchone()[0] == len(range(996, ROWS, 997))
            # Every live event is stored once.
            assert db.execute("SELECT count(*) FROM eventeum.live_simple").fetchone()[0] == len(events.sent)
            # A view that no longer asks for the index drops it, and its row.
            db.execute("""SELECT eventeum.set_view('history', '{"name": "history_simple"}')""")
            wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.view_indexes WHERE filter_id = 'history'"
                                          ).fetchone() == (0,), what="the index's row to go")
            assert db.execute("SELECT to_regclass(%s)", (f"eventeum_store.{index}",)).fetchone() == (None,)
        finally:
            empty_node(db, "live")


@pytest.mark.kills(9)
def test_kill_9_during_a_view_index_build_resumes_it(cluster, anvil, emitter):
    """A typed view's index on a million rows: the index builder is killed
    while it builds a partition's index (the postmaster restarts every
    process); the next builder drops the invalid index it left, builds the
    index whole and valid, and the worker follows on."""
    with cluster.connect_when_ready() as db:
        add_node(db, anvil, "indexing", partitionBlocks=WIDTH)
        fid = db.execute("SELECT eventeum.add_filter(%s, %s, 'indexing', NULL, 'indexed')",
                         (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
        table = db.execute("SELECT table_name FROM eventeum.event_kinds WHERE kind LIKE 'address!,address!,uint256%%'"
                           ).fetchone()[0]
        write_history(db, table, fid, "indexing", emitter.address, "p1, p2, p3",
                      """('0x' || lpad((i % 997)::text, 40, '0'))::eventeum.address,
                         ('0x' || lpad((i % 991)::text, 40, '0'))::eventeum.address, i""")
        try:
            db.execute("""SELECT eventeum.set_view(%s, '{"name": "indexed", "index": ["to"]}')""", (fid,))
            worker = worker_pid(db)
            pid = wait_until(lambda: (db.execute(BUILDER).fetchone() or [None])[0], interval=0.01,
                             what="the index build to start")
            os.kill(pid, signal.SIGKILL)
            # The postmaster restarts every process, the worker too.
            new_worker(cluster, worker)
        except BaseException:
            empty_node(db, "indexing")
            raise
    with cluster.connect_when_ready() as db:
        try:
            wait_until(lambda: db.execute("SELECT state FROM eventeum.view_indexes WHERE filter_id = %s",
                                          (fid,)).fetchone() == ("READY",), timeout=120, what="the index, built again")
            assert_ready(db, "indexed_to_", table)
            receipt = transfer(emitter, 5)
            wait_caught_up(db, "indexing", int(receipt["blockNumber"], 16))
            assert db.execute("SELECT count(*) FROM eventeum.indexed").fetchone()[0] == ROWS + 1
        finally:
            empty_node(db, "indexing")
