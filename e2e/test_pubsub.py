"""blockStrategy PUBSUB: newHeads over a websocket, SUBSCRIBED in node_status,
and a resubscription after the node restarts (anvil --state keeps the chain)."""

import time

import pytest
from conftest import wait_caught_up
from harness import DEPLOYER, Anvil, Emitter, WsProxy, free_port, wait_until
from test_contract_events import add_filter, rows

POLL_MS = 5000  # slow polling: events that arrive sooner came through the subscription


def status(db):
    return db.execute("SELECT status FROM eventeum.node_status WHERE name = 'ws'").fetchone()[0]


@pytest.fixture
def ws_chain(cluster, workdir):
    chain = Anvil(free_port(), workdir / "anvil-ws.log")
    state = workdir / "anvil-ws-state.json"
    chain.start("--state", str(state))
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('ws', %s, %s)",
                   (chain.ws_url, f'{{"blockStrategy": "PUBSUB", "pollingInterval": {POLL_MS}, '
                                  '"numBlocksToWait": 0, "healthcheckInterval": 500, "readTimeout": 1000, "connectionTimeout": 1000}'))
        wait_caught_up(db, "ws", chain.block_number())
    yield chain, state
    with cluster.connect() as db:
        for (fid,) in db.execute("SELECT id FROM eventeum.contract_event_filters WHERE node = 'ws'").fetchall():
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node('ws')")
    chain.stop()


def arrives_quickly(db, fid, count):
    """The event is stored well within one polling interval."""
    started = time.monotonic()
    wait_until(lambda: len(rows(db, fid)) >= count, timeout=POLL_MS / 1000 / 2,
               what="an event pushed by newHeads")
    return time.monotonic() - started


def test_pubsub_follows_new_heads_and_resubscribes_after_a_restart(db, ws_chain):
    chain, state = ws_chain
    emitter = Emitter(chain)
    fid = add_filter(db, emitter, "Transfer", node="ws")
    wait_until(lambda: status(db) == "SUBSCRIBED", timeout=15, what="SUBSCRIBED")
    first = emitter.call("transfer(address,uint256)", DEPLOYER, 1)
    arrives_quickly(db, fid, 1)

    chain.stop()  # anvil writes its --state file on the way out
    wait_until(lambda: status(db) == "DOWN", timeout=15, what="DOWN while the node is away")
    chain.start("--state", str(state))
    chain.mine(3)  # blocks the worker has not seen: the gap after the reconnect

    wait_until(lambda: status(db) == "SUBSCRIBED", timeout=30, what="SUBSCRIBED again")
    wait_caught_up(db, "ws", chain.block_number())
    last = emitter.call("transfer(address,uint256)", DEPLOYER, 2)
    arrives_quickly(db, fid, 2)
    assert [(r[6], r[2][0]["value"]) for r in rows(db, fid)] == [
        (first["transactionHash"], 1), (last["transactionHash"], 2)]


def test_a_subscription_that_goes_silent_is_made_again(cluster, db, anvil, emitter):
    """The socket stays open and calls are answered, but no head is pushed
    while blocks are mined: polling goes on, and the follower subscribes again."""
    proxy = WsProxy(anvil.port)
    proxy.start()
    db.execute("SELECT eventeum.add_node('silent', %s, %s)",
               (proxy.url, '{"blockStrategy": "PUBSUB", "pollingInterval": 500, "numBlocksToWait": 0}'))
    try:
        wait_until(lambda: db.execute("SELECT status FROM eventeum.node_status WHERE name = 'silent'")
                   .fetchone()[0] == "SUBSCRIBED", timeout=30, what="SUBSCRIBED")
        fid = add_filter(db, emitter, "Transfer", node="silent")
        proxy.silent = True
        receipts = []
        for value in range(1, 7):
            receipts.append(emitter.call("transfer(address,uint256)", DEPLOYER, value))
            time.sleep(0.5)
        wait_caught_up(db, "silent", int(receipts[-1]["blockNumber"], 16))
        assert proxy.dropped > 0, "heads were held back, or this test proves nothing"
        wait_until(lambda: "went silent" in cluster.log_text(), timeout=30, what="the follower to notice")
        proxy.silent = False
        last = emitter.call("transfer(address,uint256)", DEPLOYER, 7)
        wait_caught_up(db, "silent", int(last["blockNumber"], 16))
        assert [r[2][0]["value"] for r in rows(db, fid)] == [1, 2, 3, 4, 5, 6, 7]
    finally:
        for (fid,) in db.execute("SELECT id FROM eventeum.contract_event_filters WHERE node = 'silent'").fetchall():
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node('silent')")
        proxy.stop()
