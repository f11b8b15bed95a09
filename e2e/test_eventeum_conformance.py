"""Eventeum 0.9's integration tests (server/src/test/java/.../integrationtest/
*IT.java), ported as black-box tests: a real cluster, anvil, real brokers,
and Eventeum's own test contract (e2e/contracts/eventeum, see its
README). Each test names the Eventeum test it ports. Where eventeum differs
on purpose (docs/MIGRATING.md, "Differences on purpose") the test asserts
eventeum's documented behaviour and says so.

The scenarios that restart the cluster come last in this file."""

import json
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import POLL_MS, wait_caught_up
from harness import DEPLOYER, Emitter, keccak256, wait_until

ARTIFACT = Path(__file__).parent / "contracts" / "eventeum" / "EventEmitter.json"
SENDER = DEPLOYER  # Eventeum's CREDS: the account that sends every call

# The field order of Eventeum's ContractEventDetails and BlockDetails, as
# Jackson writes them (getId() last); eventeum adds timestamp/nodeName.
CONTRACT_EVENT_FIELDS = ["name", "filterId", "nodeName", "indexedParameters", "nonIndexedParameters",
                         "transactionHash", "logIndex", "blockNumber", "blockHash", "address", "status",
                         "eventSpecificationSignature", "networkName", "timestamp", "id"]
BLOCK_FIELDS = ["number", "hash", "timestamp", "nodeName"]


def bytes32(text: bytes) -> int:
    """A bytesN argument as the ABI word that holds it (left-aligned)."""
    return int.from_bytes(text.ljust(32, b"\0"), "big")


def hex32(text: bytes) -> str:
    return "0x" + text.ljust(32, b"\0").hex()


def signed(value: int) -> int:
    """A negative intN argument as its two's complement word."""
    return value % (1 << 256)


def spec_signature(name: str, types: list[str]) -> str:
    """Web3jUtil.getSignature: keccak256 of the canonical signature, hex."""
    return "0x" + keccak256(f"{name}({','.join(types)})".encode()).hex()


def dummy_event_filter(fid, address, node="default", event="DummyEvent"):
    """BaseIntegrationTest.createDummyEventFilter (and ...NotOrderedFilter)."""
    if event == "DummyEvent":
        indexed = [{"position": 0, "type": "BYTES32"}, {"position": 1, "type": "ADDRESS"}]
        non_indexed = [{"position": 2, "type": "UINT256"}, {"position": 3, "type": "STRING"},
                       {"position": 4, "type": "UINT8"}]
    else:
        indexed = [{"position": 0, "type": "BYTES32"}, {"position": 2, "type": "ADDRESS"}]
        non_indexed = [{"position": 1, "type": "UINT256"}, {"position": 3, "type": "STRING"},
                       {"position": 4, "type": "UINT8"}]
    return {"id": fid, "contractAddress": address, "node": node,
            "eventSpecification": {"eventName": event, "indexedParameterDefinitions": indexed,
                                   "nonIndexedParameterDefinitions": non_indexed}}


def register(db, body) -> str:
    return db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(body),)).fetchone()[0]


@pytest.fixture
def contract(anvil, cluster):
    """deployEventEmitterContract(): a fresh EventEmitter for each test."""
    return Emitter(anvil, artifact=ARTIFACT)


@pytest.fixture
def group(db):
    """A consumer group taking contract events and blocks: every message the
    brokers get, drained exactly (duplicates show)."""
    name = f"conf_{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['CONTRACT_EVENT', 'BLOCK'])", (name,))
    yield name
    db.execute("SELECT eventeum.remove_broadcaster(%s)", (name,))


def drain(db, name, *filter_ids):
    """The contract events the group got since the last drain, of these filters
    (other tests' filters may still be registered), in the order sent."""
    rows = db.execute("SELECT type, payload FROM eventeum.poll(%s, 1000, '1 hour')", (name,)).fetchall()
    return [p for kind, p in rows if kind == "CONTRACT_EVENT" and p["details"]["filterId"] in filter_ids]


def emit_dummy(contract, function="emitEvent(bytes32,uint256,string)"):
    return contract.call(function, bytes32(b"BytesValue"), 10, b"StringValue")


