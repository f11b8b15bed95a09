"""Hosted providers are not anvil: they rate-limit, answer slowly, send
answers far too large, and sometimes send nonsense. Behind a proxy that
plays each of these, every event is stored exactly once and CONFIRMED, the
worker's memory stays bounded, node_status says what is wrong, and the other
nodes go on."""

import json
import time

import pytest

from conftest import POLL_MS, wait_backfilled, wait_caught_up
from harness import Anvil, Emitter, RpcProxy, free_port, wait_until
from test_nodes import node_status, remove_node_and_filters
from test_restarts import worker_pid

PINGS = 2


def add_pings(db, emitter, node, **extra):
    args = ", ".join(f"{k} => %s" for k in extra)
    sql = f"SELECT eventeum.add_filter(%s, %s, node => %s{', ' + args if args else ''})"
    return db.execute(sql, (emitter.address, emitter.signature("Ping"), node, *extra.values())).fetchone()[0]


def pings(emitter, transactions):
    return [emitter.call("burst(uint256)", PINGS) for _ in range(transactions)]


def expected(receipts):
    return {(r["transactionHash"], i) for r in receipts for i in range(PINGS)}


def assert_exactly_once(db, fid, receipts):
    wait_backfilled(db, fid)
    rows = db.execute("SELECT transaction_hash, log_index, status::text FROM eventeum.contract_events "
                      "WHERE filter_id = %s", (fid,)).fetchall()
    assert len(rows) == len(expected(receipts)), f"{len(rows)} rows for {len(expected(receipts))} events"
    assert {(tx, i) for tx, i, _ in rows} == expected(receipts)
    assert {s for *_, s in rows} == {"CONFIRMED"}


def metric(db, name, node) -> float:
    row = db.execute("SELECT value FROM eventeum.metrics WHERE name = %s AND labels ->> 'node' = %s",
                     (name, node)).fetchone()
    return row[0] if row else 0


def peak_rss_mb(db) -> float:
    """The worker's peak resident memory (VmHWM), in MB."""
    pid = worker_pid(db)
    with open(f"/proc/{pid}/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def chain(workdir):
    """A chain of this module's own: the shared one's instant mining has
    stamped its blocks far ahead of the clock by now, and a node added to it
    starts that far back."""
    node = Anvil(free_port(), workdir / "anvil-providers.log")
    node.start()
    yield node
    node.stop()


@pytest.fixture
def emitter(chain, cluster):
    return Emitter(chain)


@pytest.fixture
def provider(cluster, chain):
    """Adds a node named `name` behind a fresh proxy; removes both after the test."""
    made = []

    def make(name, **options):
        proxy = RpcProxy(chain.url)
        proxy.start()
        options = {"pollingInterval": POLL_MS, "numBlocksToWait": 0, "healthcheckInterval": 1000, **options}
        with cluster.connect() as db:
            db.execute("SELECT eventeum.add_node(%s, %s, %s)", (name, proxy.url, json.dumps(options)))
        made.append((name, proxy))
        return proxy

    yield make
    with cluster.connect() as db:
        for name, proxy in made:
            remove_node_and_filters(db, name)
            proxy.stop()


def test_a_400_mb_answer_splits_the_range_and_leaves_the_worker_small(db, emitter, provider):
    """eth_getLogs over more than one block is answered with 400 MB; the worker
    reads at most maxResponseBytes (64 MiB) of it, splits the range, and
    stores everything. Before the cap the worker peaked at 1.1-1.3 GB."""
    before = pings(emitter, 20)
    proxy = provider("huge")
    proxy.huge_logs_over = 1
    fid = add_pings(db, emitter, "huge", start_block=int(before[0]["blockNumber"], 16))
    after = pings(emitter, 20)
    wait_caught_up(db, "huge", int(after[-1]["blockNumber"], 16), timeout=180)
    wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                  (fid,)).fetchone()[0], timeout=180, what="the backfill")
    assert proxy.huge_answers > 0, "the proxy sent its 400 MB, or this test proves nothing"
    assert_exactly_once(db, fid, before + after)
    peak = peak_rss_mb(db)
    print(f"worker peak RSS {peak:.0f} MB after {proxy.huge_answers} answers of 400 MB")
    assert peak < 400, f"the worker peaked at {peak:.0f} MB"


