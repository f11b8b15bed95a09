"""Transaction monitors and block events against anvil."""

import json

import psycopg
import pytest
from conftest import POLL_MS, wait_caught_up
from harness import DEPLOYER, Emitter, to_checksum, wait_until

# anvil's second dev account, so that FROM_ADDRESS matches only this test's transactions.
SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def txs_node(cluster, anvil):
    """A node that asks for revert reasons."""
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node('txs', %s, %s)", (anvil.url, json.dumps(
            {"pollingInterval": POLL_MS, "numBlocksToWait": 0, "addTransactionRevertReason": True})))
        wait_caught_up(db, "txs", anvil.block_number())
    yield "txs"
    with cluster.connect() as db:
        db.execute("DELETE FROM eventeum.transaction_monitors WHERE node = 'txs'")
        db.execute("SELECT eventeum.remove_node('txs')")


def add_monitor(db, **body):
    return db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(body),)).fetchone()[0]


def transactions(db, monitor_id):
    return db.execute(
        """SELECT hash, from_address, to_address, contract_address, value::text, nonce, block_number,
                  block_hash, transaction_index, status::text, revert_reason
             FROM eventeum.transactions WHERE monitor_id = %s ORDER BY block_number, hash""",
        (monitor_id,)).fetchall()


def messages(listener, channel, timeout=1.0):
    """The notifications already delivered: callers first wait for the commit that sends them."""
    return [json.loads(n.payload) for n in listener.notifies(timeout=timeout) if n.channel == channel]


def fresh_address(n: int) -> str:
    return to_checksum(f"0x{n:040x}")


def test_to_address_monitor_sees_a_plain_value_transfer(cluster, db, anvil, txs_node):
    target = fresh_address(0xA11CE)
    mid = add_monitor(db, type="TO_ADDRESS", transactionIdentifierValue=target.lower(), nodeName=txs_node)
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_transaction_events")
        receipt = anvil.send(target, value=12345)
        wait_caught_up(db, txs_node, int(receipt["blockNumber"], 16))
        got = messages(listener, "eventeum_transaction_events")
    tx = anvil.rpc("eth_getTransactionByHash", receipt["transactionHash"])
    block = anvil.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
    assert transactions(db, mid) == [(
        receipt["transactionHash"], DEPLOYER, target, None, "12345", int(tx["nonce"], 16),
        int(receipt["blockNumber"], 16), receipt["blockHash"], 0, "CONFIRMED", None)]
    assert got == [{
        "id": receipt["transactionHash"],
        "type": "TRANSACTION",
        "retries": 0,
        "details": {
            "hash": receipt["transactionHash"],
            "nonce": tx["nonce"],
            "blockHash": receipt["blockHash"],
            "blockNumber": receipt["blockNumber"],
            "timestamp": int(block["timestamp"], 16),
            "transactionIndex": "0x0",
            "from": DEPLOYER,
            "to": target,
            "value": hex(12345),
            "nodeName": txs_node,
            "input": "0x",
            "status": "CONFIRMED",
        },
    }]


def test_from_address_monitor_reports_a_contract_creation(db, anvil, txs_node):
    mid = add_monitor(db, type="FROM_ADDRESS", transactionIdentifierValue=SENDER, nodeName=txs_node,
                      statuses=["CONFIRMED"])
    created = Emitter(anvil, sender=SENDER)
    receipt = created.deployment
    wait_caught_up(db, txs_node, int(receipt["blockNumber"], 16))
    (row,) = transactions(db, mid)
    assert row[0] == receipt["transactionHash"]
    assert (row[1], row[2], row[3]) == (SENDER, None, created.address)
    assert row[9] == "CONFIRMED"


def test_failed_transaction_with_revert_reason_and_a_failed_only_monitor(cluster, db, anvil, txs_node):
    emitter = Emitter(anvil)
    mid = add_monitor(db, type="TO_ADDRESS", transactionIdentifierValue=emitter.address, nodeName=txs_node,
                      statuses=["FAILED"])
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_transaction_events")
        ok = emitter.call("transfer(address,uint256)", DEPLOYER, 1)
        failed = anvil.send(emitter.address, emitter.calldata("fail(string)", b"not today"), expect_success=False)
        wait_caught_up(db, txs_node, int(failed["blockNumber"], 16))
        got = [m for m in messages(listener, "eventeum_transaction_events") if m["details"]["nodeName"] == txs_node]
    rows = transactions(db, mid)
    assert [(r[0], r[9], r[10]) for r in rows] == [(failed["transactionHash"], "FAILED", "not today")]
    assert ok["transactionHash"] not in {r[0] for r in rows}, "a FAILED-only monitor stores no success"
    assert [(m["id"], m["details"]["status"], m["details"]["revertReason"]) for m in got] == [
        (failed["transactionHash"], "FAILED", "not today")]