def verify_dummy_event_details(details, fid, contract, receipt, status, indexed_bytes=hex32(b"BytesValue"),
                               event="DummyEvent"):
    """BaseIntegrationTest.verifyDummyEventDetails."""
    assert details["name"] == event
    assert details["filterId"] == fid
    assert details["status"] == status
    assert details["address"] == contract.address
    assert details["transactionHash"] == receipt["transactionHash"]
    assert details["blockHash"] == receipt["blockHash"]
    assert details["blockNumber"] == int(receipt["blockNumber"], 16)
    assert details["id"] == f"{receipt['transactionHash']}-{receipt['blockHash']}-{details['logIndex']}"
    indexed = [(p["type"], p["value"]) for p in details["indexedParameters"]]
    non_indexed = [(p["type"], p["value"]) for p in details["nonIndexedParameters"]]
    assert indexed == [("bytes32", indexed_bytes), ("address", SENDER)]
    assert non_indexed == [("uint256", 10), ("string", "StringValue"), ("uint8", 1)]
    types = ["bytes32", "address", "uint256", "string", "uint8"] if event == "DummyEvent" \
        else ["bytes32", "uint256", "address", "string", "uint8"]
    assert details["eventSpecificationSignature"] == spec_signature(event, types)


def test_registration_returns_ids_and_unregistering_stops_events(db, contract, group):
    """MainBroadcasterTests: doTestRegisterEventFilterReturnsCorrectId,
    ...ReturnsCreatedIdWhenNotSet, ...SavesFilterInDb,
    doTestUnregisterEventFilterDeletesFilterInDb, doTestUnregisterNonExistentFilter
    (Eventeum answered 404; the SQL API raises 42704) and
    doTestContractEventForUnregisteredEventFilterNotBroadcast."""
    fid = f"dummy-{uuid.uuid4().hex[:8]}"
    assert register(db, dummy_event_filter(fid, contract.address)) == fid
    without_id = dummy_event_filter(None, contract.address)
    del without_id["id"]
    created = register(db, without_id)
    uuid.UUID(created)  # a UUID when the body has no id
    saved = {f["id"]: f for (f,) in db.execute("SELECT * FROM eventeum.list_filters()")}
    assert saved[fid]["eventSpecification"]["eventName"] == "DummyEvent"
    assert saved[fid]["contractAddress"].lower() == contract.address.lower()
    db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    db.execute("SELECT eventeum.remove_filter(%s)", (created,))
    assert db.execute("SELECT count(*) FROM eventeum.contract_event_filters WHERE id IN (%s, %s)",
                      (fid, created)).fetchone() == (0,)
    with pytest.raises(psycopg.Error) as missing:
        db.execute("SELECT eventeum.remove_filter('NonExistent')")
    assert missing.value.sqlstate == "42704"

    receipt = emit_dummy(contract)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert db.execute("SELECT count(*) FROM eventeum.contract_events WHERE transaction_hash = %s",
                      (receipt["transactionHash"],)).fetchone() == (0,)
    assert drain(db, group, fid, created) == [], "nothing for a filter that was removed"


def test_unconfirmed_then_one_confirmed_after_the_threshold(db, anvil, contract, group):
    """MainBroadcasterTests: doTestBroadcastsUnconfirmedEventAfterInitialEmit,
    doTestBroadcastsConfirmedEventAfterBlockThresholdReached and
    doTestBroadcastsNotOrderedEvent, on the node that waits 3 blocks."""
    fid = register(db, dummy_event_filter(f"dummy-{uuid.uuid4().hex[:8]}", contract.address, node="deep"))
    nid = register(db, dummy_event_filter(f"notord-{uuid.uuid4().hex[:8]}", contract.address, node="deep",
                                          event="DummyEventNotOrdered"))
    try:
        receipt = emit_dummy(contract)
        not_ordered = emit_dummy(contract, "emitEventNotOrdered(bytes32,uint256,string)")
        wait_caught_up(db, "deep", anvil.block_number())
        first = drain(db, group, fid, nid)
        assert [(m["details"]["filterId"], m["details"]["status"]) for m in first] == \
            [(fid, "UNCONFIRMED"), (nid, "UNCONFIRMED")]
        verify_dummy_event_details(first[0]["details"], fid, contract, receipt, "UNCONFIRMED")
        verify_dummy_event_details(first[1]["details"], nid, contract, not_ordered, "UNCONFIRMED",
                                   event="DummyEventNotOrdered")
        anvil.mine(3)
        wait_caught_up(db, "deep", anvil.block_number())
        confirmed = drain(db, group, fid, nid)
        assert [(m["details"]["filterId"], m["details"]["status"]) for m in confirmed] == \
            [(fid, "CONFIRMED"), (nid, "CONFIRMED")], "one CONFIRMED each, nothing else"
        verify_dummy_event_details(confirmed[0]["details"], fid, contract, receipt, "CONFIRMED")
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_filter(%s)", (nid,))