def test_one_block_over_the_cap_is_an_error_in_node_status(db, emitter, provider):
    proxy = provider("over", maxResponseBytes=1 << 20)
    fid = add_pings(db, emitter, "over")
    first = pings(emitter, 2)
    wait_caught_up(db, "over", int(first[-1]["blockNumber"], 16))
    proxy.huge_logs_over = 0
    second = pings(emitter, 2)
    wait_until(lambda: node_status(db, "over")[0] == "DOWN", what="the node to be DOWN")
    assert "maxResponseBytes" in node_status(db, "over")[1]
    proxy.huge_logs_over = None
    wait_caught_up(db, "over", int(second[-1]["blockNumber"], 16))
    assert_exactly_once(db, fid, first + second)


def test_a_rate_limiting_slow_provider_loses_nothing_and_is_paced(db, anvil, emitter, provider):
    """A quarter of the requests refused for the rate limit (half as HTTP 429
    with Retry-After: 1, half as -32005), a tenth answered half a second late,
    and a stated rate of 20 requests a second."""
    proxy = provider("limited", maxRequestsPerSecond=20)
    proxy.rate_limited = 0.25
    proxy.slow = 0.1
    fid = add_pings(db, emitter, "limited")
    receipts = pings(emitter, 100)
    last = int(receipts[-1]["blockNumber"], 16)

    seen = set()

    def caught_up():
        status, _ = node_status(db, "limited")
        seen.add(status)
        row = db.execute("SELECT latest_block FROM eventeum.node_state WHERE node = 'limited'").fetchone()
        return row and row[0] is not None and row[0] >= last

    wait_until(caught_up, timeout=240, interval=0.2, what="the rate-limited node to catch up")
    assert_exactly_once(db, fid, receipts)
    assert proxy.refused_for_rate > 10, "the proxy refused requests, or this test proves nothing"
    assert "RATE_LIMITED" in seen, f"node_status said {seen}"
    assert "DOWN" not in seen, "refusals that are retried do not make the node DOWN"
    assert proxy.busiest_second() <= 21, f"{proxy.busiest_second()} requests in one second"
    wait_until(lambda: metric(db, "eventeum_rpc_rate_limited_total", "limited") > 0,
               what="the refusals to be counted")
    # The other nodes went on at their own pace.
    wait_caught_up(db, "default", anvil.block_number())


def test_a_lagging_backend_that_answers_nothing_for_new_blocks_loses_nothing(db, emitter, provider):
    """Half the eth_getLogs answers come from a backend two seconds behind, as a
    load-balanced provider's do: the logs of blocks it has not seen yet are
    left out, and it does not know them by hash."""
    proxy = provider("lagging")
    proxy.lagging = 0.5
    fid = add_pings(db, emitter, "lagging")
    receipts = []
    for _ in range(40):  # a block at a time, so that the follower asks for the newest
        receipts += pings(emitter, 1)
        time.sleep(0.2)
    wait_caught_up(db, "lagging", int(receipts[-1]["blockNumber"], 16), timeout=120)
    assert proxy.lagged_answers > 0, "the proxy left logs out, or this test proves nothing"
    assert_exactly_once(db, fid, receipts)
    wait_until(lambda: metric(db, "eventeum_rpc_incomplete_answers_total", "lagging") > 0,
               what="the suspect answers to be counted")


def head_beyond_bigint(request, reply):
    if request["method"] == "eth_blockNumber":
        reply["result"] = "0xffffffffffffffff"
    return reply


def log_outside_the_range(request, reply):
    if request["method"] == "eth_getLogs" and reply.get("result"):
        reply["result"][0] = {**reply["result"][0], "blockNumber": hex(10**9)}
    return reply


