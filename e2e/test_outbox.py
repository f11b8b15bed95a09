"""The transactional outbox: chain messages and publish() written with their
state change, read by SQL consumer groups; broadcaster management."""

import json
import threading
import time

import psycopg
import pytest
from conftest import wait_caught_up


def group(db, name, types=None):
    db.execute("SELECT eventeum.create_consumer_group(%s, %s)", (name, types))


def poll(conn, name, max=100, visibility="30 seconds"):
    return conn.execute("SELECT message_id, type, key, payload, attempts FROM eventeum.poll(%s, %s, %s)",
                        (name, max, visibility)).fetchall()


def ack(conn, name, ids):
    return conn.execute("SELECT eventeum.ack(%s, %s)", (name, ids)).fetchone()[0]


def test_publish_commits_or_rolls_back_with_the_callers_transaction(cluster, db):
    group(db, "app-readers", ["APP"])
    with cluster.connect() as conn:
        conn.autocommit = False
        conn.execute("SELECT eventeum.publish('orders', 'order-1', '{\"total\": 1}')")
        conn.rollback()
        assert poll(db, "app-readers") == [], "a rollback publishes nothing"
        seq = conn.execute("SELECT eventeum.publish('orders', 'order-2', '{\"total\": 2}')").fetchone()[0]
        assert poll(db, "app-readers") == [], "nothing is visible before the commit"
        conn.commit()
    (message,) = poll(db, "app-readers")
    assert message[:4] == (f"app-{seq}", "APP", "order-2", {"total": 2})
    assert ack(db, "app-readers", [message[0]]) == 1
    assert poll(db, "app-readers") == []


def test_chain_messages_reach_a_group_with_stable_ids_and_correlation_keys(cluster, db, emitter):
    group(db, "events", ["CONTRACT_EVENT"])
    fid = db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps({
        "contractAddress": emitter.address,
        "eventSpecification": {"eventName": "Ping",
                               "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}],
                               "nonIndexedParameterDefinitions": [{"position": 1, "type": "UINT256"}]},
        "correlationIdStrategy": {"type": "NON_INDEXED_PARAMETER", "parameterIndex": 0}}),)).fetchone()[0]
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        receipt = emitter.call("burst(uint256)", 3)
        wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
        notices = [json.loads(n.payload) for n in listener.notifies(timeout=1)]
    notices = [n for n in notices if n["details"]["filterId"] == fid]
    got = [m for m in poll(db, "events") if m[3]["details"]["filterId"] == fid]
    assert [m[0] for m in got] == [f"{n['id']}:CONFIRMED" for n in notices]
    assert [m[3] for m in got] == notices, "the outbox carries the same message as NOTIFY"
    assert [m[2] for m in got] == ["0", "2", "4"], "keyed by the correlation id (the non-indexed value)"
    ack(db, "events", [m[0] for m in got])


