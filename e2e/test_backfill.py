"""startBlock backfill over thousands of blocks, through a node that refuses
large eth_getLogs ranges, with nothing lost or duplicated at the boundary
between backfill and live following."""

import json

import pytest
from conftest import POLL_MS, wait_caught_up
from harness import DEPLOYER, ROOT, Emitter, RpcProxy, wait_until
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


BENCH = ROOT / "e2e" / "contracts" / "Bench.json"
SIMPLE = "Simple(address indexed who, uint256 value)"


def test_a_dense_backfill_commits_block_aligned_pieces_and_a_readded_filter_replays_over_its_rows(db, anvil):
    bench = Emitter(anvil, artifact=BENCH)
    start = anvil.block_number() + 1
    per_block, blocks = 5_000, 6
    for i in range(blocks):
        anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", per_block, i * per_block))
    wait_caught_up(db, "default", anvil.block_number())

    def backfill(fid):
        db.execute("SELECT eventeum.add_filter(%s, %s, 'default', %s, %s)", (bench.address, SIMPLE, start, fid))
        wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                      (fid,)).fetchone() == (True,), timeout=120, what="the backfill to finish")

    def stored(fid):
        """The filter's rows in the kind tables, each with the transaction that wrote it."""
        tables = [t for (t,) in db.execute("SELECT table_name FROM eventeum.event_kinds").fetchall()]
        rows = " UNION ALL ".join(f"SELECT e.xmin::text AS tx, e.block_number, e.filter_key FROM eventeum_store.{t} e"
                                  for t in tables)
        return (f"(SELECT r.* FROM ({rows}) r JOIN eventeum.event_sources s ON s.source_key = r.filter_key"
                f" WHERE s.filter_id = '{fid}') stored")

    backfill("dense")
    count, distinct, values = db.execute(
        "SELECT count(*), count(DISTINCT id), count(DISTINCT non_indexed_parameters->0->>'value')"
        "  FROM eventeum.contract_events WHERE filter_id = 'dense' AND status = 'CONFIRMED'").fetchone()
    assert (count, distinct, values) == (per_block * blocks,) * 3, "every log once"
    # 30,000 logs arrive in pieces of about 2,500, each its own transaction,
    # and a piece never splits a block.
    (pieces,) = db.execute(f"SELECT count(DISTINCT tx) FROM {stored('dense')}").fetchone()
    assert pieces >= 3, pieces
    split = db.execute(f"SELECT block_number FROM {stored('dense')}"
                       " GROUP BY block_number HAVING count(DISTINCT tx) > 1").fetchall()
    assert split == []

    # Removing a filter keeps its rows; added again under the same id, its
    # backfill meets them. Nothing is written twice and the worker carries on.
    db.execute("SELECT eventeum.remove_filter('dense')")
    backfill("dense")
    again = db.execute(f"SELECT count(*), count(DISTINCT tx) FROM {stored('dense')}").fetchone()
    assert again == (count, pieces)
    live = anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", 1, 10**6))
    wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = 'dense'"
                                  " AND transaction_hash = %s", (live["transactionHash"],)).fetchone()[0] == 1,
               what="the live event after the replayed backfill")
    db.execute("SELECT eventeum.remove_filter('dense')")


