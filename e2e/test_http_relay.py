"""The outbox relayed over HTTP: retries through an outage, dead letters and replay."""

import json
import socket

import pytest
from conftest import wait_caught_up
from harness import ROOT, Emitter, wait_until


@pytest.fixture
def hook(db, receiver):
    db.execute("SELECT eventeum.add_broadcaster('hook', 'http', %s)", (json.dumps(
        {"contractEventsUrl": receiver.url + "/events", "headers": {"X-Source": "eventeum-test"},
         "envelope": True}),))
    yield "hook"
    db.execute("SELECT eventeum.remove_broadcaster('hook')")


def mine(receiver, fid):
    return [r for r in receiver.accepted() if r["body"]["details"]["filterId"] == fid]


def test_every_message_arrives_in_order_through_an_http_outage(db, emitter, receiver, hook):
    fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Ping"))).fetchone()[0]
    receiver.status = 503  # down: the relay retries with backoff
    receipt = emitter.call("burst(uint256)", 10)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    wait_until(lambda: len([r for r in receiver.requests if r["status"] == 503]) >= 2, what="retries")
    assert mine(receiver, fid) == []
    receiver.status = 200
    got = wait_until(lambda: (m := mine(receiver, fid)) and len(m) >= 10 and m, timeout=60, what="10 deliveries")

    ids = [f"{receipt['transactionHash']}-{receipt['blockHash']}-{i}:CONFIRMED" for i in range(10)]
    assert [r["headers"]["idempotency-key"] for r in got] == ids, "each message once, in outbox order"
    assert all(r["path"] == "/events" and r["headers"]["x-source"] == "eventeum-test" for r in got)
    assert [r["body"]["details"]["logIndex"] for r in got] == list(range(10))
    assert got[0]["body"]["retries"] >= 2, "retries counts the failed attempts"
    assert got[0]["body"]["type"] == "CONTRACT_EVENT" and got[0]["body"]["details"]["status"] == "CONFIRMED"
    # The relay reports the 200s and the worker marks the rows delivered.
    wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'hook' "
                                  "AND delivered_at IS NULL").fetchone() == (0,), what="the rows marked delivered")


def test_bodies_are_eventeums_bare_details_unless_the_envelope_is_asked(db, emitter, receiver, anvil):
    """HttpBlockchainEventBroadcaster POSTs the ContractEventDetails and
    BlockDetails themselves: the same bytes as the message's details."""
    db.execute("SELECT eventeum.add_broadcaster('bare', 'http', %s)", (json.dumps(
        {"contractEventsUrl": receiver.url + "/events", "blockEventsUrl": receiver.url + "/blocks"}),))
    fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Ping"))).fetchone()[0]
    try:
        receipt = emitter.call("burst(uint256)", 1)
        event = wait_until(lambda: [r for r in receiver.accepted()
                                    if r["path"] == "/events" and r["body"].get("filterId") == fid],
                           what="the bare event")
        (row,) = db.execute("SELECT payload::jsonb FROM eventeum.outbox WHERE broadcaster = 'bare' "
                            "AND payload::jsonb -> 'details' ->> 'filterId' = %s", (fid,)).fetchall()
        assert event[0]["body"] == row[0]["details"], "exactly the message's details"
        assert event[0]["body"]["transactionHash"] == receipt["transactionHash"]
        assert "retries" not in event[0]["body"] and "type" not in event[0]["body"]
        block = wait_until(lambda: [r for r in receiver.accepted() if r["path"] == "/blocks"
                                    and r["body"].get("hash") == receipt["blockHash"]], what="the bare block")
        assert set(block[0]["body"]) == {"number", "hash", "timestamp", "nodeName"}
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_broadcaster('bare')")