def test_hash_monitor_registered_before_mining_confirms_then_ends(cluster, db, anvil):
    anvil.rpc("evm_setAutomine", False)
    try:
        tx_hash = anvil.submit(fresh_address(0xB0B), value=1)
        mid = add_monitor(db, type="HASH", transactionIdentifierValue=tx_hash, nodeName="deep",
                          statuses=["UNCONFIRMED", "CONFIRMED"])
        with cluster.connect() as listener:
            listener.execute("LISTEN eventeum_transaction_events")
            anvil.mine(1)
            mined = anvil.rpc("eth_getTransactionReceipt", tx_hash)
            block = int(mined["blockNumber"], 16)
            wait_caught_up(db, "deep", block)
            assert [r[9] for r in transactions(db, mid)] == ["UNCONFIRMED"]
            assert mid in [m["id"] for (m,) in db.execute("SELECT * FROM eventeum.list_transaction_monitors()")]

            anvil.mine(3)
            wait_caught_up(db, "deep", block + 3)
            got = [m["details"]["status"] for m in messages(listener, "eventeum_transaction_events")
                   if m["id"] == tx_hash]
    finally:
        anvil.rpc("evm_setAutomine", True)
    assert [r[9] for r in transactions(db, mid)] == ["CONFIRMED"]
    assert got == ["UNCONFIRMED", "CONFIRMED"]
    listed = [m for (m,) in db.execute("SELECT * FROM eventeum.list_transaction_monitors()").fetchall()]
    assert mid not in [m["id"] for m in listed], "a HASH monitor ends once its transaction is final"


def test_a_reorg_invalidates_a_monitored_transaction_and_its_block(cluster, db, anvil):
    target = fresh_address(0xC0FFEE)
    mid = add_monitor(db, type="TO_ADDRESS", transactionIdentifierValue=target,
                      statuses=["UNCONFIRMED", "CONFIRMED", "FAILED", "INVALIDATED"])
    anvil.mine(2)
    receipt = anvil.send(target, value=5)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert [r[9] for r in transactions(db, mid)] == ["CONFIRMED"]
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_transaction_events")
        anvil.rpc("anvil_reorg", 1, [])
        anvil.mine(2)
        wait_until(lambda: [r[9] for r in transactions(db, mid)] == ["INVALIDATED"], what="INVALIDATED")
        got = [m["details"]["status"] for m in messages(listener, "eventeum_transaction_events")
               if m["id"] == receipt["transactionHash"]]
    assert got == ["INVALIDATED"]
    assert db.execute("SELECT status FROM eventeum.blocks WHERE node = 'default' AND hash = %s",
                      (receipt["blockHash"],)).fetchone() == ("INVALIDATED",)


def test_block_rows_and_block_notifications(cluster, db, anvil):
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_block_events")
        start = anvil.block_number()
        anvil.mine(2)
        wait_caught_up(db, "default", start + 2)
        got = [m for m in messages(listener, "eventeum_block_events")
               if m["details"]["nodeName"] == "default"]
    expected = []
    for number in (start + 1, start + 2):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), False)
        expected.append({"id": block["hash"], "type": "BLOCK", "retries": 0, "details": {
            "number": number, "hash": block["hash"], "timestamp": int(block["timestamp"], 16),
            "nodeName": "default"}})
        assert db.execute("SELECT number, parent_hash, status FROM eventeum.blocks WHERE node = 'default' "
                          "AND hash = %s", (block["hash"],)).fetchone() == (number, block["parentHash"], "CANONICAL")
    assert got == expected


def test_block_notification_off_stores_no_blocks(db, anvil):
    db.execute("SELECT eventeum.add_node('quiet', %s, %s)",
               (anvil.url, json.dumps({"pollingInterval": POLL_MS, "blockNotification": False})))
    try:
        anvil.mine(2)
        wait_caught_up(db, "quiet", anvil.block_number())
        assert db.execute("SELECT count(*) FROM eventeum.blocks WHERE node = 'quiet'").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM eventeum.recent_blocks WHERE node = 'quiet'").fetchone()[0] > 0
    finally:
        db.execute("SELECT eventeum.remove_node('quiet')")


