"""The outbox relayed to a real Kafka-compatible broker (tansu), consumed with a
real Kafka client, through a broker restart."""

import json
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


def consume(address, topic, count, timeout=60):
    """`count` records from the start of `topic`, read by a fresh consumer group."""
    # The relay creates the topic with its first message, which may come after
    # this subscription: look for it every 500 ms, not librdkafka's 5 minutes.
    consumer = Consumer({"bootstrap.servers": address, "group.id": f"test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "topic.metadata.refresh.interval.ms": 500})
    consumer.subscribe([topic])
    got = []
    try:
        def more():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message)
            return len(got) >= count
        wait_until(more, timeout=timeout, interval=0, what=f"{count} records on {topic}")
    finally:
        consumer.close()
    return got


def test_messages_reach_kafka_with_keys_and_ids_through_a_broker_restart(db, emitter, tansu):
    topic = f"contract-events-{uuid.uuid4().hex[:8]}"
    db.execute("SELECT eventeum.add_broadcaster('kafka', 'kafka', %s)",
               (json.dumps({"bootstrapServers": tansu.address, "contractEvents": topic,
                            "requestTimeoutMs": 5000}),))
    try:
        fid = db.execute("SELECT eventeum.add_filter(%s, %s)",
                         (emitter.address, emitter.signature("Ping"))).fetchone()[0]
        first = emitter.call("burst(uint256)", 5)
        records = [r for r in consume(tansu.address, topic, 5)
                   if json.loads(r.value())["details"]["filterId"] == fid]
        ids = [f"{first['transactionHash']}-{first['blockHash']}-{i}:CONFIRMED" for i in range(5)]
        assert [dict(r.headers())["message_id"].decode() for r in records] == ids
        assert [r.key().decode() for r in records] == ids, "no correlation id: keyed by the message id"
        assert [json.loads(r.value())["details"]["logIndex"] for r in records] == list(range(5))

        # The broker dies (and, in memory, forgets everything); events go on.
        tansu.stop()
        second = emitter.call("burst(uint256)", 5)
        wait_caught_up(db, "default", int(second["blockNumber"], 16))
        wait_until(lambda: db.execute(
            "SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'kafka' AND attempts > 0").fetchone()[0] > 0,
            what="failed attempts while the broker is down")
        tansu.start()
        records = [r for r in consume(tansu.address, topic, 5, timeout=90)
                   if json.loads(r.value())["details"]["filterId"] == fid]
        ids = [f"{second['transactionHash']}-{second['blockHash']}-{i}:CONFIRMED" for i in range(5)]
        assert [dict(r.headers())["message_id"].decode() for r in records] == ids, "nothing lost, in order"
        wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'kafka' "
                                      "AND delivered_at IS NULL").fetchone() == (0,), what="the rows marked delivered")
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('kafka')")
