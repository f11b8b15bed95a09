"""The outbox relayed to the machine's real RabbitMQ, through a broker outage."""

import json
import socket
import subprocess
import uuid

import pika
import pytest
from conftest import wait_caught_up
from harness import wait_until

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"


def rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def connect():
    return pika.BlockingConnection(pika.URLParameters(AMQP))


@pytest.fixture
def exchange():
    if not rabbit_up():
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        wait_until(rabbit_up, timeout=60, what="RabbitMQ to start")
    name = f"eventeum-test-{uuid.uuid4().hex[:8]}"
    queue = f"{name}-queue"
    with connect() as conn:
        channel = conn.channel()
        channel.exchange_declare(name, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, name, routing_key="contractEvents.#")
    yield name, queue
    with connect() as conn:
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(name)


def drain(queue):
    """Every message waiting in the queue: (routing key, properties, body)."""
    got = []
    with connect() as conn:
        channel = conn.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((method.routing_key, properties, json.loads(body)))


def test_messages_reach_rabbitmq_in_order_through_an_outage(db, emitter, exchange):
    name, queue = exchange
    db.execute("SELECT eventeum.add_broadcaster('rabbit', 'rabbitmq', %s)",
               (json.dumps({"url": AMQP, "exchange": name}),))
    received = []
    try:
        fid = db.execute("SELECT eventeum.add_filter(%s, %s)",
                         (emitter.address, emitter.signature("Ping"))).fetchone()[0]
        first = emitter.call("burst(uint256)", 5)
        wait_until(lambda: received.extend(drain(queue)) or len(received) >= 5, what="the first 5 messages")

        rabbitmqctl("stop_app")
        try:
            second = emitter.call("burst(uint256)", 5)
            wait_caught_up(db, "default", int(second["blockNumber"], 16))
            # The relay tries, fails and records it: the oldest pending message
            # (one of these five, or a block event before them) is retried and
            # the rest wait behind it, in order; none of the five is delivered.
            def tried_and_held():
                oldest = db.execute(
                    "SELECT o.attempts FROM eventeum.outbox_pending q JOIN eventeum.outbox o ON o.id = q.id "
                    "WHERE q.broadcaster = 'rabbit' ORDER BY q.id LIMIT 1").fetchone()
                held = db.execute(
                    "SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'rabbit' AND delivered_at IS NULL "
                    "AND payload::jsonb -> 'details' ->> 'transactionHash' = %s", (second["transactionHash"],)).fetchone()[0]
                return oldest is not None and oldest[0] > 0 and held == 5
            wait_until(tried_and_held, timeout=30, what="failed attempts while RabbitMQ is down")
            assert "RabbitMQ" in db.execute("SELECT last_error FROM eventeum.broadcaster_state "
                                            "WHERE broadcaster = 'rabbit'").fetchone()[0]
        finally:
            rabbitmqctl("start_app")
        wait_until(rabbit_up, timeout=60, what="RabbitMQ to come back")
        wait_until(lambda: received.extend(drain(queue)) or len(received) >= 10, timeout=90,
                   what="the 5 messages sent during the outage")
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('rabbit')")

    ids = [f"{r['transactionHash']}-{r['blockHash']}-{i}:CONFIRMED" for r in (first, second) for i in range(5)]
    mine = [(key, props, body) for key, props, body in received if body["details"]["filterId"] == fid]
    assert [props.message_id for _, props, _ in mine] == ids, "every message once, in order, with its id"
    assert {key for key, _, _ in mine} == {f"contractEvents.{fid}"}
    assert all(props.delivery_mode == 2 for _, props, _ in mine), "persistent"
    assert [body["details"]["logIndex"] for _, _, body in mine] == [0, 1, 2, 3, 4] * 2
    assert mine[0][2]["type"] == "CONTRACT_EVENT"
