"""Crash-only: a killed worker or a crashed server resumes from the committed
checkpoint, with every event stored exactly once.

These tests restart the shared cluster, so this file runs after the others.
"""

import json
import os
import signal
import threading
import time

import psycopg
import pytest

from conftest import wait_caught_up
from harness import HttpReceiver, wait_until

TRANSACTIONS = 20
PINGS_PER_TRANSACTION = 5


def worker_pid(db):
    row = db.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventeum'").fetchone()
    return row and row[0]


def new_worker(cluster, old_pid, timeout=60):
    """Waits through the crash recovery a kill -9 starts, until a new worker runs."""
    def attempt():
        try:
            with cluster.connect() as db:
                pid = worker_pid(db)
                return pid if pid and pid != old_pid else None
        except psycopg.OperationalError:
            return None  # still recovering, or our connection was reset by it
    return wait_until(attempt, timeout=timeout, interval=0.2, what="a new worker after the crash")


def stream_events(emitter, disrupt_after, disrupt):
    """Mines TRANSACTIONS transactions of PINGS_PER_TRANSACTION events each,
    calling `disrupt` once in the middle. Returns the last receipt."""
    receipts = []
    disruption = threading.Thread(target=disrupt)
    for i in range(TRANSACTIONS):
        if i == disrupt_after:
            disruption.start()
        receipts.append(emitter.call("burst(uint256)", PINGS_PER_TRANSACTION))
    disruption.join()
    return receipts


def assert_exactly_once(cluster, emitter, fid, receipts):
    new_worker(cluster, None)
    with cluster.connect_when_ready() as db:
        wait_caught_up(db, "default", int(receipts[-1]["blockNumber"], 16), timeout=60)
        got = db.execute(
            "SELECT transaction_hash, log_index, status::text FROM eventeum.contract_events WHERE filter_id = %s",
            (fid,)).fetchall()
    expected = {(r["transactionHash"], i) for r in receipts for i in range(PINGS_PER_TRANSACTION)}
    found = {tx for tx, *_ in got}
    missing = [int(r["blockNumber"], 16) for r in receipts if r["transactionHash"] not in found]
    assert len(got) == len(expected), f"no event lost, none duplicated; blocks missing: {missing}"
    assert {(tx, i) for tx, i, _ in got} == expected
    assert {status for *_, status in got} == {"CONFIRMED"}


def add_pings(cluster, emitter):
    with cluster.connect() as db:
        return db.execute("SELECT eventeum.add_filter(%s, %s)",
                          (emitter.address, emitter.signature("Ping"))).fetchone()[0]


