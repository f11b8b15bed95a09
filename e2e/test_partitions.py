"""Kind tables partitioned by node and block range: forks that cross a
partition boundary, and retention that drops whole partitions, only
CONFIRMED and out of the window, while following goes on."""

import json
import time

from conftest import wait_caught_up
from harness import wait_until
from test_contract_events import add_filter, rows
from test_forks import assert_first_two_reincluded, raw_tx, reorg, transfer

POLL = 100


def add_node(db, anvil, name, **options):
    db.execute("SELECT eventeum.add_node(%s, %s, %s)",
               (name, anvil.url, json.dumps({"pollingInterval": POLL, **options})))
    wait_caught_up(db, name, anvil.block_number())


def remove_node(db, name):
    db.execute("SELECT eventeum.remove_filter(id) FROM eventeum.contract_event_filters WHERE node = %s", (name,))
    db.execute("SELECT eventeum.remove_node(%s)", (name,))


def partitions(db, node):
    """(kind table, from, to) of each of the node's partitions, in block order."""
    return db.execute("""SELECT p.table_name, p.from_block, p.to_block
                           FROM eventeum.event_partitions p JOIN eventeum.event_nodes n USING (node_key)
                          WHERE n.name = %s ORDER BY p.from_block, p.table_name""", (node,)).fetchall()


def partition_of_each_row(db, fid):
    """The partition (a table of its own) that holds each of the filter's rows."""
    table = db.execute("""SELECT k.table_name FROM eventeum.event_kinds k
                           WHERE k.kind LIKE 'address!,address!,uint256%%' LIMIT 1""").fetchone()[0]
    return db.execute(f"""SELECT e.block_number, e.tableoid::regclass::text
                            FROM eventeum_store.{table} e JOIN eventeum.event_sources s ON s.source_key = e.filter_key
                           WHERE s.filter_id = %s ORDER BY e.block_number""", (fid,)).fetchall()


def test_a_fork_across_a_partition_boundary(db, anvil, emitter):
    # Partitions of 4 blocks: the nine replaced blocks span three of them.
    add_node(db, anvil, "quarters", partitionBlocks=4, numBlocksToWait=3)
    try:
        anvil.mine(12)
        fid = add_filter(db, emitter, "Transfer", node="quarters")
        receipts = [transfer(emitter, v) for v in range(1, 6)]
        anvil.mine(4)
        wait_caught_up(db, "quarters", anvil.block_number())
        assert [r[3] for r in rows(db, fid)] == ["CONFIRMED"] * 5
        homes = {home for _, home in partition_of_each_row(db, fid)}
        assert len(homes) >= 2, f"the rows share one partition: {homes}"

        head = reorg(anvil, 9, [(raw_tx(anvil, receipts[0]), 1), (raw_tx(anvil, receipts[1]), 3)])
        anvil.mine(3)
        wait_caught_up(db, "quarters", head + 3)
        assert_first_two_reincluded(db, fid, receipts)
        # Every row sits in the partition of its block, and partitions of
        # one node never overlap.
        spans = [(a, b) for _, a, b in partitions(db, "quarters")]
        for block, home in partition_of_each_row(db, fid):
            first = block - block % 4
            assert home.endswith(f"_{first}"), (block, home)
        tables = {t for t, _, _ in partitions(db, "quarters")}
        for table in tables:
            mine = sorted((a, b) for t, a, b in partitions(db, "quarters") if t == table)
            assert all(b1 < a2 for (_, b1), (a2, _) in zip(mine, mine[1:])), mine
        assert all(b - a == 3 for a, b in spans)
    finally:
        remove_node(db, "quarters")