def test_zero_confirmations_send_one_confirmed(db, anvil, contract, group):
    """BroadcasterZeroConfirmationsIT: with numBlocksToWait 0 (the 'default'
    node) an event is sent once, CONFIRMED."""
    fid = register(db, dummy_event_filter(f"zero-{uuid.uuid4().hex[:8]}", contract.address))
    try:
        receipt = emit_dummy(contract)
        anvil.mine(2)
        wait_caught_up(db, "default", anvil.block_number())
        sent = drain(db, group, fid)
        assert [m["details"]["status"] for m in sent] == ["CONFIRMED"]
        verify_dummy_event_details(sent[0]["details"], fid, contract, receipt, "CONFIRMED")
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def test_http_bodies_are_eventeums_details_compact_in_its_field_order(db, anvil, contract, receiver):
    """HttpBroadcasterIT: the consumer parses the POSTed body as
    ContractEventDetails / BlockDetails: the bare details, compact JSON in
    Eventeum's field order, the same bytes every time."""
    name = f"hook_{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.add_broadcaster(%s, 'http', %s)", (name, json.dumps(
        {"contractEventsUrl": receiver.url + "/events", "blockEventsUrl": receiver.url + "/blocks"}),))
    fid = register(db, dummy_event_filter(f"http-{uuid.uuid4().hex[:8]}", contract.address))
    try:
        receipt = emit_dummy(contract)
        number = int(receipt["blockNumber"], 16)
        posted = lambda path: [r["raw"] for r in receiver.requests if r["path"] == path]  # noqa: E731
        wait_until(lambda: posted("/events"), timeout=30, what="the event POSTed")
        wait_until(lambda: any(json.loads(b)["number"] == number for b in posted("/blocks")), timeout=30,
                   what="its block POSTed")
        raw = posted("/events")[0]
        details = json.loads(raw)
        assert list(details) == CONTRACT_EVENT_FIELDS
        assert raw == json.dumps(details, separators=(",", ":"), ensure_ascii=False), "compact"
        verify_dummy_event_details(details, fid, contract, receipt, "CONFIRMED")
        raw_block = next(b for b in posted("/blocks") if json.loads(b)["number"] == number)
        block = json.loads(raw_block)
        assert list(block) == BLOCK_FIELDS and block["hash"] == receipt["blockHash"]
        assert raw_block == json.dumps(block, separators=(",", ":"))
        # The outbox holds those bytes, inside the message the other brokers get.
        stored = db.execute("SELECT payload FROM eventeum.outbox WHERE broadcaster = %s AND type = 'CONTRACT_EVENT'",
                            (name,)).fetchone()[0]
        assert stored == '{"id":"%s","type":"CONTRACT_EVENT","details":%s,"retries":0}' % (details["id"], raw)
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (name,))