def log_index_beyond_integer(request, reply):
    """A log index that fits the bigint of JSON-RPC's quantity but not the
    integer column it is stored in."""
    if request["method"] == "eth_getLogs" and reply.get("result"):
        reply["result"][-1] = {**reply["result"][-1], "logIndex": hex(2**31)}
    return reply


def truncated(request, reply):
    if request["method"] == "eth_getLogs":
        return json.dumps(reply).encode()[:40]
    return reply


@pytest.mark.parametrize("rewrite, reason", [
    (head_beyond_bigint, "beyond what a bigint holds"),
    (log_outside_the_range, "answered a query for blocks"),
    (log_index_beyond_integer, "log index 2147483648 is beyond what an integer column holds"),
    (truncated, "invalid answer"),
])
def test_a_nonsense_answer_is_refused_and_nothing_is_lost(db, emitter, provider, rewrite, reason):
    proxy = provider("hostile")
    fid = add_pings(db, emitter, "hostile")
    first = pings(emitter, 2)
    wait_caught_up(db, "hostile", int(first[-1]["blockNumber"], 16))
    proxy.rewrite = rewrite
    second = pings(emitter, 2)
    wait_until(lambda: node_status(db, "hostile")[0] == "DOWN", what="the node to be DOWN")
    assert reason in node_status(db, "hostile")[1]
    # Nothing of the refused answers is stored.
    stored = db.execute("SELECT transaction_hash, log_index FROM eventeum.contract_events "
                        "WHERE filter_id = %s", (fid,)).fetchall()
    assert set(stored) == expected(first) and len(stored) == len(expected(first))
    proxy.rewrite = None
    wait_caught_up(db, "hostile", int(second[-1]["blockNumber"], 16))
    assert_exactly_once(db, fid, first + second)
    assert node_status(db, "hostile")[0] == "CONNECTED"


def test_a_head_that_goes_backwards_loses_nothing(db, emitter, provider):
    """A backend five blocks behind answers eth_blockNumber for a while: the
    follower waits (its checkpoint is ahead of that head) and goes on when
    the head moves again."""
    proxy = provider("backwards")
    fid = add_pings(db, emitter, "backwards")
    first = pings(emitter, 3)
    wait_caught_up(db, "backwards", int(first[-1]["blockNumber"], 16))

    def behind(request, reply):
        if request["method"] == "eth_blockNumber" and "result" in reply:
            reply["result"] = hex(max(int(reply["result"], 16) - 5, 0))
        return reply

    proxy.rewrite = behind
    second = pings(emitter, 3)
    wait_until(lambda: proxy.calls.get("eth_blockNumber", 0) > 10, what="the follower to see the old head")
    proxy.rewrite = None
    wait_caught_up(db, "backwards", int(second[-1]["blockNumber"], 16))
    assert_exactly_once(db, fid, first + second)


def test_a_catch_up_after_an_outage_is_committed_in_pieces(cluster, db, emitter, provider):
    """12,000 events mined while the node is unreachable arrive in one live
    step when it returns: more than a piece (10,000 logs), so the step is
    committed in block-aligned pieces, each in a transaction of its own."""
    proxy = provider("outage")
    fid = add_pings(db, emitter, "outage")
    first = pings(emitter, 1)
    wait_caught_up(db, "outage", int(first[-1]["blockNumber"], 16))
    proxy.stop()
    bursts = [emitter.call("burst(uint256)", 500) for _ in range(24)]
    proxy.start()
    wait_caught_up(db, "outage", int(bursts[-1]["blockNumber"], 16), timeout=120)
    wait_backfilled(db, fid)
    expected_rows = expected(first) | {(r["transactionHash"], i) for r in bursts for i in range(500)}
    rows = db.execute("SELECT transaction_hash, log_index, status::text FROM eventeum.contract_events "
                      "WHERE filter_id = %s", (fid,)).fetchall()
    assert len(rows) == len(expected_rows) == 12_002
    assert {(tx, i) for tx, i, _ in rows} == expected_rows
    assert {s for *_, s in rows} == {"CONFIRMED"}
    assert "a large live step is committed in pieces" in cluster.log_text()
