"""Contract events from a real anvil node into eventeum.contract_events and NOTIFY."""

import json
import re

import psycopg
import pytest
from conftest import wait_caught_up
from harness import DEPLOYER, keccak256, to_checksum, wait_until

PATTERN = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
UINT256_MAX = 2**256 - 1


def add_filter(db, emitter, event, node="default", **kwargs):
    args = [emitter.address, emitter.signature(event), node]
    sql = "SELECT eventeum.add_filter(%s, %s, %s"
    if "id" in kwargs:
        sql += ", id => %s"
        args.append(kwargs["id"])
    return db.execute(sql + ")", args).fetchone()[0]


def rows(db, filter_id):
    return db.execute(
        """SELECT name, indexed_parameters, non_indexed_parameters, status::text, block_number,
                  log_index, transaction_hash, block_hash, address, event_specification_signature, id
             FROM eventeum.contract_events WHERE filter_id = %s ORDER BY block_number, log_index""",
        (filter_id,),
    ).fetchall()


def wait_rows(db, filter_id, count, timeout=30):
    return wait_until(lambda: (r := rows(db, filter_id)) and len(r) >= count and r,
                      timeout=timeout, what=f"{count} rows for filter {filter_id}")


def param(ty, value):
    return {"type": ty, "value": value}


def test_every_type_decodes_to_eventeums_json(db, emitter):
    filters = {event: add_filter(db, emitter, event) for event in emitter.events()
               if event not in ("Transfer", "Ping", "Big")}
    receipt = emitter.call("emitAll()")
    topics = {log["topics"][0]: log for log in receipt["logs"]}

    got = {event: wait_rows(db, fid, 1)[0] for event, fid in filters.items()}
    for event, row in got.items():
        assert len(rows(db, filters[event])) == 1, event
        name, indexed, non_indexed, status, *_ , address, signature, _ = row
        assert name == event
        assert status == "CONFIRMED"  # node "default" has numBlocksToWait 0
        assert address == emitter.address
        assert signature in topics, f"{event}: topic0 {signature} not emitted"

    for group, widths in {"A": range(1, 9), "B": range(9, 17), "C": range(17, 25), "D": range(25, 33)}.items():
        _, _, uints, *_ = got[f"Uints{group}"]
        assert uints == [param(f"uint{8 * i}", 2 ** (8 * i) - 1) for i in widths]
        _, _, ints, *_ = got[f"Ints{group}"]
        assert ints == [param(f"int{8 * i}", -(2 ** (8 * i - 1))) for i in widths]
        _, _, byts, *_ = got[f"Bytes{group}"]
        assert byts == [param(f"bytes{i}", "0x" + PATTERN[: 2 * i]) for i in widths]

    _, indexed, non_indexed, *_ = got["Misc"]
    assert indexed == [param("address", DEPLOYER), param("bool", 1), param("uint256", UINT256_MAX)]
    assert non_indexed == [param("string", "helloworld"), param("bool", 0),
                           param("address", emitter.address), param("int256", -1)]

    _, indexed, non_indexed, *_ = got["Arrays"]
    assert indexed == []
    assert non_indexed == [
        param("uint256[]", [param("uint256", 1), param("uint256", 2), param("uint256", UINT256_MAX)]),
        param("int256[]", [param("int256", -5), param("int256", -(2**255))]),
        param("address[]", [param("address", DEPLOYER), param("address", emitter.address)]),
        param("string[]", [param("string", "alpha"), param("string", "beta")]),
        param("bool[]", [param("bool", 1), param("bool", 0)]),
        param("bytes32[]", [param("bytes32", "0x" + PATTERN)]),
        param("uint8[]", []),
    ]

    _, indexed, non_indexed, *_ = got["IndexedDynamic"]
    key_hash = "0x" + keccak256(b"key").hex()
    signature = got["IndexedDynamic"][9]
    log = topics[signature]
    # The topic holds the hash of a dynamic value: Eventeum types it bytes32.
    assert indexed == [param("bytes32", key_hash), param("bytes32", log["topics"][2])]
    assert non_indexed == [param("string", "value")]