def test_ascii_bytes(cluster, db, contract, group):
    """AsciiBytesIT: with bytesToAscii (GUC eventeum.bytes_to_ascii) a bytes32
    holding text is sent as the text."""
    db.execute("ALTER SYSTEM SET eventeum.bytes_to_ascii = on")
    db.execute("SELECT pg_reload_conf()")
    fid = register(db, dummy_event_filter(f"ascii-{uuid.uuid4().hex[:8]}", contract.address))
    try:
        def ascii_on():
            with cluster.connect() as conn:
                return conn.execute("SHOW eventeum.bytes_to_ascii").fetchone() == ("on",)
        wait_until(ascii_on, what="the reload")
        time.sleep(1)  # the worker rereads its configuration on its next turn
        receipt = emit_dummy(contract)
        wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
        sent = drain(db, group, fid)
        assert len(sent) == 1
        verify_dummy_event_details(sent[0]["details"], fid, contract, receipt, "CONFIRMED",
                                   indexed_bytes="BytesValue")
    finally:
        db.execute("ALTER SYSTEM RESET eventeum.bytes_to_ascii")
        db.execute("SELECT pg_reload_conf()")
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def test_supported_solidity_types(db, contract, group):
    """SupportedSolidityTypesIT (bytes16, indexed and not), ArraysIT (uint256[]
    and bytes32[]) and the additional types: BYTE (web3j's name for bytes1),
    indexed uint16 and int64, address[] and bool."""
    ids = [f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("b16", "arr", "add")]
    bodies = [
        {"eventName": "DummyEventBytes16", "indexedParameterDefinitions": [{"position": 0, "type": "BYTES16"}],
         "nonIndexedParameterDefinitions": [{"position": 1, "type": "BYTES16"}]},
        {"eventName": "DummyEventArray", "nonIndexedParameterDefinitions": [
            {"position": 0, "type": "UINT256[]"}, {"position": 1, "type": "BYTES32[]"}]},
        {"eventName": "DummyEventAdditionalTypes",
         "indexedParameterDefinitions": [{"position": 0, "type": "UINT16"}, {"position": 1, "type": "INT64"}],
         "nonIndexedParameterDefinitions": [{"position": 2, "type": "ADDRESS[]"}, {"position": 3, "type": "BYTE"},
                                            {"position": 4, "type": "BOOL"}]},
    ]
    for fid, spec in zip(ids, bodies):
        register(db, {"id": fid, "contractAddress": contract.address, "eventSpecification": spec})
    try:
        value16 = bytes(range(1, 17))
        contract.call("emitEventBytes16(bytes16)", bytes32(value16))
        contract.call("emitEventArray(uint256,uint256,bytes32,bytes32)", 1, 10,
                      bytes32(b"BytesValue"), bytes32(b"BytesValue2"))
        last = contract.call("emitEventAdditionalTypes(uint16,int64,bytes1)", 65535, signed(-5), bytes32(b"A"))
        wait_caught_up(db, "default", int(last["blockNumber"], 16))
        sent = {m["details"]["filterId"]: m["details"] for m in drain(db, group, *ids)}
        assert sorted(sent) == sorted(ids)

        b16 = sent[ids[0]]
        assert b16["indexedParameters"] == [{"type": "bytes16", "value": "0x" + value16.hex()}]
        assert b16["nonIndexedParameters"] == [{"type": "bytes16", "value": "0x" + value16.hex()}]

        arrays = sent[ids[1]]
        uints, hashes = (p["value"] for p in arrays["nonIndexedParameters"])
        assert [u["value"] for u in uints] == [1, 10]
        assert [h["value"] for h in hashes] == [hex32(b"BytesValue"), hex32(b"BytesValue2")]
        assert arrays["eventSpecificationSignature"] == spec_signature("DummyEventArray", ["uint256[]", "bytes32[]"])

        extra = sent[ids[2]]
        assert [(p["type"], p["value"]) for p in extra["indexedParameters"]] == [("uint16", 65535), ("int64", -5)]
        addresses, byte, flag = extra["nonIndexedParameters"]
        assert [a["value"] for a in addresses["value"]] == [SENDER, contract.address]
        assert (byte["type"], byte["value"]) == ("bytes1", "0x41"), "BYTE is bytes1"
        assert (flag["type"], flag["value"]) == ("bool", 1), "Eventeum sends a bool as its number"
    finally:
        for fid in ids:
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def transaction_messages(db, group, *hashes):
    rows = db.execute("SELECT payload FROM eventeum.poll(%s, 1000, '1 hour')", (group,)).fetchall()
    return [(p["id"], p["details"]["status"]) for (p,) in rows if p["id"] in hashes]


def test_multiple_hash_monitored_transactions_confirm_in_turn(db, anvil):
    """TransactionMonitorIT.testMultipleTransactions (with
    MainBroadcasterTests.doTestBroadcastsUnconfirmedTransactionAfterInitialMining
    and ...ConfirmedTransactionAfterBlockThresholdReached): three transactions,
    each monitored by hash before it is mined (Eventeum's default statuses),
    are sent UNCONFIRMED when mined and CONFIRMED each in turn, exactly when
    numBlocksToWait (3, the 'deep' node) blocks sit on top of it."""
    group = f"tx_{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['TRANSACTION'])", (group,))
    receiver = f"0x{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    hashes = []
    anvil.rpc("evm_setAutomine", False)
    try:
        for _ in range(3):
            tx_hash = anvil.submit(receiver, value=1)
            db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(
                {"type": "HASH", "transactionIdentifierValue": tx_hash, "nodeName": "deep"}),))
            anvil.mine(1)
            hashes.append(tx_hash)
        wait_caught_up(db, "deep", anvil.block_number())
        assert transaction_messages(db, group, *hashes) == [(h, "UNCONFIRMED") for h in hashes]
        for confirmed in hashes:
            anvil.mine(1)
            wait_caught_up(db, "deep", anvil.block_number())
            assert transaction_messages(db, group, *hashes) == [(confirmed, "CONFIRMED")]
        anvil.mine(3)
        wait_caught_up(db, "deep", anvil.block_number())
        assert transaction_messages(db, group, *hashes) == [], "nothing more: each HASH monitor ended"
    finally:
        anvil.rpc("evm_setAutomine", True)
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))


