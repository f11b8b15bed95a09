"""Forks, made with anvil_reorg: events in orphaned blocks become INVALIDATED,
events in the new canonical blocks are stored under their new block hash."""

import json

from conftest import wait_caught_up
from harness import DEPLOYER, wait_until
from test_contract_events import add_filter, param, rows

REORG_WAIT = 2  # numBlocksToWaitBeforeInvalidating's default


def statuses(db, fid):
    return [(r[6], r[7], r[3]) for r in rows(db, fid)]  # (tx hash, block hash, status)


def reorg(anvil, depth, reinclude=()):
    """Replaces the last `depth` blocks; `reinclude` is [(raw tx, block offset)]."""
    anvil.rpc("anvil_reorg", depth, [[raw, offset] for raw, offset in reinclude])
    anvil.mine(REORG_WAIT)
    return anvil.block_number()


def raw_tx(anvil, receipt):
    return anvil.rpc("eth_getRawTransactionByHash", receipt["transactionHash"])


def transfer(emitter, value):
    return emitter.call("transfer(address,uint256)", DEPLOYER, value)


def reorgs_counted(db, node):
    return db.execute("""SELECT COALESCE(sum(value), 0) FROM eventeum.metrics
                          WHERE name = 'eventeum_reorgs_total' AND labels ->> 'node' = %s""", (node,)).fetchone()[0]


def settle(anvil, emitter, blocks):
    """Buries the deployment so that a reorg does not remove the contract."""
    anvil.mine(blocks)


def assert_first_two_reincluded(db, fid, receipts):
    """After a fork that replaced the blocks of five transfers (values 1 to
    5) and re-included the first two: the five old rows are INVALIDATED and
    the first two are CONFIRMED again in their new blocks."""
    wait_until(lambda: len(rows(db, fid)) == 7, what="the re-included events")
    got = rows(db, fid)
    old = {r["blockHash"] for r in receipts}
    assert sorted(r[3] for r in got if r[7] in old) == ["INVALIDATED"] * 5
    new = [r for r in got if r[7] not in old]
    assert [(r[6], r[2][0]["value"], r[3]) for r in new] == [
        (receipts[0]["transactionHash"], 1, "CONFIRMED"),
        (receipts[1]["transactionHash"], 2, "CONFIRMED"),
    ]


def test_depth_1_reorg_that_drops_the_transaction(cluster, db, anvil, emitter):
    settle(anvil, emitter, 3)
    fid = add_filter(db, emitter, "Transfer")
    receipt = transfer(emitter, 1)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert statuses(db, fid) == [(receipt["transactionHash"], receipt["blockHash"], "CONFIRMED")]
    reorgs_before = reorgs_counted(db, "default")

    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        head = reorg(anvil, 1)
        wait_until(lambda: statuses(db, fid)[0][2] == "INVALIDATED", what="the event to be invalidated")
        wait_caught_up(db, "default", head)
        messages = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert statuses(db, fid) == [(receipt["transactionHash"], receipt["blockHash"], "INVALIDATED")]
    assert [(m["details"]["filterId"], m["details"]["status"]) for m in messages] == [(fid, "INVALIDATED")]
    assert reorgs_counted(db, "default") == reorgs_before + 1, "the metrics count the fork once"

    after = transfer(emitter, 2)
    wait_caught_up(db, "default", int(after["blockNumber"], 16))
    assert [r[3] for r in rows(db, fid)] == ["INVALIDATED", "CONFIRMED"], "following goes on after the fork"


def test_depth_2_reorg_that_reincludes_the_transaction_in_another_block(db, anvil, emitter):
    settle(anvil, emitter, 3)
    fid = add_filter(db, emitter, "Transfer")
    anvil.mine(1)
    receipt = transfer(emitter, 7)
    mined = int(receipt["blockNumber"], 16)
    wait_caught_up(db, "default", mined)

    head = reorg(anvil, 2, [(raw_tx(anvil, receipt), 0)])  # now in block mined - 1
    new_receipt = anvil.rpc("eth_getTransactionReceipt", receipt["transactionHash"])
    assert int(new_receipt["blockNumber"], 16) == mined - 1
    wait_caught_up(db, "default", head)
    wait_until(lambda: len(rows(db, fid)) == 2, what="the re-included event")
    got = rows(db, fid)
    assert [(r[6], r[7], r[4], r[3]) for r in got] == [
        (receipt["transactionHash"], new_receipt["blockHash"], mined - 1, "CONFIRMED"),
        (receipt["transactionHash"], receipt["blockHash"], mined, "INVALIDATED"),
    ]
    assert got[0][2] == [param("uint256", 7)]