def test_eventeums_type_aliases_byte_and_byte_arrays(db, emitter):
    """Eventeum's ParameterType takes BYTE (web3j's bytes1): a filter for
    BytesA written with BYTE for its first parameter decodes it as bytes1,
    and list_filters gives the spelling back."""
    spec = {"eventName": "BytesA", "nonIndexedParameterDefinitions": [
        {"position": i, "type": "BYTE" if i == 0 else f"BYTES{i + 1}"} for i in range(8)]}
    fid = db.execute("SELECT eventeum.add_filter(%s)", (json.dumps(
        {"contractAddress": emitter.address, "eventSpecification": spec}),)).fetchone()[0]
    try:
        emitter.call("emitAll()")
        (row,) = wait_rows(db, fid, 1)
        assert row[2][0] == param("bytes1", "0x" + PATTERN[:2])
        listed = db.execute("SELECT f FROM eventeum.list_filters() f WHERE f->>'id' = %s", (fid,)).fetchone()[0]
        assert listed["eventSpecification"]["nonIndexedParameterDefinitions"][0] == {"position": 0, "type": "BYTE"}
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def test_two_filters_on_one_contract(db, emitter):
    first = add_filter(db, emitter, "Transfer")
    second = add_filter(db, emitter, "Transfer")
    pings = add_filter(db, emitter, "Ping")
    emitter.call("transfer(address,uint256)", DEPLOYER, 7)
    receipt = emitter.call("burst(uint256)", 1)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert [r[2] for r in rows(db, first)] == [[param("uint256", 7)]]
    assert [r[2] for r in rows(db, second)] == [[param("uint256", 7)]]
    assert [r[1] for r in rows(db, pings)] == [[param("uint256", 0)]]


def test_burst_of_events_in_one_transaction(db, emitter):
    pings = add_filter(db, emitter, "Ping")
    receipt = emitter.call("burst(uint256)", 60)
    got = wait_rows(db, pings, 60)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    got = rows(db, pings)
    assert len(got) == 60
    assert [r[5] for r in got] == list(range(60))
    assert {r[6] for r in got} == {receipt["transactionHash"]}
    assert [(r[1][0]["value"], r[2][0]["value"]) for r in got] == [(i, 2 * i) for i in range(60)]


def test_filters_are_added_and_removed_live(db, emitter):
    fid = add_filter(db, emitter, "Transfer", id="live-transfer")
    assert fid == "live-transfer"
    emitter.call("transfer(address,uint256)", DEPLOYER, 1)
    wait_rows(db, fid, 1)

    db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    receipt = emitter.call("transfer(address,uint256)", DEPLOYER, 2)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert [r[2] for r in rows(db, fid)] == [[param("uint256", 1)]], "a removed filter stores nothing"

    again = add_filter(db, emitter, "Transfer", id="live-transfer-again")
    emitter.call("transfer(address,uint256)", DEPLOYER, 3)
    assert [r[2] for r in wait_rows(db, again, 1)] == [[param("uint256", 3)]]


def test_events_confirm_after_num_blocks_to_wait(cluster, db, anvil, emitter):
    fid = add_filter(db, emitter, "Transfer", node="deep")
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        receipt = emitter.call("transfer(address,uint256)", DEPLOYER, 5)
        mined = int(receipt["blockNumber"], 16)
        wait_caught_up(db, "deep", mined)
        assert [r[3] for r in rows(db, fid)] == ["UNCONFIRMED"]

        anvil.mine(2)
        wait_caught_up(db, "deep", mined + 2)
        assert [r[3] for r in rows(db, fid)] == ["UNCONFIRMED"], "two blocks deep is not yet three"

        anvil.mine(1)
        wait_caught_up(db, "deep", mined + 3)
        assert [r[3] for r in rows(db, fid)] == ["CONFIRMED"]

        statuses = [json.loads(n.payload)["details"]["status"]
                    for n in listener.notifies(timeout=5, stop_after=2)
                    if json.loads(n.payload)["details"]["filterId"] == fid]
        assert statuses == ["UNCONFIRMED", "CONFIRMED"]