def test_contract_creation_transaction_contains_contract_address(db, anvil):
    """TransactionMonitorIT.testContractCreationTransactionContainsContractAddress:
    a FROM_ADDRESS monitor sees the deployment of Eventeum's contract, without
    `to` and with the new contract's (checksummed) address."""
    sender = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil's fourth account: only this test's
    group = f"tx_{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['TRANSACTION'])", (group,))
    monitor = db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(
        {"type": "FROM_ADDRESS", "transactionIdentifierValue": sender, "nodeName": "default"}),)).fetchone()[0]
    try:
        deployed = Emitter(anvil, sender=sender, artifact=ARTIFACT)
        wait_caught_up(db, "default", int(deployed.deployment["blockNumber"], 16))
        rows = db.execute("SELECT payload FROM eventeum.poll(%s, 1000, '1 hour')", (group,)).fetchall()
        sent = [p["details"] for (p,) in rows if p["details"]["from"].lower() == sender.lower()]
        assert len(sent) == 1, "once (numBlocksToWait 0: CONFIRMED at once)"
        assert sent[0]["hash"] == deployed.deployment["transactionHash"] and sent[0]["status"] == "CONFIRMED"
        assert "to" not in sent[0]
        assert sent[0]["contractAddress"] == deployed.address
    finally:
        db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (monitor,))
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))


def test_initial_start_block_is_where_a_new_node_starts(db, anvil, contract):
    """HttpStartBlockIT / WSStartBlockIT (BaseStartBlockTest): a node with
    initialStartBlock sends every block from it on, and its filters take the
    events from there: the one mined before it is not sent, the ones after are."""
    before = emit_dummy(contract)
    anvil.mine(2)
    start = anvil.block_number() + 1
    after = [emit_dummy(contract) for _ in range(2)]
    anvil.mine(2)
    node = f"from_{uuid.uuid4().hex[:6]}"
    db.execute("SELECT eventeum.add_node(%s, %s, %s)", (node, anvil.url, json.dumps(
        {"pollingInterval": POLL_MS, "numBlocksToWait": 0, "initialStartBlock": start})))
    fid = register(db, dummy_event_filter(f"start-{uuid.uuid4().hex[:8]}", contract.address, node=node))
    try:
        head = anvil.block_number()
        wait_caught_up(db, node, head)
        blocks = [n for (n,) in db.execute("SELECT number FROM eventeum.blocks WHERE node = %s ORDER BY number",
                                           (node,))]
        assert blocks == list(range(start, head + 1)), "every block from initialStartBlock, none before"
        wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s",
                                      (fid,)).fetchone() == (2,), what="the events after the start")
        got = {tx for (tx,) in db.execute("SELECT transaction_hash FROM eventeum.contract_events WHERE filter_id = %s",
                                          (fid,))}
        assert got == {r["transactionHash"] for r in after}
        assert before["transactionHash"] not in got
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_node(%s)", (node,))


def test_node_options_keep_eventeums_names_and_the_range_cap_has_its_own(db):
    """Eventeum's maxBlocksToSync and initialStartBlock are node options of
    those names; the most blocks per eth_getLogs is maxBlockRange."""
    node = f"opts_{uuid.uuid4().hex[:6]}"
    db.execute("SELECT eventeum.add_node(%s, 'http://127.0.0.1:1', %s)", (node, json.dumps(
        {"maxBlocksToSync": 4, "initialStartBlock": 3, "maxBlockRange": 500, "confirmedIsFinal": True})))
    try:
        options = db.execute("SELECT options FROM eventeum.nodes WHERE name = %s", (node,)).fetchone()[0]
        assert (options["maxBlocksToSync"], options["initialStartBlock"], options["maxBlockRange"],
                options["confirmedIsFinal"]) == (4, 3, 500, True)
        for bad in ({"maxBlockRange": -1}, {"initialStartBlock": "three"}, {"maxBlocksToSync": 10**9}):
            with pytest.raises(psycopg.Error) as refused:
                db.execute("SELECT eventeum.add_node('bad_opts', 'http://127.0.0.1:1', %s)", (json.dumps(bad),))
            assert refused.value.sqlstate == "22023", bad
    finally:
        db.execute("SELECT eventeum.remove_node(%s)", (node,))


