"""What Eventeum 0.9's consumers and scripts receive and send (issue 19, first
part), read against Eventeum's code: Kafka keys, RabbitMQ's Spring headers,
transaction monitors' defaults and ids, idempotent registration, and the
TRANSACTION message's timestamp and input."""

import json
import uuid
from collections import defaultdict

import pika
import pytest
from conftest import wait_caught_up
from harness import RpcProxy, Tansu, keccak256, to_checksum, wait_until
from test_kafka_relay import drain
from test_rabbit_relay import AMQP, rabbit_up


def eventeum_monitor_id(value, kind, node, statuses):
    """TransactionMonitoringSpec.generateId: sha3 of value + type + nodeName +
    statuses.toString(), without 0x."""
    return keccak256(f"{value}{kind}{node}[{', '.join(statuses)}]".encode()).hex()


@pytest.fixture
def tansu(workdir):
    broker = Tansu(workdir / "tansu-compat.log")
    broker.start()
    yield broker
    broker.stop()


def test_kafka_keys_keep_each_events_statuses_in_one_partition(db, anvil, emitter, tansu):
    """KafkaBlockchainEventBroadcaster: a contract event is keyed by its
    correlation id, else its event id; a transaction by its block hash; a
    block by its hash. On a topic of 3 partitions each event's UNCONFIRMED and
    CONFIRMED land in one partition, in order."""
    suffix = uuid.uuid4().hex[:8]
    topics = {kind: f"{kind}-{suffix}" for kind in ("contract", "block", "transaction")}
    db.execute("SELECT eventeum.add_broadcaster('k3', 'kafka', %s)", (json.dumps(
        {"bootstrapServers": tansu.address, "contractEvents": topics["contract"], "blockEvents": topics["block"],
         "transactionEvents": topics["transaction"], "partitions": 3, "replicationFactor": 1}),))
    receiver = to_checksum(f"0x{int(suffix, 16):040x}")
    fid = db.execute("SELECT eventeum.add_filter(%s, %s, node => 'deep')",
                     (emitter.address, emitter.signature("Ping"))).fetchone()[0]
    monitor = db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(
        {"type": "TO_ADDRESS", "transactionIdentifierValue": receiver, "nodeName": "deep"}),)).fetchone()[0]
    try:
        burst = emitter.call("burst(uint256)", 6)
        transfer = anvil.send(receiver, value=7)
        # Seen while still shallow (anvil mines only on demand), then confirmed.
        wait_until(lambda: db.execute(
            "SELECT (SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s AND status = 'UNCONFIRMED')"
            "     + (SELECT count(*) FROM eventeum.transactions WHERE monitor_id = %s AND status = 'UNCONFIRMED')",
            (fid, monitor)).fetchone() == (7,), timeout=30, what="the events and the transfer UNCONFIRMED")
        anvil.mine(4)  # 'deep' confirms after 3 blocks
        wait_caught_up(db, "deep", anvil.block_number())

        events = drain(tansu.address, topics["contract"], 12)
        by_key = defaultdict(list)
        for record in events:
            body = json.loads(record.value())
            assert body["details"]["filterId"] == fid
            by_key[record.key().decode()].append((record.partition(), body["details"]["status"]))
        ids = [f"{burst['transactionHash']}-{burst['blockHash']}-{i}" for i in range(6)]
        assert sorted(by_key) == sorted(ids), "keyed by the event id, without the status"
        for key, seen in by_key.items():
            assert [status for _, status in seen] == ["UNCONFIRMED", "CONFIRMED"], key
            assert len({partition for partition, _ in seen}) == 1, f"{key} in one partition"

        sent = drain(tansu.address, topics["transaction"], 2)
        assert [(r.key().decode(), json.loads(r.value())["details"]["status"]) for r in sent] == \
            [(transfer["blockHash"], "UNCONFIRMED"), (transfer["blockHash"], "CONFIRMED")], \
            "a transaction is keyed by its block hash; the default statuses include UNCONFIRMED"
        assert {json.loads(r.value())["id"] for r in sent} == {transfer["transactionHash"]}
        assert db.execute("SELECT count(*) FROM eventeum.transactions WHERE monitor_id = %s",
                          (monitor,)).fetchone() == (1,)

        blocks = drain(tansu.address, topics["block"], 4)
        for record in blocks:
            body = json.loads(record.value())
            assert record.key().decode() == body["details"]["hash"] == body["id"], "a block is keyed by its hash"
    finally:
        db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (monitor,))
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_broadcaster('k3')")