@pytest.mark.parametrize("notify_backfill", [False, True])
def test_a_start_block_backfill_notifies_pieces_unless_the_filter_asks_for_each_event(
        cluster, db, anvil, emitter, notify_backfill):
    """A startBlock backfill is history: by default each committed piece is
    one notice on eventeum_backfill (its events are in the table and the
    outbox), not a NOTIFY per event; `notifyBackfill: true` notifies each.
    A live event after the backfill is notified either way."""
    anvil.mine(1)
    start = anvil.block_number() + 1
    history = [emitter.call("burst(uint256)", 20) for _ in range(3)]
    anvil.mine(2)
    wait_caught_up(db, "default", anvil.block_number())
    group = f"bf_{int(notify_backfill)}"
    db.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['CONTRACT_EVENT'])", (group,))
    body = {"contractAddress": emitter.address, "startBlock": start,
            "eventSpecification": {"eventName": "Ping",
                                   "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}],
                                   "nonIndexedParameterDefinitions": [{"position": 1, "type": "UINT256"}]}}
    if notify_backfill:
        body["notifyBackfill"] = True
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        listener.execute("LISTEN eventeum_backfill")
        fid = db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(body),)).fetchone()[0]
        try:
            wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                          (fid,)).fetchone() == (True,), timeout=60, what="the backfill")
            live = emitter.call("burst(uint256)", 1)
            wait_caught_up(db, "default", int(live["blockNumber"], 16))
            notes = [(n.channel, json.loads(n.payload)) for n in listener.notifies(timeout=2)]
            assert db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s",
                              (fid,)).fetchone() == (61,)
            outbox = db.execute("SELECT count(*) FROM eventeum.poll(%s, 1000) WHERE payload -> 'details' ->> "
                                "'filterId' = %s", (group, fid)).fetchone()[0]
            assert outbox == 61, "the outbox holds every event either way"
        finally:
            db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
            db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))
    events = [(m["details"]["transactionHash"]) for c, m in notes
              if c == "eventeum_contract_events" and m["details"]["filterId"] == fid]
    pieces = [m for c, m in notes if c == "eventeum_backfill" and m["filterId"] == fid]
    if notify_backfill:
        assert events == [r["transactionHash"] for r in history for _ in range(20)] + [live["transactionHash"]]
        assert pieces == []
    else:
        assert events == [live["transactionHash"]], "only the live event, one NOTIFY"
        assert sum(p["events"] for p in pieces) == 60
        assert pieces[0]["fromBlock"] == start and pieces[0]["nodeName"] == "default"


def test_a_backfill_builds_messages_only_when_something_reads_the_outbox(cluster, db, anvil, emitter):
    """With no broadcaster and no consumer group, a quiet backfill builds no
    messages (nobody would read them), yet its rows and its per-piece notices
    are all there. Once a consumer group exists, the next backfill writes a
    message for each event."""
    assert db.execute("SELECT count(*) FROM eventeum.broadcasters").fetchone() == (0,)
    anvil.mine(1)
    start = anvil.block_number() + 1
    for _ in range(3):
        emitter.call("burst(uint256)", 20)
    anvil.mine(2)
    wait_caught_up(db, "default", anvil.block_number())
    body = {"contractAddress": emitter.address, "startBlock": start,
            "eventSpecification": {"eventName": "Ping",
                                   "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}],
                                   "nonIndexedParameterDefinitions": [{"position": 1, "type": "UINT256"}]}}

    def backfill():
        fid = db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(body),)).fetchone()[0]
        wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                      (fid,)).fetchone() == (True,), timeout=60, what="the backfill")
        assert db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s",
                          (fid,)).fetchone() == (60,)
        return fid

    def messages_of(fid):
        return db.execute("SELECT count(*) FROM eventeum.outbox WHERE payload::jsonb -> 'details' ->> 'filterId' = %s",
                          (fid,)).fetchone()[0]

    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_backfill")
        unread = backfill()
        notes = [json.loads(n.payload) for n in listener.notifies(timeout=2)]
    try:
        assert sum(n["events"] for n in notes if n["filterId"] == unread) == 60, "every row announced"
        assert messages_of(unread) == 0
        db.execute("SELECT eventeum.create_consumer_group('bf_reader', ARRAY['CONTRACT_EVENT'])")
        read = backfill()
        try:
            assert messages_of(read) == 60
            assert db.execute("SELECT count(*) FROM eventeum.poll('bf_reader', 1000) WHERE payload -> 'details' "
                              "->> 'filterId' = %s", (read,)).fetchone() == (60,)
        finally:
            db.execute("SELECT eventeum.remove_filter(%s)", (read,))
            db.execute("SELECT eventeum.remove_broadcaster('bf_reader')")
    finally:
        db.execute("SELECT eventeum.remove_filter(%s)", (unread,))