# --- Scenarios that restart the cluster ------------------------------------

def restart(cluster, while_down):
    """ServiceRestartRecoveryTests.restartEventeum: stops the server, runs
    `while_down`, starts it again."""
    cluster.stop()
    try:
        while_down()
    finally:
        cluster.start()
    return cluster.connect_when_ready()


def test_max_blocks_to_sync_skips_older_blocks_on_restart(cluster, anvil):
    """MaxBlocksToSyncIT.onlySyncMaxBlocksOnStartup: with maxBlocksToSync 4 a
    node that restarts further behind sends the last 4 blocks only, the
    first being the head at restart minus 3."""
    node = f"sync4_{uuid.uuid4().hex[:6]}"
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node(%s, %s, %s)", (node, anvil.url, json.dumps(
            {"pollingInterval": POLL_MS, "numBlocksToWait": 0, "maxBlocksToSync": 4})))
        anvil.mine(1)
        wait_caught_up(db, node, anvil.block_number())
        last = db.execute("SELECT max(number) FROM eventeum.blocks WHERE node = %s", (node,)).fetchone()[0]
    with restart(cluster, lambda: anvil.mine(20)) as db:
        head = anvil.block_number()
        wait_caught_up(db, node, head, timeout=60)
        after = [n for (n,) in db.execute("SELECT number FROM eventeum.blocks WHERE node = %s AND number > %s "
                                          "ORDER BY number", (node, last))]
        assert after == list(range(head - 3, head + 1)), f"the last 4 blocks before {head} only"
        db.execute("SELECT eventeum.remove_node(%s)", (node,))


def test_a_restart_sends_each_missed_event_once_confirmed(cluster, anvil):
    """ServiceRestartRecoveryTests.doBroadcastMissedBlocksOnStartupAfterFailureTest
    and EventCatchupIT.testEventsCatchupOnStart: events mined while the server
    was down are sent after the restart in block order, each once: CONFIRMED,
    since they are deeper than numBlocksToWait (3) by then; and every missed
    block is sent, in order. Different on purpose: Eventeum sent the last
    block it had seen again after a restart; eventeum sends each block once."""
    node = f"catch_{uuid.uuid4().hex[:6]}"
    contract = Emitter(anvil, artifact=ARTIFACT)
    with cluster.connect() as db:
        db.execute("SELECT eventeum.add_node(%s, %s, %s)", (node, anvil.url, json.dumps(
            {"pollingInterval": POLL_MS, "numBlocksToWait": 3})))
        group = f"catch_{uuid.uuid4().hex[:8]}"
        db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['CONTRACT_EVENT', 'BLOCK'])", (group,))
        fid = register(db, dummy_event_filter(f"catch-{uuid.uuid4().hex[:8]}", contract.address, node=node))
        anvil.mine(1)
        wait_caught_up(db, node, anvil.block_number())
        last = anvil.block_number()
        db.execute("SELECT * FROM eventeum.poll(%s, 1000, '1 hour')", (group,))
    receipts = []

    def while_down():
        receipts.extend(emit_dummy(contract) for _ in range(5))
        anvil.mine(5)
    with restart(cluster, while_down) as db:
        head = anvil.block_number()
        wait_caught_up(db, node, head, timeout=60)
        rows = db.execute("SELECT type, payload FROM eventeum.poll(%s, 1000, '1 hour')", (group,)).fetchall()
        events = [p["details"] for t, p in rows if t == "CONTRACT_EVENT" and p["details"]["filterId"] == fid]
        assert [(e["transactionHash"], e["status"]) for e in events] == \
            [(r["transactionHash"], "CONFIRMED") for r in receipts], "each missed event once, CONFIRMED, in order"
        blocks = [p["details"]["number"] for t, p in rows if t == "BLOCK" and p["details"]["nodeName"] == node]
        assert blocks == list(range(last + 1, head + 1)), "every missed block once, in order"
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))
        db.execute("SELECT eventeum.remove_node(%s)", (node,))
