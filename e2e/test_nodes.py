"""Several nodes, and node outages: a node that stops answering is DOWN, the
others go on, and when it returns it fills the gap from its checkpoint."""

import pytest
from conftest import POLL_MS, wait_backfilled, wait_caught_up
from harness import DEPLOYER, Anvil, Emitter, RpcProxy, free_port, wait_until
from test_contract_events import add_filter, rows


def node_status(db, node):
    return db.execute("SELECT status, last_error FROM eventeum.node_status WHERE name = %s", (node,)).fetchone()


def remove_node_and_filters(db, node):
    for (fid,) in db.execute("SELECT id FROM eventeum.contract_event_filters WHERE node = %s", (node,)).fetchall():
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    db.execute("SELECT eventeum.remove_node(%s)", (node,))


def values(db, fid):
    return [r[2][0]["value"] for r in rows(db, fid)]


@pytest.fixture
def flaky(cluster, anvil):
    """A node reached through a relay that can be taken down."""
    proxy = RpcProxy(anvil.url)
    proxy.start()
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('flaky', %s, %s)",
                   (proxy.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0, "healthcheckInterval": 1000}}'))
        wait_caught_up(db, "flaky", anvil.block_number())
    yield proxy
    with cluster.connect() as db:
        remove_node_and_filters(db, "flaky")
    proxy.stop()


def test_an_outage_is_down_then_recovers_with_no_gap(db, anvil, emitter, flaky):
    on_flaky = add_filter(db, emitter, "Transfer", node="flaky")
    on_default = add_filter(db, emitter, "Transfer")
    transfer = lambda v: emitter.call("transfer(address,uint256)", DEPLOYER, v)  # noqa: E731
    transfer(1)
    wait_until(lambda: values(db, on_flaky) == [1], what="the first event")

    flaky.stop()
    wait_until(lambda: node_status(db, "flaky")[0] == "DOWN", what="flaky to be DOWN")
    assert "eth_blockNumber" in node_status(db, "flaky")[1]
    transfer(2)
    last = transfer(3)
    # The other nodes go on while flaky is down.
    wait_caught_up(db, "default", int(last["blockNumber"], 16))
    assert values(db, on_default) == [1, 2, 3]
    assert values(db, on_flaky) == [1]

    flaky.start()
    wait_caught_up(db, "flaky", int(last["blockNumber"], 16))
    assert node_status(db, "flaky") == ("CONNECTED", None)
    assert values(db, on_flaky) == [1, 2, 3], "the gap is filled, nothing twice"


@pytest.fixture
def second_chain(cluster, workdir):
    chain = Anvil(free_port(), workdir / "anvil-second.log")
    chain.start("--chain-id", "31338")
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('second', %s, %s)",
                   (chain.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0, "healthcheckInterval": 1000}}'))
        wait_caught_up(db, "second", chain.block_number())
    yield chain
    with cluster.connect() as db:
        remove_node_and_filters(db, "second")
    chain.stop()


def test_two_nodes_follow_their_own_chains(db, anvil, emitter, second_chain):
    other = Emitter(second_chain)
    first_fid = add_filter(db, emitter, "Transfer")
    second_fid = add_filter(db, other, "Transfer", node="second")
    a = emitter.call("transfer(address,uint256)", DEPLOYER, 10)
    b = other.call("transfer(address,uint256)", DEPLOYER, 20)
    wait_caught_up(db, "default", int(a["blockNumber"], 16))
    wait_caught_up(db, "second", int(b["blockNumber"], 16))
    assert [(r[6], r[2][0]["value"]) for r in rows(db, first_fid)] == [(a["transactionHash"], 10)]
    assert [(r[6], r[2][0]["value"]) for r in rows(db, second_fid)] == [(b["transactionHash"], 20)]
    assert db.execute("SELECT DISTINCT node FROM eventeum.contract_events WHERE filter_id = %s",
                      (second_fid,)).fetchall() == [("second",)]

    # One dead node does not delay the other.
    second_chain.stop()
    wait_until(lambda: node_status(db, "second")[0] == "DOWN", what="second to be DOWN")
    c = emitter.call("transfer(address,uint256)", DEPLOYER, 11)
    wait_caught_up(db, "default", int(c["blockNumber"], 16))
    assert [r[2][0]["value"] for r in rows(db, first_fid)] == [10, 11]


def test_a_node_with_several_urls_fails_over_and_comes_back(db, anvil, emitter, second_chain):
    """Three urls: a primary that goes down, a url serving another chain (which
    must never be used) and a good fallback. The node follows through the
    fallback during the outage and returns to the primary after it."""
    primary, fallback = RpcProxy(anvil.url), RpcProxy(anvil.url)
    primary.start()
    fallback.start()
    urls = f"{primary.url}, {second_chain.url}, {fallback.url}"
    db.execute("SELECT eventeum.add_node('multi', %s, %s)",
               (urls, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0, "healthcheckInterval": 1000}}'))
    try:
        fid = add_filter(db, emitter, "Transfer", node="multi")
        transfer = lambda v: emitter.call("transfer(address,uint256)", DEPLOYER, v)  # noqa: E731
        first = transfer(1)
        wait_caught_up(db, "multi", int(first["blockNumber"], 16))
        assert serving(db, "multi") == (31337, primary.url + "/")

        primary.stop()
        during = [transfer(2), transfer(3)]
        wait_caught_up(db, "multi", int(during[-1]["blockNumber"], 16), timeout=60)
        assert serving(db, "multi") == (31337, fallback.url + "/")
        health = {e["url"]: e for e in endpoints(db, "multi")}
        assert "31338" in health[second_chain.url + "/"]["lastError"], health
        assert not health[primary.url + "/"]["healthy"]

        primary.start()
        wait_until(lambda: serving(db, "multi")[1] == primary.url + "/", timeout=30,
                   what="the primary to serve again")
        last = transfer(4)
        wait_caught_up(db, "multi", int(last["blockNumber"], 16))
        wait_backfilled(db, fid)
        assert values(db, fid) == [1, 2, 3, 4], "nothing lost or doubled across the failovers"
        assert fallback.calls.get("eth_getLogs", 0) > 0, "the fallback served"
    finally:
        remove_node_and_filters(db, "multi")
        primary.stop()
        fallback.stop()


def serving(db, node):
    return db.execute("SELECT chain_id, url FROM eventeum.node_status WHERE name = %s", (node,)).fetchone()


def endpoints(db, node):
    return db.execute("SELECT endpoints FROM eventeum.node_status WHERE name = %s", (node,)).fetchone()[0]