def test_retention_drops_confirmed_partitions_out_of_the_window_while_following(cluster, db, anvil, emitter):
    # Keep the last 40 blocks, in partitions of 5; confirm at depth 2. The
    # fork window (2 + 32 blocks, no replay) is inside the 40.
    add_node(db, anvil, "retained", partitionBlocks=5, retainBlocks=40, numBlocksToWait=2,
             numBlocksToReplay=0, numBlocksToWaitBeforeInvalidating=0)
    monitor = None
    try:
        fid = add_filter(db, emitter, "Transfer", node="retained")
        # Its blocks (blockNotification is on) and monitored transactions
        # leave with the same window.
        monitor = db.execute("SELECT eventeum.add_transaction_monitor(%s)", (json.dumps(
            {"type": "TO_ADDRESS", "transactionIdentifierValue": emitter.address, "nodeName": "retained"}),)
        ).fetchone()[0]
        table = db.execute("SELECT table_name FROM eventeum.event_kinds WHERE kind LIKE 'address!,address!,uint256%%'"
                           ).fetchone()[0]
        with cluster.connect() as listener, cluster.connect() as reader:
            listener.execute("LISTEN eventeum_contract_events")
            # A long query reads the kind table: a drop would wait for it,
            # and every insert behind the drop. Retention gives up for now.
            reader.execute("BEGIN")
            reader.execute(f"SELECT count(*) FROM eventeum_store.{table}")
            mined = [transfer(emitter, v) for v in range(1, 71)]  # one block each
            anvil.mine(2)
            head = anvil.block_number()
            wait_caught_up(db, "retained", head)
            log_before = cluster.log_text().count("cannot drop the partition now")
            time.sleep(6)  # past a retention pass
            assert cluster.log_text().count("cannot drop the partition now") > log_before
            assert db.execute("SELECT count(*) FROM eventeum.retention_log WHERE node = 'retained'"
                              ).fetchone()[0] == 0
            later = transfer(emitter, 71)
            wait_caught_up(db, "retained", int(later["blockNumber"], 16))  # following goes on meanwhile
            mined.append(later)
            head = anvil.block_number()
            reader.execute("ROLLBACK")
            # Retention runs every few seconds: wait for it to reach the window.
            lowest_kept = head - 40 + 1
            wait_until(lambda: all(r[4] >= lowest_kept - 5 for r in rows(db, fid)),
                       timeout=60, what="retention to remove the old partitions")
            confirmed = set()
            for n in listener.notifies(timeout=3):
                message = json.loads(n.payload)
                if message["details"]["filterId"] == fid and message["details"]["status"] == "CONFIRMED":
                    confirmed.add(message["details"]["transactionHash"])

        removed = db.execute("""SELECT table_name, from_block, to_block, rows FROM eventeum.retention_log
                                 WHERE node = 'retained' ORDER BY from_block, table_name""").fetchall()
        assert removed, "nothing was removed"
        assert all(to <= head - 40 for _, _, to, _ in removed), (head, removed)
        assert all((to - frm) == 4 for _, frm, to, _ in removed), removed
        kept = rows(db, fid)
        kept_from = max(to for _, _, to, _ in removed) + 1
        # Nothing lost, nothing twice: each transfer is either kept, once, or
        # in a removed partition's blocks, and the removed rows add up.
        blocks = [int(r["blockNumber"], 16) for r in mined]
        assert sorted(r[4] for r in kept) == [b for b in blocks if b >= kept_from]
        ours = [b for b in blocks if b < kept_from]
        assert sum(n for _, _, _, n in removed) == len(ours), "every removed row was one of ours, once"
        # Only CONFIRMED rows left: each removed transfer was confirmed first.
        assert {r["transactionHash"] for r in mined if int(r["blockNumber"], 16) < kept_from} <= confirmed
        assert db.execute("SELECT kept_from_block FROM eventeum.backfill_status WHERE node = 'retained'"
                          ).fetchall() in ([], [(kept_from,)])
        assert db.execute("""SELECT count(*) FROM eventeum.event_partitions p JOIN eventeum.event_nodes n
                              USING (node_key) WHERE n.name = 'retained' AND p.to_block < %s""",
                          (kept_from,)).fetchone()[0] == 0

        # Blocks and confirmed transactions out of the window go too; those
        # in it stay, every one.
        def oldest(query):
            return db.execute(query).fetchone()[0]
        wait_until(lambda: oldest("SELECT min(number) FROM eventeum.blocks WHERE node = 'retained'") > head - 40
                   and oldest(f"SELECT min(block_number) FROM eventeum.transactions WHERE monitor_id = '{monitor}'"
                              ) > head - 40, timeout=30, what="retention of blocks and transactions")
        first_block = oldest("SELECT min(number) FROM eventeum.blocks WHERE node = 'retained'")
        assert db.execute("SELECT count(*), count(DISTINCT number) FROM eventeum.blocks WHERE node = 'retained' "
                          "AND number BETWEEN %s AND %s", (first_block, head)).fetchone() == (
            head - first_block + 1, head - first_block + 1)
        first_tx = oldest(f"SELECT min(block_number) FROM eventeum.transactions WHERE monitor_id = '{monitor}'")
        assert sorted(h for (h,) in db.execute("SELECT hash FROM eventeum.transactions WHERE monitor_id = %s "
                                               "AND block_number <= %s", (monitor, head)).fetchall()) == sorted(
            r["transactionHash"] for r in mined if first_tx <= int(r["blockNumber"], 16) <= head)

        # Following goes on after the removals.
        later = transfer(emitter, 99)
        wait_caught_up(db, "retained", int(later["blockNumber"], 16))
        assert rows(db, fid)[-1][6] == later["transactionHash"]
    finally:
        if monitor:
            db.execute("SELECT eventeum.remove_transaction_monitor(%s)", (monitor,))
        remove_node(db, "retained")


def test_retention_by_time(db, anvil, emitter):
    # An hour keeps everything mined now; two seconds keeps only what is in
    # the fork window (32 blocks with no depth options).
    quick = {"partitionBlocks": 2, "numBlocksToWait": 0, "numBlocksToReplay": 0,
             "numBlocksToWaitBeforeInvalidating": 0}
    add_node(db, anvil, "hourly", retainFor=3_600_000, **quick)
    add_node(db, anvil, "briefly", retainFor=2_000, **quick)
    try:
        hourly = add_filter(db, emitter, "Transfer", node="hourly")
        briefly = add_filter(db, emitter, "Transfer", node="briefly")
        mined = [transfer(emitter, v) for v in range(1, 7)]
        anvil.mine(40)
        head = anvil.block_number()
        for node in ("hourly", "briefly"):
            wait_caught_up(db, node, head)
        time.sleep(3)
        anvil.mine(1)  # the chain's clock: its events are older than two seconds now
        wait_until(lambda: db.execute("SELECT COALESCE(sum(rows), 0) FROM eventeum.retention_log WHERE node = 'briefly'"
                                      ).fetchone()[0] >= 4, timeout=30, what="retention by time")
        time.sleep(6)  # past another pass: the hourly node's would have run too
        assert len(rows(db, hourly)) == len(mined)
        # (Its empty partitions, made ahead and passed by, may go: no rows.)
        assert db.execute("SELECT COALESCE(sum(rows), 0) FROM eventeum.retention_log WHERE node = 'hourly'"
                          ).fetchone()[0] == 0
        removed = db.execute("SELECT from_block, to_block FROM eventeum.retention_log WHERE node = 'briefly'").fetchall()
        assert all(to <= head - 32 for _, to in removed), (head, removed)
        kept_from = max(to for _, to in removed) + 1
        blocks = [int(r["blockNumber"], 16) for r in mined]
        assert sorted(r[4] for r in rows(db, briefly)) == [b for b in blocks if b >= kept_from]
    finally:
        remove_node(db, "hourly")
        remove_node(db, "briefly")