def test_deep_reorg_invalidates_everything_above_the_ancestor(db, anvil, emitter):
    settle(anvil, emitter, 12)
    fid = add_filter(db, emitter, "Transfer", node="deep")
    receipts = [transfer(emitter, v) for v in range(1, 6)]
    anvil.mine(4)  # the first transfers are CONFIRMED (3 deep) before the fork
    wait_caught_up(db, "deep", anvil.block_number())
    assert [r[3] for r in rows(db, fid)] == ["CONFIRMED"] * 5

    # 9 blocks replaced: all 5 transfers leave; the first two come back, each one
    # block later. (A re-mined block with the same content and timestamp would
    # keep its hash and stay canonical, so every original block must change.)
    head = reorg(anvil, 9, [(raw_tx(anvil, receipts[0]), 1), (raw_tx(anvil, receipts[1]), 3)])
    anvil.mine(3)
    wait_caught_up(db, "deep", head + 3)
    assert_first_two_reincluded(db, fid, receipts)


def test_a_reorg_deeper_than_the_window_is_reported(cluster, db, anvil, emitter):
    # Every depth option at 0: the fork window is the 32-block margin alone.
    db.execute("SELECT eventeum.add_node('shallow', %s, %s)", (anvil.url, json.dumps(
        {"pollingInterval": 100, "numBlocksToWait": 0, "numBlocksToReplay": 0,
         "numBlocksToWaitBeforeInvalidating": 0})))
    try:
        settle(anvil, emitter, 50)
        wait_caught_up(db, "shallow", anvil.block_number())
        fid = add_filter(db, emitter, "Transfer", node="shallow")
        receipts = [transfer(emitter, v) for v in (1, 2)]
        anvil.mine(38)  # the first transfer is now 39 blocks deep, the second 38: both beyond the window
        recent = transfer(emitter, 3)
        wait_caught_up(db, "shallow", anvil.block_number())

        head = reorg(anvil, 42)  # drops all three
        wait_caught_up(db, "shallow", head)
        report = wait_until(lambda: db.execute(
            "SELECT last_reorg FROM eventeum.node_status WHERE name = 'shallow'").fetchone()[0],
            what="the deep reorg to be reported")
        assert "deeper than the fork window" in report
        by_tx = {r[6]: r[3] for r in rows(db, fid)}
        assert by_tx[recent["transactionHash"]] == "INVALIDATED", "within the window: invalidated"
        # Below the window the follower can prove nothing; those blocks were assumed final.
        assert [by_tx[r["transactionHash"]] for r in receipts] == ["CONFIRMED", "CONFIRMED"]
        assert "deeper than the fork window" in cluster.log_text()
    finally:
        for (f,) in db.execute("SELECT id FROM eventeum.contract_event_filters WHERE node = 'shallow'").fetchall():
            db.execute("SELECT eventeum.remove_filter(%s)", (f,))
        db.execute("SELECT eventeum.remove_node('shallow')")


def test_confirmed_is_final_keeps_a_confirmed_event_a_fork_removed(db, anvil, emitter):
    """Node option confirmedIsFinal: Eventeum never took back what it had
    CONFIRMED. On such a node the orphaned event stays CONFIRMED, with no
    INVALIDATED message; an UNCONFIRMED one is still invalidated."""
    settle(anvil, emitter, 3)
    db.execute("SELECT eventeum.add_node('final', %s, %s)", (anvil.url, json.dumps(
        {"pollingInterval": 100, "numBlocksToWait": 1, "confirmedIsFinal": True})))
    group = "final_group"
    db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['CONTRACT_EVENT'])", (group,))
    try:
        wait_caught_up(db, "final", anvil.block_number())
        fid = add_filter(db, emitter, "Transfer", node="final")
        confirmed = transfer(emitter, 1)
        unconfirmed = transfer(emitter, 2)  # one block later: confirms the first only
        wait_caught_up(db, "final", int(unconfirmed["blockNumber"], 16))
        assert [r[3] for r in rows(db, fid)] == ["CONFIRMED", "UNCONFIRMED"]

        head = reorg(anvil, 2)
        wait_until(lambda: [r[3] for r in rows(db, fid)] == ["CONFIRMED", "INVALIDATED"],
                   what="the unconfirmed event invalidated")
        wait_caught_up(db, "final", head)
        assert [(r[6], r[3]) for r in rows(db, fid)] == [
            (confirmed["transactionHash"], "CONFIRMED"), (unconfirmed["transactionHash"], "INVALIDATED")]
        sent = {}
        for _, p in db.execute("SELECT type, payload FROM eventeum.poll(%s, 100)", (group,)).fetchall():
            if p["details"]["filterId"] == fid:
                sent.setdefault(p["details"]["transactionHash"], []).append(p["details"]["status"])
        # The first may have been seen UNCONFIRMED before the second's block.
        assert sent[confirmed["transactionHash"]] in (["CONFIRMED"], ["UNCONFIRMED", "CONFIRMED"]), \
            "no INVALIDATED for the CONFIRMED event"
        assert sent[unconfirmed["transactionHash"]] == ["UNCONFIRMED", "INVALIDATED"]
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    finally:
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))
        db.execute("SELECT eventeum.remove_node('final')")
