"""Logical replication of the event storage to a second cluster: the
publication docs/OPERATIONS.md describes, a subscriber made with
event_tables_ddl(), status changes and a kind added later."""

import json

import pytest

from conftest import crashes, wait_caught_up
from harness import Cluster, free_port, wait_until
from test_forks import transfer

EVENTS = """SELECT id, filter_id, node, name, address, block_number, block_hash, transaction_hash, log_index,
                   indexed_parameters, non_indexed_parameters, event_specification_signature, status::text
              FROM eventeum.contract_events ORDER BY block_number, log_index, filter_id"""


@pytest.fixture
def primary(workdir, anvil):
    c = Cluster(workdir / "primary", free_port())
    c.init({"wal_level": "logical"})
    c.start()
    c.create_database()
    yield c
    c.stop(missing_ok=True)
    assert not crashes(c.log_text(), set()), "the primary's log shows a crash"


@pytest.fixture
def replica(workdir):
    c = Cluster(workdir / "replica", free_port())
    c.init()
    c.start()
    c.create_database()
    yield c
    c.stop(missing_ok=True)
    assert not crashes(c.log_text(), set()), "the replica's log shows a crash"


def make_tables(source, target):
    """Runs the primary's event_tables_ddl() on the subscriber, as the docs do."""
    for (statement,) in source.execute("SELECT * FROM eventeum.event_tables_ddl()").fetchall():
        target.execute(statement)


def test_a_second_cluster_receives_the_events_by_logical_replication(primary, replica, anvil, emitter):
    with primary.connect() as src, replica.connect() as dst:
        src.execute("SELECT eventeum.add_node('main', %s, %s)",
                    (anvil.url, json.dumps({"pollingInterval": 100, "numBlocksToWait": 2})))
        src.execute("SELECT eventeum.add_filter(%s, %s, 'main', NULL, 'transfers')",
                    (emitter.address, emitter.signature("Transfer")))
        before = [transfer(emitter, v) for v in (1, 2, 3)]
        wait_caught_up(src, "main", int(before[-1]["blockNumber"], 16), timeout=60)

        src.execute("""CREATE PUBLICATION eventeum_events
                           FOR TABLES IN SCHEMA eventeum_store, TABLE eventeum.event_nodes, eventeum.event_sources
                           WITH (publish_via_partition_root = true)""")
        make_tables(src, dst)
        dst.execute(f"""CREATE SUBSCRIPTION eventeum_events
                            CONNECTION 'host=127.0.0.1 port={primary.port} dbname={primary.database} user=postgres'
                            PUBLICATION eventeum_events""")
        try:
            # Rows written after the subscription, and status changes of the
            # rows copied with it (UNCONFIRMED, then CONFIRMED), arrive.
            after = [transfer(emitter, v) for v in (4, 5)]
            anvil.mine(3)
            wait_caught_up(src, "main", anvil.block_number(), timeout=60)
            expected = src.execute(EVENTS).fetchall()
            assert len(expected) == 5 and {r[-1] for r in expected} == {"CONFIRMED"}
            assert {r[7] for r in expected} == {r["transactionHash"] for r in before + after}
            wait_until(lambda: dst.execute(EVENTS).fetchall() == expected, timeout=60,
                       what="the subscriber to hold the primary's events")

            # A kind added later: its table on the subscriber, then a refresh.
            src.execute("SELECT eventeum.add_filter(%s, %s, 'main', NULL, 'misc')",
                        (emitter.address, emitter.signature("Misc")))
            emitter.call("emitAll()")
            anvil.mine(3)
            wait_caught_up(src, "main", anvil.block_number(), timeout=60)
            make_tables(src, dst)
            dst.execute("ALTER SUBSCRIPTION eventeum_events REFRESH PUBLICATION")
            expected = src.execute(EVENTS).fetchall()
            assert [r[1] for r in expected].count("misc") == 1
            wait_until(lambda: dst.execute(EVENTS).fetchall() == expected, timeout=60,
                       what="the subscriber to hold the new kind's events")
        finally:
            dst.execute("DROP SUBSCRIPTION eventeum_events")
            src.execute("SELECT eventeum.remove_filter(id) FROM eventeum.contract_event_filters")
            src.execute("SELECT eventeum.remove_node('main')")