HASH = "0x" + "ab" * 32
BAD_MONITORS = [
    ("bad hash", {"type": "HASH", "transactionIdentifierValue": "0x1234"}, "22023"),
    ("bad address", {"type": "TO_ADDRESS", "transactionIdentifierValue": "0xnothex"}, "22023"),
    ("bad checksum", {"type": "FROM_ADDRESS", "transactionIdentifierValue": "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"}, "22023"),
    ("unknown type", {"type": "BY_VALUE", "transactionIdentifierValue": HASH}, "22023"),
    ("missing type", {"transactionIdentifierValue": HASH}, "22023"),
    ("unknown status", {"type": "HASH", "transactionIdentifierValue": HASH, "statuses": ["DONE"]}, "22023"),
    ("empty statuses", {"type": "HASH", "transactionIdentifierValue": HASH, "statuses": []}, "22023"),
    ("empty value", {"type": "HASH", "transactionIdentifierValue": ""}, "22023"),
    ("empty node", {"type": "HASH", "transactionIdentifierValue": HASH, "nodeName": ""}, "22023"),
    ("unknown key", {"type": "HASH", "transactionIdentifierValue": HASH, "colour": 1}, "22023"),
    ("unknown node", {"type": "HASH", "transactionIdentifierValue": HASH, "nodeName": "nowhere"}, "42704"),
]


@pytest.mark.parametrize("what,body,sqlstate", BAD_MONITORS, ids=[b[0] for b in BAD_MONITORS])
def test_bad_monitors_are_rejected_with_their_sqlstate(db, what, body, sqlstate):
    if not db.execute("SELECT 1 FROM eventeum.transaction_monitors WHERE id = 'monitor-taken'").fetchone():
        add_monitor(db, id="monitor-taken", type="HASH", transactionIdentifierValue=HASH)
    before = db.execute("SELECT count(*) FROM eventeum.transaction_monitors").fetchone()
    with pytest.raises(psycopg.Error) as raised:
        add_monitor(db, **body)
    assert raised.value.sqlstate == sqlstate, f"{what}: {raised.value}"
    assert db.execute("SELECT count(*) FROM eventeum.transaction_monitors").fetchone() == before


def test_removing_monitors(db):
    with pytest.raises(psycopg.Error) as raised:
        db.execute("SELECT eventeum.remove_transaction_monitor('never-added')")
    assert raised.value.sqlstate == "42704"
    mid = add_monitor(db, type="HASH", transactionIdentifierValue="0x" + "cd" * 32, nodeName="deep")
    with pytest.raises(psycopg.Error) as raised:
        db.execute("SELECT eventeum.remove_node('deep')")
    assert raised.value.sqlstate == "2BP01"
    db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (mid,))
    assert db.execute("SELECT count(*) FROM eventeum.transaction_monitors WHERE id = %s", (mid,)).fetchone() == (0,)


def test_a_confirmed_only_monitor_shows_the_transaction_once_confirmed(db, anvil):
    target = fresh_address(0xD00D)
    mid = add_monitor(db, type="TO_ADDRESS", transactionIdentifierValue=target, nodeName="deep",
                      statuses=["CONFIRMED"])
    receipt = anvil.send(target, value=3)
    mined = int(receipt["blockNumber"], 16)
    wait_caught_up(db, "deep", mined)
    assert transactions(db, mid) == [], "UNCONFIRMED was not asked for, so nothing is shown yet"
    anvil.mine(3)
    wait_caught_up(db, "deep", mined + 3)
    assert [(r[0], r[9]) for r in transactions(db, mid)] == [(receipt["transactionHash"], "CONFIRMED")]


def test_following_blocks_leaves_the_configuration_version_alone(db, anvil):
    # A step that changes no configuration must not move config_version: a
    # move makes every step in flight stale, so each block was fetched twice
    # and the whole configuration reloaded after it (a DELETE of ended HASH
    # monitors ran on every step, and its statement trigger fires for none).
    def version():
        return db.execute("SELECT version FROM eventeum.config_version").fetchone()[0]

    def follow(blocks):
        anvil.mine(blocks)
        for node in ("default", "deep"):
            wait_caught_up(db, node, anvil.block_number())

    follow(1)
    before = version()
    follow(3)
    assert version() == before

    # With a HASH monitor still waiting for its transaction, too.
    mid = add_monitor(db, type="HASH", transactionIdentifierValue="0x" + "cd" * 32, nodeName="default")
    try:
        follow(1)
        waiting = version()
        follow(3)
        assert version() == waiting
    finally:
        db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (mid,))