def test_two_groups_with_two_competing_pollers_each(cluster, db, emitter):
    for name in ("billing", "audit"):
        group(db, name, ["CONTRACT_EVENT"])
    fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Ping"))).fetchone()[0]
    receipt = emitter.call("burst(uint256)", 40)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    expected = {f"{receipt['transactionHash']}-{receipt['blockHash']}-{i}:CONFIRMED" for i in range(40)}

    def work(name, taken):
        with cluster.connect() as conn:
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 1.0:
                batch = [m for m in poll(conn, name, max=3) if m[3]["details"]["filterId"] == fid]
                if not batch:
                    time.sleep(0.02)
                    continue
                idle_since = time.monotonic()
                taken.extend(m[0] for m in batch)
                ack(conn, name, [m[0] for m in batch])

    results = {}
    threads = []
    for name in ("billing", "audit"):
        for worker in range(2):
            taken = results.setdefault((name, worker), [])
            threads.append(threading.Thread(target=work, args=(name, taken)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("billing", "audit"):
        a, b = results[(name, 0)], results[(name, 1)]
        assert not set(a) & set(b), f"{name}: no message went to both pollers"
        assert sorted(a + b) == sorted(expected), f"{name}: every message exactly once"
        assert len(a + b) == 40


def test_an_unacked_message_is_given_out_again_after_its_timeout(db):
    group(db, "slow", ["APP"])
    db.execute("SELECT eventeum.publish('jobs', 'j', '{\"n\": 1}', 'slow')")
    (first,) = poll(db, "slow", visibility="300 milliseconds")
    assert poll(db, "slow") == [], "invisible while taken"
    time.sleep(0.4)
    (again,) = poll(db, "slow")
    assert (again[0], again[4]) == (first[0], 2), "the same message, on its second attempt"


def test_delivery_leaves_the_queue_and_marks_the_outbox_row_in_place(cluster, db):
    """Delivered rows leave eventeum.outbox_pending, and their outbox rows are
    marked with a HOT update (no index entries, no new page): the relay's
    main cost before 0.3.0."""
    group(db, "hot", ["APP"])
    for n in range(3):
        db.execute("SELECT eventeum.publish('jobs', %s, %s, 'hot')", (f"k{n}", json.dumps({"n": n})))
    pending = "SELECT count(*) FROM eventeum.outbox_pending WHERE broadcaster = 'hot'"
    assert db.execute(pending).fetchone()[0] == 3
    taken = [m[0] for m in poll(db, "hot")]
    assert len(taken) == 3
    with cluster.connect() as conn:
        conn.autocommit = False
        assert ack(conn, "hot", taken) == 3
        hot = conn.execute("SELECT pg_stat_get_xact_tuples_hot_updated('eventeum.outbox'::regclass)").fetchone()[0]
        assert hot == 3, "ack marks each row with a HOT update"
        conn.commit()
    assert db.execute(pending).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = 'hot' AND delivered_at IS NOT NULL"
                      ).fetchone()[0] == 3
    assert poll(db, "hot") == []


def test_removing_a_broadcaster_drops_its_undelivered_messages_and_queue(db):
    group(db, "dropped", ["APP"])
    group(db, "stays", ["APP"])
    for n in range(2):
        db.execute("SELECT eventeum.publish('jobs', %s, '{}')", (f"d{n}",))
    db.execute("SELECT eventeum.remove_broadcaster('dropped')")
    for table in ("outbox", "outbox_pending"):
        counts = dict(db.execute(f"SELECT broadcaster, count(*) FROM eventeum.{table} "
                                 "WHERE broadcaster IN ('dropped', 'stays') GROUP BY 1").fetchall())
        assert counts == {"stays": 2}, table
    assert [m[2] for m in poll(db, "stays")] == ["d0", "d1"]


def test_broadcaster_management_and_redaction(db, emitter):
    db.execute("SELECT eventeum.add_broadcaster('rabbit', 'rabbitmq', %s)",
               (json.dumps({"url": "amqp://guest:s3cret@127.0.0.1:5672/%2f", "exchange": "eventeum-test"}),))
    db.execute("SELECT eventeum.add_broadcaster('hooks', 'http', %s)",
               (json.dumps({"contractEventsUrl": "http://127.0.0.1:9/events",
                            "headers": {"Authorization": "Bearer t0ken"}}),))
    try:
        listed = {b["name"]: b for (b,) in db.execute("SELECT * FROM eventeum.list_broadcasters()")}
        text = json.dumps(listed)
        assert "s3cret" not in text and "t0ken" not in text and "guest" not in text
        assert listed["rabbit"]["options"]["contractEvents"] == "contractEvents", "defaults filled in"
        for sql, params, state in [
            ("SELECT eventeum.add_broadcaster('rabbit', 'rabbitmq', %s)",
             (json.dumps({"url": "amqp://h", "exchange": "x"}),), "23505"),
            ("SELECT eventeum.add_broadcaster('b', 'carrier-pigeon', '{}')", (), "22023"),
            ("SELECT eventeum.add_broadcaster('b', 'kafka', '{\"bootstrapServers\": \"h:1\", \"acks\": 1}')", (), "22023"),
            ("SELECT eventeum.add_broadcaster('b', 'kafka', '{}')", (), "22023"),
            ("SELECT eventeum.add_broadcaster('b', 'rabbitmq', '{\"url\": \"http://h\", \"exchange\": \"x\"}')", (), "22023"),
            ("SELECT eventeum.add_broadcaster('b', 'http', '{}')", (), "22023"),
            ("SELECT eventeum.add_broadcaster('', 'http', '{\"blockEventsUrl\": \"http://h\"}')", (), "22023"),
            ("SELECT eventeum.remove_broadcaster('nope')", (), "42704"),
            ("SELECT eventeum.create_consumer_group('rabbit')", (), "23505"),
            ("SELECT eventeum.create_consumer_group('g', ARRAY['NOPE'])", (), "22023"),
            ("SELECT * FROM eventeum.poll('no-such-group')", (), "42704"),
            ("SELECT eventeum.publish('', 'k', '{}')", (), "22023"),
            ("SELECT eventeum.publish('d', 'k', '{}', 'no-such-broadcaster')", (), "42704"),
        ]:
            with pytest.raises(psycopg.Error) as raised:
                db.execute(sql, params)
            assert raised.value.sqlstate == state, f"{sql}: {raised.value}"
        # Chain messages are written for each broadcaster that takes their type,
        # with its topic, routing key or URL.
        fid = db.execute("SELECT eventeum.add_filter(%s, %s)",
                         (emitter.address, emitter.signature("Transfer"))).fetchone()[0]
        receipt = emitter.call("transfer(address,uint256)", emitter.address, 1)
        wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
        rows = db.execute("SELECT broadcaster, type, destination FROM eventeum.outbox "
                          "WHERE payload::jsonb -> 'details' ->> 'filterId' = %s AND broadcaster IN ('hooks', 'rabbit') "
                          "ORDER BY broadcaster", (fid,)).fetchall()
        assert rows == [("hooks", "CONTRACT_EVENT", "http://127.0.0.1:9/events"),
                        ("rabbit", "CONTRACT_EVENT", f"contractEvents.{fid}")]
        wait_caught_up(db, "deep", int(receipt["blockNumber"], 16))
        # The transfer's block, on each node that follows the chain, went to
        # rabbit (routing key blockEvents) and not to hooks (no blockEventsUrl).
        block_rows = db.execute("SELECT broadcaster, destination, payload::jsonb -> 'details' ->> 'nodeName' "
                                "FROM eventeum.outbox WHERE type = 'BLOCK' AND broadcaster IN ('hooks', 'rabbit') "
                                "AND payload::jsonb -> 'details' ->> 'hash' = %s "
                                "AND payload::jsonb -> 'details' ->> 'nodeName' IN ('default', 'deep') ORDER BY 3",
                                (receipt["blockHash"],)).fetchall()
        assert block_rows == [("rabbit", "blockEvents", "deep"), ("rabbit", "blockEvents", "default")]
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('rabbit')")
        db.execute("SELECT eventeum.remove_broadcaster('hooks')")
    # Their undelivered rows go with them (another test's delivered rows under
    # the same names stay for the retention period).
    assert db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster IN ('rabbit', 'hooks') "
                      "AND delivered_at IS NULL").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM eventeum.outbox_pending WHERE broadcaster IN ('rabbit', 'hooks')"
                      ).fetchone() == (0,)