def test_rabbitmq_messages_carry_springs_type_header(db, emitter):
    """Spring AMQP's Jackson converter picks the class from __TypeId__; Eventeum
    sends ContractEvent, BlockEvent and TransactionEvent with content type
    application/json and encoding UTF-8."""
    assert rabbit_up()
    exchange = f"compat-{uuid.uuid4().hex[:8]}"
    queue = exchange + "-all"
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key="contractEvents.#")
        channel.queue_bind(queue, exchange, routing_key="app.#")
    db.execute("SELECT eventeum.add_broadcaster('compat_rabbit', 'rabbitmq', %s)",
               (json.dumps({"url": AMQP, "exchange": exchange, "blockNotification": False}),))
    fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Ping"))).fetchone()[0]
    try:
        emitter.call("burst(uint256)", 1)
        db.execute("SELECT eventeum.publish('app.mine', 'k', '{\"own\": true}', broadcaster => 'compat_rabbit')")

        got = []

        def drained():
            with pika.BlockingConnection(pika.URLParameters(AMQP)) as conn:
                while True:
                    method, properties, body = conn.channel().basic_get(queue, auto_ack=True)
                    if method is None:
                        break
                    got.append((method.routing_key, properties, json.loads(body)))
            return len(got) >= 2
        wait_until(drained, timeout=30, what="the event and the application message")
        event = next(p for key, p, _ in got if key.startswith("contractEvents."))
        assert event.headers == {"__TypeId__": "net.consensys.eventeum.dto.message.ContractEvent"}
        assert (event.content_type, event.content_encoding) == ("application/json", "UTF-8")
        own = next(p for key, p, _ in got if key == "app.mine")
        assert not own.headers, "an application message is not an Eventeum class"
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
        db.execute("SELECT eventeum.remove_broadcaster('compat_rabbit')")
        with pika.BlockingConnection(pika.URLParameters(AMQP)) as conn:
            conn.channel().queue_delete(queue)
            conn.channel().exchange_delete(exchange)


def test_monitor_ids_defaults_and_re_registration_are_eventeums(cluster, db, anvil):
    """TransactionMonitoringEndpoint + TransactionMonitoringSpec: statuses
    default to UNCONFIRMED, CONFIRMED, FAILED; the id is generated from the
    spec, so registering it again is a no-op that returns the same id."""
    value = f"0x{uuid.uuid4().hex}{'0' * 8}"  # an address as the caller wrote it (lower case)
    body = {"type": "TO_ADDRESS", "transactionIdentifierValue": value}
    notices = []
    with cluster.connect() as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        first = conn.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(body),)).fetchone()[0]
        again = conn.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(body),)).fetchone()[0]
    try:
        assert first == again == eventeum_monitor_id(value, "TO_ADDRESS", "default",
                                                     ["UNCONFIRMED", "CONFIRMED", "FAILED"])
        assert any("registered already" in n for n in notices), notices
        row = db.execute("SELECT value, statuses::text[] FROM eventeum.transaction_monitors WHERE id = %s",
                         (first,)).fetchone()
        assert row == (to_checksum(value), ["UNCONFIRMED", "CONFIRMED", "FAILED"])
        listed = dict(body, statuses=["FAILED", "CONFIRMED"], nodeName="deep")
        other = db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(listed),)).fetchone()[0]
        assert other == eventeum_monitor_id(value, "TO_ADDRESS", "deep", ["FAILED", "CONFIRMED"])
        assert db.execute("SELECT count(*) FROM eventeum.transaction_monitors WHERE value = %s",
                          (to_checksum(value),)).fetchone() == (2,)
    finally:
        db.execute("DELETE FROM eventeum.transaction_monitors WHERE value = %s", (to_checksum(value),))