@pytest.mark.kills(9)
def test_kill_9_of_the_worker_mid_stream(cluster, emitter):
    fid = add_pings(cluster, emitter)
    with cluster.connect() as db:
        pid = wait_until(lambda: worker_pid(db), what="the worker")

    receipts = stream_events(emitter, TRANSACTIONS // 2, lambda: os.kill(pid, signal.SIGKILL))
    assert_exactly_once(cluster, emitter, fid, receipts)
    assert "was terminated by signal 9" in cluster.log_text()


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_postgres_restart_mid_stream(cluster, emitter, mode):
    """`immediate` is a crash (recovery from WAL); `fast` a normal restart."""
    fid = add_pings(cluster, emitter)

    def restart():
        cluster.stop(mode=mode)
        cluster.start()

    receipts = stream_events(emitter, TRANSACTIONS // 2, restart)
    assert_exactly_once(cluster, emitter, fid, receipts)


def test_a_replay_after_restart_sends_no_duplicate_notify(cluster, emitter):
    fid = add_pings(cluster, emitter)
    receipt = emitter.call("burst(uint256)", 3)
    with cluster.connect_when_ready() as db, cluster.connect() as listener:
        wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
        listener.execute("LISTEN eventeum_contract_events")
        pid = worker_pid(db)
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The new worker replays numBlocksToReplay blocks, these events among them.
        wait_until(lambda: (p := worker_pid(db)) and p != pid, timeout=60, what="a new worker")
        wait_until(lambda: db.execute(
            "SELECT updated_at > now() - interval '1 second' FROM eventeum.node_state WHERE node = 'default'"
        ).fetchone()[0], what="the new worker to commit a step")
        after = emitter.call("burst(uint256)", 1)
        wait_caught_up(db, "default", int(after["blockNumber"], 16))
        mine = [json.loads(n.payload) for n in listener.notifies(timeout=2)]
        mine = [(m["details"]["transactionHash"], m["details"]["logIndex"]) for m in mine
                if m["details"]["filterId"] == fid]
    assert mine == [(after["transactionHash"], 0)], "only the new event is notified"


@pytest.mark.kills(9)
def test_kill_9_with_a_non_empty_outbox_loses_no_message(cluster, emitter):
    receiver = HttpReceiver()
    receiver.status = 503
    with cluster.connect_when_ready() as db:
        db.execute("SELECT eventeum.add_broadcaster('crash-hook', 'http', %s)",
                   (json.dumps({"contractEventsUrl": receiver.url}),))
    try:
        fid = add_pings(cluster, emitter)
        receipt = emitter.call("burst(uint256)", 5)
        with cluster.connect_when_ready() as db:
            wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
            pending = db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'crash-hook' "
                                 "AND delivered_at IS NULL").fetchone()[0]
            assert pending == 5
            old = worker_pid(db)
            os.kill(old, signal.SIGKILL)
        receiver.status = 200
        new_worker(cluster, old)
        ids = {f"{receipt['transactionHash']}-{receipt['blockHash']}-{i}:CONFIRMED" for i in range(5)}
        wait_until(lambda: {r["headers"]["idempotency-key"] for r in receiver.accepted()
                            if r["body"]["filterId"] == fid} == ids, timeout=60,
                   what="every message after the crash")
    finally:
        with cluster.connect_when_ready() as db:
            db.execute("SELECT eventeum.remove_broadcaster('crash-hook')")
        receiver.stop()


def test_sigterm_during_a_large_backfill_ends_the_worker_within_seconds(cluster, emitter):
    """SIGTERM (pg_terminate_backend) while the main thread applies backfill
    pieces: the worker ends within seconds, and the worker after it finishes
    the backfill with every event once."""
    bursts = [emitter.call("burst(uint256)", 500) for _ in range(40)]
    with cluster.connect() as db:
        fid = db.execute("SELECT eventeum.add_filter(%s, %s, start_block => %s)",
                         (emitter.address, emitter.signature("Ping"), int(bursts[0]["blockNumber"], 16))).fetchone()[0]
        wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s",
                                      (fid,)).fetchone()[0] > 0, interval=0.01, what="the backfill to begin")
        pid = worker_pid(db)
        asked = time.monotonic()
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: worker_pid(db) != pid, timeout=15, interval=0.05, what="the worker to end")
        assert time.monotonic() - asked < 10
    new_worker(cluster, pid)
    with cluster.connect_when_ready() as db:
        wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                      (fid,)).fetchone() == (True,), timeout=120, what="the backfill")
        count = db.execute("SELECT count(DISTINCT (transaction_hash, log_index)), count(*) "
                           "FROM eventeum.contract_events WHERE filter_id = %s", (fid,)).fetchone()
    assert count == (20_000, 20_000)


@pytest.mark.kills(9)
def test_a_member_backfill_cut_by_kill_9_resumes_and_its_set_is_still_followed(cluster, emitter):
    """A contract watched with a start_block: the worker is killed while its
    backfill runs; the new worker finishes it from member_backfill and keeps
    following the set, every Ping stored once."""
    receipts = [emitter.call("burst(uint256)", PINGS_PER_TRANSACTION) for _ in range(TRANSACTIONS)]
    with cluster.connect_when_ready() as db:
        db.execute("SELECT eventeum.create_address_set('restart_set')")
        fid = db.execute("SELECT eventeum.add_filter(NULL, %s, address_set => 'restart_set')",
                         (emitter.signature("Ping"),)).fetchone()[0]
        wait_caught_up(db, "default", int(receipts[-1]["blockNumber"], 16))
        pid = worker_pid(db)
        db.execute("SELECT eventeum.watch('restart_set', %s, %s)",
                   (emitter.address, int(emitter.deployment["blockNumber"], 16)))
        wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.member_backfill WHERE set_name = 'restart_set'"
                                      ).fetchone()[0] == 1, interval=0.005, what="the member's backfill to start")
    os.kill(pid, signal.SIGKILL)
    new_worker(cluster, pid)
    receipts.append(emitter.call("burst(uint256)", PINGS_PER_TRANSACTION))  # live, after the restart
    with cluster.connect_when_ready() as db:
        wait_until(lambda: db.execute("""SELECT current_block >= to_block FROM eventeum.member_backfill
                                          WHERE set_name = 'restart_set'""").fetchone() == (True,),
                   timeout=60, what="the member's backfill to be done")
    assert_exactly_once(cluster, emitter, fid, receipts)