def test_notify_payload_field_by_field(cluster, db, anvil, emitter):
    fid = add_filter(db, emitter, "Transfer")
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        receipt = emitter.call("transfer(address,uint256)", "0x000000000000000000000000000000000000dEaD", UINT256_MAX)
        notes = [n for n in listener.notifies(timeout=15, stop_after=1)]
    assert len(notes) == 1
    assert notes[0].channel == "eventeum_contract_events"
    message = json.loads(notes[0].payload)
    log = receipt["logs"][0]
    block = anvil.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
    event_id = f"{receipt['transactionHash']}-{receipt['blockHash']}-0"
    assert message == {
        "id": event_id,
        "type": "CONTRACT_EVENT",
        "retries": 0,
        "details": {
            "name": "Transfer",
            "filterId": fid,
            "nodeName": "default",
            "indexedParameters": [param("address", DEPLOYER),
                                  param("address", "0x000000000000000000000000000000000000dEaD")],
            "nonIndexedParameters": [param("uint256", UINT256_MAX)],
            "transactionHash": receipt["transactionHash"],
            "logIndex": 0,
            "blockNumber": int(receipt["blockNumber"], 16),
            "blockHash": receipt["blockHash"],
            "address": emitter.address,
            "status": "CONFIRMED",
            "eventSpecificationSignature": log["topics"][0],
            "networkName": "default",
            "timestamp": int(block["timestamp"], 16),
            "id": event_id,
        },
    }
    # The uint256 maximum is a JSON number with every digit, not a rounded float.
    assert re.search(rf'"value":\s*{UINT256_MAX}\b', notes[0].payload)
    assert log["topics"][0] == "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
    assert to_checksum(log["address"]) == emitter.address


def test_oversized_notify_payload_becomes_a_reference(cluster, db, emitter):
    fid = add_filter(db, emitter, "Big")
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        emitter.call("big(uint256)", 9000)
        notes = [n for n in listener.notifies(timeout=15, stop_after=1)]
    reference = json.loads(notes[0].payload)
    assert reference["truncated"] is True
    assert reference["filterId"] == fid and reference["type"] == "CONTRACT_EVENT"
    (row,) = rows(db, fid)
    assert reference["id"] == row[10]
    assert row[2] == [param("string", "x" * 9000)]


def test_strings_with_tabs_newlines_and_backslashes_are_stored_and_notified_exactly(cluster, db, emitter):
    # New rows reach the table through COPY's text format, which gives tab,
    # newline, carriage return and backslash meanings of their own.
    # (Strings are trimmed, as Eventeum does, so the specials sit inside.)
    texts = ["tab\there", "two\nlines\r\nthree", "back\\slash \\N \\t", 'quote " and \\"', "naïve ✓ \\u0041"]
    fid = add_filter(db, emitter, "Big")
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        for text in texts:
            emitter.call("say(string)", text.encode())
        notes = [json.loads(n.payload) for n in listener.notifies(timeout=15, stop_after=len(texts))]
    stored = [row[2] for row in wait_rows(db, fid, len(texts))]
    assert stored == [[param("string", text)] for text in texts]
    assert [n["details"]["nonIndexedParameters"] for n in notes] == stored


def test_logs_that_do_not_decode_are_kept_with_a_reason(db, emitter):
    # Same topic0 as Transfer, but the filter says only one parameter is indexed.
    wrong = db.execute(
        "SELECT eventeum.add_filter(%s, 'Transfer(address indexed from, address to, uint256 value)')",
        (emitter.address,)).fetchone()[0]
    right = add_filter(db, emitter, "Transfer")
    receipt = emitter.call("transfer(address,uint256)", DEPLOYER, 9)
    wait_rows(db, right, 1)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert rows(db, wrong) == []
    failures = db.execute(
        "SELECT transaction_hash, log_index, reason FROM eventeum.undecodable_logs WHERE filter_id = %s",
        (wrong,)).fetchall()
    assert failures == [(receipt["transactionHash"], 0, "log has 3 topics but the specification expects 2")]


