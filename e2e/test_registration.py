"""Live from the commit: a node or a filter registered in a transaction takes
every event mined after that transaction committed, and none mined well
before it, however late the worker gets to it.

Transactions stream in several times a second while the registration
commits, so the blocks around the commit are the ones a late start would
skip. The chain here mines a block every second, stamped with the wall clock,
as real chains are (anvil's instant mining stamps blocks ahead of the clock).

How close to the commit the start is:
- a follower that saw the registration commit starts after the last head it
  read before it (within one polling interval, 100 ms here);
- one that did not (the worker was away, the node is new) starts at the first
  block stamped at most 15 s (REGISTRATION_CLOCK_MARGIN) before it.
"""

import threading
import time

import pytest

from conftest import POLL_MS, wait_caught_up
from harness import Anvil, Emitter, free_port, wait_until
from test_restarts import worker_pid

PINGS = 2  # events per transaction; several transactions share a block
MARGIN = 15  # seconds: REGISTRATION_CLOCK_MARGIN


@pytest.fixture(scope="module")
def chain(cluster, workdir):
    """A chain with one-second blocks, followed by node 'timed'."""
    node = Anvil(free_port(), workdir / "anvil-timed.log")
    node.start("--block-time", "1")
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('timed', %s, %s)",
                   (node.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0}}'))
    yield node
    with cluster.connect() as db:
        for (fid,) in db.execute("SELECT id FROM eventeum.contract_event_filters "
                                 "WHERE node IN ('timed', 'late')").fetchall():
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node('timed')")
    node.stop()


@pytest.fixture
def pinger(chain):
    return Emitter(chain)


class Stream:
    """Sends a Ping burst every 0.2 s from a thread, without waiting for it
    to be mined, until stopped; then gathers the receipts."""

    def __init__(self, chain, emitter):
        self.chain = chain
        self.emitter = emitter
        self.sent: list[tuple[float, str]] = []  # (when sent, transaction hash)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop.is_set():
            data = self.emitter.calldata("burst(uint256)", PINGS)
            self.sent.append((time.time(), self.chain.submit(self.emitter.address, data)))
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def blocks(self):
        """(block number, block timestamp, when sent, receipt) of every transaction."""
        mined = []
        for sent_at, tx in self.sent:
            receipt = wait_until(lambda: self.chain.rpc("eth_getTransactionReceipt", tx), what="a receipt")
            block = self.chain.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
            mined.append((int(receipt["blockNumber"], 16), int(block["timestamp"], 16), sent_at, receipt))
        return mined


def events(mined):
    """(transaction hash, log index) of every event: log indexes count
    within the block, which holds several of these transactions."""
    return {(log["transactionHash"], int(log["logIndex"], 16)) for *_, receipt in mined for log in receipt["logs"]}


def stored(db, fid):
    return set(db.execute("SELECT transaction_hash, log_index FROM eventeum.contract_events "
                          "WHERE filter_id = %s AND status = 'CONFIRMED'", (fid,)).fetchall())


def assert_live_from_the_commit(db, stream, fid, node, committed_at, before_cutoff):
    """Every event of a transaction sent after `committed_at` is stored, and
    none of a block stamped before `before_cutoff`; exactly once."""
    mined = stream.blocks()
    wait_caught_up(db, node, max(m[0] for m in mined), timeout=60)
    # Blocks between the start and where live following took the filter over
    # come through its backfill.
    wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                  (fid,)).fetchone() == (True,), timeout=60, what="the filter's backfill")
    after = events([m for m in mined if m[2] > committed_at])
    before = events([m for m in mined if m[1] < before_cutoff])
    assert before and after, "the stream straddles the commit, or this test proves nothing"
    rows = stored(db, fid)
    assert after <= rows, f"{len(after - rows)} of {len(after)} events sent after the commit are missing"
    assert not (before & rows), f"{len(before & rows)} events of blocks before the start are stored"
    count = db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s", (fid,)).fetchone()[0]
    assert count == len(rows), "no event twice"


def test_a_filter_added_while_blocks_land_starts_at_its_commit(db, chain, pinger):
    wait_caught_up(db, "timed", chain.block_number(), timeout=60)
    with Stream(chain, pinger) as stream:
        time.sleep(3)
        started = time.time()
        fid = db.execute("SELECT eventeum.add_filter(%s, %s, node => 'timed')",
                         (pinger.address, pinger.signature("Ping"))).fetchone()[0]
        committed = time.time()
        time.sleep(2)
    # The follower saw the commit: blocks stamped a second or more before it are out.
    assert_live_from_the_commit(db, stream, fid, "timed", committed, int(started) - 1)


def test_a_node_and_its_filter_added_while_blocks_land_start_at_their_commit(db, chain, pinger):
    with Stream(chain, pinger) as stream:
        time.sleep(MARGIN + 3)
        started = time.time()
        with db.transaction():
            db.execute("SELECT eventeum.add_node('late', %s, %s)",
                       (chain.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0}}'))
            fid = db.execute("SELECT eventeum.add_filter(%s, %s, node => 'late')",
                             (pinger.address, pinger.signature("Ping"))).fetchone()[0]
        committed = time.time()
        time.sleep(2)
    try:
        assert_live_from_the_commit(db, stream, fid, "late", committed, int(started) - MARGIN - 1)
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node('late')")


def test_a_filter_added_while_the_worker_is_away_starts_at_its_commit(db, chain, pinger):
    """The postmaster restarts the worker 5 s after it ends: the filter is
    committed while no worker runs, and the worker that comes back starts
    from an older checkpoint, with no memory of the heads before."""
    wait_caught_up(db, "timed", chain.block_number(), timeout=60)
    with Stream(chain, pinger) as stream:
        time.sleep(MARGIN + 4)
        pid = worker_pid(db)
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: worker_pid(db) is None, what="the worker to end")
        started = time.time()
        fid = db.execute("SELECT eventeum.add_filter(%s, %s, node => 'timed')",
                         (pinger.address, pinger.signature("Ping"))).fetchone()[0]
        committed = time.time()
        wait_until(lambda: worker_pid(db) not in (None, pid), timeout=30, what="the worker to come back")
        time.sleep(2)
    assert_live_from_the_commit(db, stream, fid, "timed", committed, int(started) - MARGIN - 1)