def test_a_permanent_rejection_is_dead_lettered_then_replayed(db, emitter, receiver, hook):
    fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
    receiver.status = 422
    emitter.call("transfer(address,uint256)", emitter.address, 7)
    dead = wait_until(lambda: db.execute(
        "SELECT message_id, reason, attempts FROM eventeum.dead_letters WHERE broadcaster = 'hook'").fetchall(),
        what="a dead letter")
    assert len(dead) == 1 and "422" in dead[0][1] and dead[0][2] == 1

    receiver.status = 200
    assert db.execute("SELECT eventeum.replay_dead_letters('hook')").fetchone()[0] == 1
    (delivered,) = wait_until(lambda: mine(receiver, fid), what="the replayed message")
    assert delivered["headers"]["idempotency-key"] == dead[0][0]
    assert delivered["body"]["details"]["nonIndexedParameters"] == [{"type": "uint256", "value": 7}]
    assert db.execute("SELECT count(*) FROM eventeum.dead_letters WHERE broadcaster = 'hook'").fetchone() == (0,)


def test_a_batch_read_behind_a_failed_one_does_not_overtake_its_retry(db, anvil, receiver, hook):
    # More than one relay batch (5,000 rows): the second is read and queued
    # while the first is in flight. The first fails at its 3,000th message,
    # long after the second was queued; the second must wait for that retry
    # instead of being delivered before it.
    bench = Emitter(anvil, artifact=ROOT / "e2e" / "contracts" / "Bench.json")
    fid = db.execute("SELECT eventeum.add_filter(%s, 'Simple(address indexed who, uint256 value)')",
                     (bench.address,)).fetchone()[0]
    receiver.fail_once_at = 3_000
    count = 6_500
    receipt = anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", count, 0))
    got = wait_until(lambda: (m := mine(receiver, fid)) and len(m) >= count and m, timeout=120,
                     what=f"{count} deliveries")
    assert len(got) == count
    assert [r["body"]["details"]["logIndex"] for r in got] == list(range(count)), "once each, in outbox order"
    failed = [r for r in receiver.requests if r["status"] == 503]
    assert len(failed) == 1 and failed[0]["body"]["details"]["logIndex"] == 3_000
    assert got[3_000]["body"]["retries"] == 1
    assert int(receipt["blockNumber"], 16) == got[-1]["body"]["details"]["blockNumber"]
    db.execute("SELECT eventeum.remove_filter(%s)", (fid,))


def test_a_hung_broker_holds_back_only_its_own_messages(db, receiver):
    """Each broadcaster has its own lane in the relay: while one endpoint
    takes a request and never answers (the relay waits up to 30 s for it),
    another broadcaster's messages still go out at once."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # connections complete, requests are read, nothing is answered
    hung.settimeout(10)
    hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}/hung"
    for name, url in (("hung", hung_url), ("alive", receiver.url + "/alive")):
        db.execute("SELECT eventeum.add_broadcaster(%s, 'http', %s)", (name, json.dumps({"contractEventsUrl": url})))
    inside = None
    try:
        db.execute("SELECT eventeum.publish(%s, 'k', '{\"to\": \"hung\"}', 'hung')", (hung_url,))
        # The relay is inside the hung request once its POST has arrived.
        inside, _ = hung.accept()
        inside.settimeout(10)
        assert inside.recv(4096, socket.MSG_PEEK).startswith(b"POST /hung")
        db.execute("SELECT eventeum.publish(%s, 'k', '{\"to\": \"alive\"}', 'alive')", (receiver.url + "/alive",))
        got = wait_until(lambda: [r for r in receiver.accepted() if r["path"] == "/alive"], timeout=10,
                         what="the live broadcaster's message while the other hangs")
        assert got[0]["body"] == {"to": "alive"}
        pending = db.execute("SELECT count(*) FROM eventeum.outbox_pending WHERE broadcaster = 'hung'").fetchone()[0]
        assert pending == 1, "the hung one is still waiting for its answer"
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('hung')")
        db.execute("SELECT eventeum.remove_broadcaster('alive')")
        hung.close()
        if inside is not None:
            inside.close()