def test_a_filter_that_names_broadcasters_goes_only_to_them(db, emitter):
    group(db, "chosen", ["CONTRACT_EVENT"])
    group(db, "bystander", ["CONTRACT_EVENT"])
    fid = db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps({
        "contractAddress": emitter.address, "broadcasters": ["chosen"],
        "eventSpecification": {"eventName": "Transfer",
                               "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS"},
                                                               {"position": 1, "type": "ADDRESS"}],
                               "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256"}]}}),)).fetchone()[0]
    listed = [f for (f,) in db.execute("SELECT * FROM eventeum.list_filters()") if f["id"] == fid]
    assert listed[0]["broadcasters"] == ["chosen"]
    receipt = emitter.call("transfer(address,uint256)", emitter.address, 5)
    wait_caught_up(db, "default", int(receipt["blockNumber"], 16))
    assert [m[3]["details"]["filterId"] for m in poll(db, "chosen")] == [fid]
    assert [m for m in poll(db, "bystander") if m[3]["details"]["filterId"] == fid] == []
    with pytest.raises(psycopg.Error) as raised:
        db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps({
            "contractAddress": emitter.address, "broadcasters": ["nobody"],
            "eventSpecification": {"eventName": "Ping"}}),))
    assert raised.value.sqlstate == "42704"
