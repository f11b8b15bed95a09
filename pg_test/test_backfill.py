"""startBlock backfill over thousands of blocks, through a node that refuses
large eth_getLogs ranges, with nothing lost or duplicated at the boundary
between backfill and live following."""

import pytest
from conftest import POLL_MS, wait_caught_up
from harness import DEPLOYER, RpcProxy, wait_until
from test_contract_events import rows

MAX_RANGE = 300


@pytest.fixture(scope="module")
def limited(cluster, anvil):
    proxy = RpcProxy(anvil.url, max_range=MAX_RANGE)
    proxy.start()
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('limited', %s, %s)",
                   (proxy.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 2, "blockNotification": false}}'))
        wait_caught_up(db, "limited", anvil.block_number(), timeout=60)
    yield proxy
    with cluster.connect() as db:
        for (fid,) in db.execute("SELECT id FROM eventeum.contract_event_filters WHERE node = 'limited'").fetchall():
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node('limited')")
    proxy.stop()


def transfer(emitter, value):
    return emitter.call("transfer(address,uint256)", DEPLOYER, value)


def test_start_block_backfills_2000_blocks_with_range_splitting(db, anvil, emitter, limited):
    anvil.mine(1)
    start = anvil.block_number() + 1
    history = [transfer(emitter, 1)]
    anvil.mine(900)
    history.append(transfer(emitter, 2))
    anvil.mine(900)
    history.append(transfer(emitter, 3))
    anvil.mine(300)
    assert anvil.block_number() - start >= 2000
    # Live following passes these blocks before the filter exists.
    wait_caught_up(db, "limited", anvil.block_number(), timeout=60)

    fid = db.execute("SELECT eventeum.add_filter(%s, %s, 'limited', start_block => %s)",
                     (emitter.address, emitter.signature("Transfer"), start)).fetchone()[0]
    live = transfer(emitter, 4)
    anvil.mine(2)

    wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                  (fid,)).fetchone() == (True,), timeout=120, what="the backfill to finish")
    wait_until(lambda: len(rows(db, fid)) >= 4, what="the live event")
    wait_caught_up(db, "limited", anvil.block_number())
    got = rows(db, fid)
    assert [(r[6], r[2][0]["value"], r[3]) for r in got] == [
        (r["transactionHash"], v, "CONFIRMED") for r, v in zip(history + [live], [1, 2, 3, 4])
    ], "each event exactly once, in block order"

    from_block, to_block, current, eta = db.execute(
        "SELECT from_block, to_block, current_block, eta FROM eventeum.backfill_status WHERE filter_id = %s",
        (fid,)).fetchone()
    assert from_block == start and current == to_block and to_block < int(live["blockNumber"], 16)
    assert eta is not None and eta.total_seconds() == 0
    assert limited.refused_ranges > 0, "the node refused large ranges and the follower split them"
    assert 0 < limited.largest_served_range <= MAX_RANGE


def test_a_start_block_in_the_future_skips_earlier_events(db, anvil, emitter, limited):
    start = anvil.block_number() + 3
    fid = db.execute("SELECT eventeum.add_filter(%s, %s, 'limited', start_block => %s)",
                     (emitter.address, emitter.signature("Transfer"), start)).fetchone()[0]
    early = transfer(emitter, 1)
    assert int(early["blockNumber"], 16) < start
    anvil.mine(3)
    late = transfer(emitter, 2)
    wait_caught_up(db, "limited", int(late["blockNumber"], 16))
    assert [r[6] for r in rows(db, fid)] == [late["transactionHash"]]