def test_registering_a_filter_id_again_returns_it_unchanged(cluster, db, emitter):
    """DefaultSubscriptionService: a filter whose id is registered is not
    registered again; its id is returned."""
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        first = conn.execute("SELECT eventeum.add_filter(%s, %s, id => 'compat-again')",
                             (emitter.address, emitter.signature("Ping"))).fetchone()[0]
        second = conn.execute("SELECT eventeum.add_filter(%s, %s, id => 'compat-again')",
                              (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
    try:
        assert first == second == "compat-again"
        assert db.execute("SELECT event_name FROM eventeum.contract_event_filters WHERE id = 'compat-again'"
                          ).fetchall() == [("Ping",)], "left as it was"
        assert any('"compat-again" is registered already' in n for n in notices), notices
    finally:
        db.execute("SELECT eventeum.remove_filter('compat-again')")


def test_transaction_messages_carry_timestamp_and_input_and_leave_out_nulls(cluster, db, anvil):
    """TransactionDetails (@JsonInclude NON_NULL): a creation has no `to`;
    `timestamp` is the block's and `input` the call data."""
    sender = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # anvil's third account: only this test's
    monitor = db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(
        {"type": "FROM_ADDRESS", "transactionIdentifierValue": sender, "statuses": ["CONFIRMED"]}),)).fetchone()[0]
    try:
        with cluster.connect() as listener:
            listener.execute("LISTEN eventeum_transaction_events")
            init = "0x60006000f3"  # PUSH1 0 PUSH1 0 RETURN: a creation of empty code
            created = anvil.send(None, init, sender=sender)
            call = anvil.send("0x000000000000000000000000000000000000dEaD", "0xa9059cbb" + "00" * 64, sender=sender)
            wait_caught_up(db, "default", anvil.block_number())
            got = {}

            def both():
                for n in listener.notifies(timeout=0.5):
                    body = json.loads(n.payload)
                    got[body["id"]] = body["details"]
                return {created["transactionHash"], call["transactionHash"]} <= got.keys()
            wait_until(both, timeout=30, what="two TRANSACTION notifications")
        creation, transfer = got[created["transactionHash"]], got[call["transactionHash"]]
        block = anvil.rpc("eth_getBlockByNumber", created["blockNumber"], False)
        assert "to" not in creation and creation["contractAddress"] == to_checksum(created["contractAddress"])
        assert creation["timestamp"] == int(block["timestamp"], 16)
        assert creation["input"] == init
        assert transfer["to"] == "0x000000000000000000000000000000000000dEaD"
        assert transfer["input"] == "0xa9059cbb" + "00" * 64
        assert db.execute("SELECT input, block_timestamp FROM eventeum.transactions WHERE hash = %s",
                          (created["transactionHash"],)).fetchone() == (init, int(block["timestamp"], 16))
    finally:
        db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (monitor,))


def test_node_credentials_and_connection_settings_are_eventeums(cluster, db, anvil):
    """Eventeum's node settings username/password (basic auth),
    maxIdleConnections and keepAliveDuration. The credentials move into the
    URL, which only admins read; the options readers see keep none."""
    proxy = RpcProxy(anvil.url)
    proxy.basic_auth = ("indexer", "s3cret p@ss")
    proxy.start()
    options = {"pollingInterval": 100, "username": "indexer", "password": "s3cret p@ss",
               "maxIdleConnections": 2, "keepAliveDuration": 5000}
    db.execute("SELECT eventeum.add_node('authed', %s, %s)", (proxy.url, json.dumps(options)))
    db.execute("SELECT eventeum.add_node('unauthed', %s, '{\"pollingInterval\": 100}')", (proxy.url,))
    try:
        wait_caught_up(db, "authed", anvil.block_number())
        stored = db.execute("SELECT url, options FROM eventeum.nodes WHERE name = 'authed'").fetchone()
        assert stored[0].startswith("http://indexer:s3cret%20p%40ss@127.0.0.1:"), "in the URL, percent-encoded"
        assert "username" not in stored[1] and "password" not in stored[1]
        assert (stored[1]["maxIdleConnections"], stored[1]["keepAliveDuration"]) == (2, 5000)
        error = wait_until(lambda: (r := db.execute("SELECT last_error FROM eventeum.node_status "
                                                    "WHERE name = 'unauthed'").fetchone()) and r[0],
                           timeout=30, what="the node without credentials to be refused")
        assert "401" in error and "s3cret" not in error
        shown = json.dumps(db.execute("SELECT url, endpoints FROM eventeum.node_status WHERE name = 'authed'"
                                      ).fetchone())
        assert "s3cret" not in shown and "indexer" not in shown
        for bad in ({"password": "p"}, {"username": "u"}):
            with pytest.raises(Exception) as refused:
                db.execute("SELECT eventeum.add_node('bad_auth', %s, %s)",
                           ("http://u:p@127.0.0.1:1" if "username" in bad else "http://127.0.0.1:1", json.dumps(bad)))
            assert refused.value.sqlstate == "22023"
    finally:
        db.execute("SELECT eventeum.remove_node('authed')")
        db.execute("SELECT eventeum.remove_node('unauthed')")
        proxy.stop()
