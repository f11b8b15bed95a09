"""The outbox relayed to a real Kafka-compatible broker (tansu), consumed with a
real Kafka client, through a broker outage."""

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer
from conftest import wait_caught_up
from harness import Tansu, wait_until


@pytest.fixture
def tansu(workdir):
    broker = Tansu(workdir / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


def drain(address, topic, at_least, idle=3.0, timeout=60):
    """Every record of `topic` from its start, read by a fresh consumer group
    until `at_least` have come and then nothing more for `idle` seconds, so
    that a duplicate or a stray record would be in the result."""
    # The relay creates the topic with its first message, which may come after
    # this subscription: look for it every 500 ms, not librdkafka's 5 minutes.
    consumer = Consumer({"bootstrap.servers": address, "group.id": f"test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "topic.metadata.refresh.interval.ms": 500})
    consumer.subscribe([topic])
    got = []
    last = [time.monotonic()]
    try:
        def settled():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message)
                last[0] = time.monotonic()
            return len(got) >= at_least and time.monotonic() - last[0] >= idle
        wait_until(settled, timeout=timeout, interval=0, what=f"{at_least} records on {topic}, then quiet")
    finally:
        consumer.close()
    return got


def message_ids(records):
    return [dict(r.headers())["message_id"].decode() for r in records]


def wait_for_a_failed_attempt(db, what):
    wait_until(lambda: db.execute(
        "SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'kafka' AND attempts > 0").fetchone()[0] > 0,
        timeout=60, what=what)


def wait_all_delivered(db, timeout, what):
    wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'kafka' "
                                  "AND delivered_at IS NULL").fetchone() == (0,),
               timeout=timeout, what=what)


def test_messages_reach_kafka_with_keys_and_ids_through_a_broker_outage(db, emitter, tansu):
    topic = f"contract-events-{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.add_broadcaster('kafka', 'kafka', %s)",
               (json.dumps({"bootstrapServers": tansu.address, "contractEvents": topic,
                            "partitions": 1, "requestTimeoutMs": 5000}),))
    try:
        fid = db.execute("SELECT eventeum.add_filter(%s, %s)",
                         (emitter.address, emitter.signature("Ping"))).fetchone()[0]
        first = emitter.call("burst(uint256)", 5)
        records = drain(tansu.address, topic, 5)
        ids = [f"{first['transactionHash']}-{first['blockHash']}-{i}:CONFIRMED" for i in range(5)]
        assert message_ids(records) == ids, "each once, in order"
        assert [r.key().decode() for r in records] == [i.removesuffix(":CONFIRMED") for i in ids], \
            "no correlation id: keyed by the event id, as Eventeum keys it"
        assert [json.loads(r.value())["details"]["filterId"] for r in records] == [fid] * 5
        assert [json.loads(r.value())["details"]["logIndex"] for r in records] == list(range(5))

        # The broker stops answering; events go on and wait in the outbox.
        tansu.freeze()
        try:
            second = emitter.call("burst(uint256)", 5)
            wait_caught_up(db, "default", int(second["blockNumber"], 16))
            wait_for_a_failed_attempt(db, "failed attempts while the broker is frozen")
        finally:
            tansu.thaw()
        wait_all_delivered(db, 90, "the rows marked delivered")
        records = drain(tansu.address, topic, 10)
        ids += [f"{second['transactionHash']}-{second['blockHash']}-{i}:CONFIRMED" for i in range(5)]
        assert sorted(message_ids(records)) == sorted(ids), "every message, none twice"
        assert message_ids(records) == ids, "in order"
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('kafka')")


def test_batches_in_flight_reach_kafka_once_and_in_order_through_a_freeze(db, tansu):
    """Three batches (5,000 rows each at most), the next handed to the producer
    while the last is awaited. The broker freezes with two of them in flight:
    their delivery reports time out, the messages stay in the producer, and
    the retry waits for them instead of producing them again."""
    topic = f"app-{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.add_broadcaster('kafka', 'kafka', %s)",
               (json.dumps({"bootstrapServers": tansu.address, "contractEvents": topic,
                            "partitions": 1, "requestTimeoutMs": 3000}),))
    try:
        # The topic exists and the producer has its id before the freeze.
        db.execute("SELECT eventeum.publish(%s, 'first', '{\"n\": 0}', 'kafka')", (topic,))
        assert len(drain(tansu.address, topic, 1, idle=0.5)) == 1
        tansu.freeze()
        try:
            db.execute("SELECT count(eventeum.publish(%s, i::text, jsonb_build_object('n', i), 'kafka')) "
                       "FROM generate_series(1, 12000) AS i", (topic,))
            wait_for_a_failed_attempt(db, "a batch's delivery reports to time out")
        finally:
            tansu.thaw()
        wait_all_delivered(db, 120, "every row marked delivered")
        expected = [r[0] for r in db.execute(
            "SELECT message_id FROM eventeum.outbox WHERE broadcaster = 'kafka' AND destination = %s ORDER BY id",
            (topic,))]
        assert len(expected) == 12001
        records = drain(tansu.address, topic, len(expected), timeout=180)
        got = message_ids(records)
        assert len(got) == len(set(got)) == len(expected), "each once"
        assert got == expected, "in outbox order"
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('kafka')")