BAD_CALLS = [
    # (description, sql, params, sqlstate)
    ("bad address", "SELECT eventeum.add_filter('0x1234', 'Ping(uint256 n)')", (), "22023"),
    ("bad checksum", "SELECT eventeum.add_filter('0x5fbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 n)')", (), "22023"),
    ("unknown type UINT7", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{"eventName":"E","indexedParameterDefinitions":[{"position":0,"type":"UINT7"}]}}',), "22023"),
    ("unknown type BYTES33", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{"eventName":"E","nonIndexedParameterDefinitions":[{"position":0,"type":"BYTES33"}]}}',), "22023"),
    ("unknown type FOO", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{"eventName":"E","nonIndexedParameterDefinitions":[{"position":0,"type":"FOO"}]}}',), "22023"),
    ("missing eventName", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{}}',), "22023"),
    ("missing contractAddress", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"eventSpecification":{"eventName":"E"}}',), "22023"),
    ("duplicate positions", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{"eventName":"E","indexedParameterDefinitions":[{"position":0,"type":"UINT8"}],"nonIndexedParameterDefinitions":[{"position":0,"type":"UINT8"}]}}',), "22023"),
    ("four indexed", "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'E(uint8 indexed a, uint8 indexed b, uint8 indexed c, uint8 indexed d)')", (), "22023"),
    ("unknown node", "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 n)', 'nowhere')", (), "42704"),
    ("duplicate node", "SELECT eventeum.add_node('default', 'http://127.0.0.1:1')", (), "23505"),
    ("malformed signature", "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 n')", (), "22023"),
    ("negative start block", "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 n)', start_block => -1)", (), "22023"),
    ("negative startBlock", "SELECT eventeum.add_filter(%s::jsonb)",
     ('{"contractAddress":"0x5FbDB2315678afecb367f032d93F642f64180aa3","eventSpecification":{"eventName":"E"},"startBlock":-1}',), "22023"),
    ("ftp url", "SELECT eventeum.add_node('n2', 'ftp://127.0.0.1')", (), "22023"),
    ("unparsable url", "SELECT eventeum.add_node('n2', 'not a url')", (), "22023"),
    ("unknown option", "SELECT eventeum.add_node('n2', 'http://127.0.0.1:1', '{\"pollInterval\": 5}')", (), "22023"),
    ("negative option", "SELECT eventeum.add_node('n2', 'http://127.0.0.1:1', '{\"numBlocksToWait\": -1}')", (), "22023"),
    ("string option", "SELECT eventeum.add_node('n2', 'http://127.0.0.1:1', '{\"pollingInterval\": \"fast\"}')", (), "22023"),
    ("zero interval", "SELECT eventeum.add_node('n2', 'http://127.0.0.1:1', '{\"pollingInterval\": 0}')", (), "22023"),
    ("bad strategy", "SELECT eventeum.add_node('n2', 'http://127.0.0.1:1', '{\"blockStrategy\": \"PUSH\"}')", (), "22023"),
    ("empty node name", "SELECT eventeum.add_node('', 'http://127.0.0.1:1')", (), "22023"),
    ("remove unknown filter", "SELECT eventeum.remove_filter('never-added')", (), "42704"),
    ("remove unknown node", "SELECT eventeum.remove_node('never-added')", (), "42704"),
    ("remove node with filters", "SELECT eventeum.remove_node('default')", (), "2BP01"),
]


@pytest.fixture(scope="module")
def taken_filter(cluster):
    with cluster.connect() as conn:
        conn.execute("SELECT eventeum.add_filter('0x00000000000000000000000000000000000000be', "
                     "'Ping(uint256 n)', id => 'taken')")


@pytest.mark.parametrize("what,sql,params,sqlstate", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_rejected_with_its_sqlstate(db, taken_filter, what, sql, params, sqlstate):
    before = db.execute("SELECT (SELECT count(*) FROM eventeum.nodes), "
                        "(SELECT count(*) FROM eventeum.contract_event_filters)").fetchone()
    with pytest.raises(psycopg.Error) as raised:
        db.execute(sql, params)
    assert raised.value.sqlstate == sqlstate, f"{what}: {raised.value}"
    after = db.execute("SELECT (SELECT count(*) FROM eventeum.nodes), "
                       "(SELECT count(*) FROM eventeum.contract_event_filters)").fetchone()
    assert after == before, f"{what} stored something"
