"""scripts/bench's storage phase: the event storage at scale against a plain
typed table of the same values, every figure from the same run.

BENCH_SCALE rows (1,000,000; 10,000,000 for the issue's second scale) of one
filter are written by SQL in the shape the worker stores them, then:
- bytes per event on disk (table and indexes) against a plain typed table;
- sum, GROUP BY and a block-range aggregate through the filter's typed view
  against the same query on that table (median of five, after a warm-up);
- an indexed lookup by a value as the user writes it (an EIP-55 address);
- the longest wait of a live event (20 a second, on a node followed over a
  WebSocket) while `set_view` adds an index on the large filter, against the
  longest wait over the same time with no build.
"""

import json
import os
import statistics
import time

from harness import wait_until
from live_events import LiveEvents

SCALE = int(os.environ.get("BENCH_SCALE", 1_000_000))
ADDRESSES = 1_000  # distinct "who" values: SCALE / ADDRESSES rows each
EVENTS_PER_BLOCK = 100
SIMPLE_INPUTS = [{"name": "who", "type": "address", "indexed": True},
                 {"name": "value", "type": "uint256", "indexed": False}]

# A plain typed table a user would write for the same values: text hashes and
# addresses, numeric values, the natural key.
PLAIN_TABLE = """CREATE TABLE public.storage_plain (
    block_number bigint NOT NULL, block_hash text NOT NULL, transaction_hash text NOT NULL,
    log_index integer NOT NULL, contract_address text NOT NULL, block_time timestamptz NOT NULL,
    who text NOT NULL, value numeric NOT NULL, PRIMARY KEY (block_number, log_index))"""

QUERIES = {
    "sum": "SELECT sum(value) FROM {t}",
    "group_by": "SELECT who, count(*), sum(value) FROM {t} GROUP BY who",
    "block_range": "SELECT count(*), sum(value) FROM {t} WHERE block_number BETWEEN {lo} AND {hi}",
}


def storage(db, cluster, anvil, stored, live, report, step):
    """Runs the phase. `stored` and `live` are Bench contracts of its own: the
    large filter is on the first (its rows are written by SQL), the live
    events come from the second."""
    blocks = SCALE // EVENTS_PER_BLOCK
    lo, hi = blocks * 45 // 100, blocks * 55 // 100  # a tenth of the blocks
    db.execute("SELECT eventeum.add_node('storage', %s)", (anvil.url,))
    db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
        "id": "storage", "contractAddress": stored.address, "node": "storage",
        "eventSpecification": {"type": "event", "name": "Simple", "inputs": SIMPLE_INPUTS},
        "view": {"name": "storage_view"}}),))
    step(f"writing {SCALE:,} rows in the stored shape, and the same values into a plain typed table")
    truncate_events(db)  # the earlier phases' rows and dead space
    db.execute("CHECKPOINT")
    write_stored_rows(db, stored.address)
    db.execute(PLAIN_TABLE)
    db.execute("""INSERT INTO public.storage_plain
                  SELECT block_number, block_hash, transaction_hash, log_index, address,
                         to_timestamp(block_timestamp), indexed_parameters -> 0 ->> 'value',
                         (non_indexed_parameters -> 0 ->> 'value')::numeric
                    FROM eventeum.contract_events WHERE filter_id = 'storage'""")
    table = kind_table(db, SIMPLE_KIND)
    db.execute(f"VACUUM ANALYZE {table}")
    db.execute("VACUUM ANALYZE public.storage_plain")
    # A kind table is partitioned: its own size is nothing, its partitions' is the rows'.
    stored = db.execute("""SELECT pg_total_relation_size(t) + COALESCE((SELECT sum(pg_total_relation_size(i.inhrelid))
                                                                         FROM pg_inherits i WHERE i.inhparent = t), 0)
                             FROM (SELECT %s::regclass AS t) AS kind""", (table,)).fetchone()[0]
    stored = int(stored)  # a sum of bigints is numeric
    plain = db.execute("SELECT pg_total_relation_size('public.storage_plain')").fetchone()[0]
    report("storage_bytes_per_event", stored / SCALE, f"bytes per event on disk, {SCALE:,} events", "B",
           "(table and indexes)")
    report("storage_bytes_vs_plain", stored / plain, "bytes per event / plain typed table", "",
           f"(goal <= 1.3; baseline {plain / SCALE:,.0f} B: text hashes and addresses, numeric, its primary key)")

    for name, query in QUERIES.items():
        view_ms = timed(db, query.format(t="eventeum.storage_view", lo=lo, hi=hi))
        plain_ms = timed(db, query.format(t="public.storage_plain", lo=lo, hi=hi))
        report(f"storage_{name}_ms", view_ms, f"typed view {name.replace('_', ' ')}, {SCALE:,} events", "ms",
               f"(median of 5; plain typed table {plain_ms:,.1f} ms)")
        report(f"storage_{name}_vs_plain", view_ms / plain_ms, f"typed view {name.replace('_', ' ')} / plain", "",
               "(goal <= 1.3)")

    quiet, busy, build_s = live_waits_during_index_build(db, cluster, anvil, live, step)
    report("storage_index_build_s", build_s, f"set_view adding an index, {SCALE:,} events", "s")
    report("storage_longest_wait_during_build_ms", busy, "longest live-event wait while it builds", "ms",
           f"(goal <= 1,000; 20 events a second; the same time with no build: {quiet:,.0f} ms)")

    db.execute("CREATE INDEX ON public.storage_plain (who, block_number)")
    db.execute("ANALYZE public.storage_plain")
    lookup = "SELECT * FROM {t} WHERE who = %s ORDER BY block_number DESC LIMIT 50"
    db.execute("SET search_path = eventeum, public")  # the compact types' operators (REFERENCE, "Types")
    view_ms = lookup_ms(db, lookup.format(t="eventeum.storage_view"))
    plain_ms = lookup_ms(db, lookup.format(t="public.storage_plain"))
    db.execute("RESET search_path")
    report("storage_lookup_vs_plain", view_ms / plain_ms, "indexed lookup by an EIP-55 address / plain", "",
           f"(goal <= 1.1; p50 {view_ms:.2f} ms against {plain_ms:.2f} ms)")

    db.execute("DROP TABLE public.storage_plain")
    db.execute("SELECT eventeum.remove_filter('storage')")
    delete_events(db, "storage")
    db.execute("SELECT eventeum.remove_node('storage')")
    db.execute(f"VACUUM {table}")


# The narrow typed table issue 34 sets the backfill against: the values a
# user keeps of a Simple event, hashes and addresses as bytes.
NARROW_TABLE = """CREATE TABLE public.bench_narrow (
    block_number bigint NOT NULL, log_index integer NOT NULL, transaction_hash bytea NOT NULL,
    who bytea NOT NULL, value numeric NOT NULL, PRIMARY KEY (block_number, log_index))"""


def narrow_copy_seconds(db, filter_id, rows):
    """COPY of a backfill's rows into a narrow typed table: the other limit a
    backfill is measured against (next to raw eth_getLogs)."""
    buffer = bytearray()
    query = f"""COPY (SELECT block_number, log_index, decode(substr(transaction_hash, 3), 'hex'),
                             decode(substr(indexed_parameters -> 0 ->> 'value', 3), 'hex'),
                             (non_indexed_parameters -> 0 ->> 'value')::numeric
                        FROM eventeum.contract_events WHERE filter_id = '{filter_id}')
                TO STDOUT (FORMAT binary)"""
    with db.cursor().copy(query) as copy:
        for chunk in copy:
            buffer += chunk
    db.execute("DROP TABLE IF EXISTS public.bench_narrow")
    db.execute(NARROW_TABLE)
    start = time.perf_counter()
    with db.cursor().copy("COPY public.bench_narrow FROM STDIN (FORMAT binary)") as copy:
        copy.write(bytes(buffer))
    elapsed = time.perf_counter() - start
    copied = db.execute("SELECT count(*) FROM public.bench_narrow").fetchone()[0]
    assert copied == rows, copied
    db.execute("DROP TABLE public.bench_narrow")
    return elapsed


def who(i_sql):
    """An address of decimal digits only: its EIP-55 form is itself."""
    return f"'0x' || lpad((1 + mod({i_sql}, {ADDRESSES}))::text, 40, '0')"


def write_stored_rows(db, contract):
    """SCALE rows of filter `storage`, as the worker writes them."""
    batch = 1_000_000
    for first in range(1, SCALE + 1, batch):
        insert_simple_rows(db, "storage", f"""
            SELECT i / {EVENTS_PER_BLOCK} AS block_number, mod(i, {EVENTS_PER_BLOCK})::integer AS log_index,
                   bh AS block_hash, tx AS transaction_hash, %(contract)s AS address, {who('i')} AS who,
                   i::numeric AS value, 1700000000 + i / {EVENTS_PER_BLOCK} * 12 AS block_timestamp
              FROM generate_series(%(first)s, %(last)s) AS i,
                   LATERAL (SELECT '0x' || md5('b' || (i / {EVENTS_PER_BLOCK})) ||
                                           md5('B' || (i / {EVENTS_PER_BLOCK})) AS bh,
                                   '0x' || md5('t' || i) || md5('T' || i) AS tx) AS h""",
                           {"contract": contract, "first": first, "last": min(SCALE, first + batch - 1)})


SIMPLE_KIND = "address!,uint256"


def kind_table(db, kind):
    """The table of event kind `kind` (eventeum.event_kinds), schema-qualified."""
    return "eventeum_store." + db.execute("SELECT table_name FROM eventeum.event_kinds WHERE kind = %s",
                                          (kind,)).fetchone()[0]


def keys(db, filter_id):
    """The filter's rows' (filter_key, node_key)."""
    return db.execute("""SELECT s.source_key, n.node_key FROM eventeum.event_sources s
                           JOIN eventeum.event_nodes n ON n.name = s.node
                          WHERE s.filter_id = %s ORDER BY s.source_key DESC LIMIT 1""", (filter_id,)).fetchone()


def truncate_events(db):
    """Empties every kind table: the earlier rounds' rows and dead space."""
    for (table,) in db.execute("SELECT table_name FROM eventeum.event_kinds").fetchall():
        db.execute(f"TRUNCATE eventeum_store.{table}")


def delete_events(db, filter_id):
    for (table,) in db.execute("SELECT table_name FROM eventeum.event_kinds").fetchall():
        db.execute(f"""DELETE FROM eventeum_store.{table} WHERE filter_key IN
                         (SELECT source_key FROM eventeum.event_sources WHERE filter_id = %s)""", (filter_id,))


def insert_simple_rows(db, filter_id, rows_sql, params):
    """Rows of a Simple filter straight into its kind table, as the worker
    writes them (no NOTIFY: the worker writes backfilled rows without one
    too). `rows_sql` selects block_number, log_index, block_hash,
    transaction_hash, address, who (text), value and block_timestamp."""
    filter_key, node_key = keys(db, filter_id)
    table = kind_table(db, SIMPLE_KIND)
    # Kind tables are partitioned by node and block range: make the rows' partitions first.
    db.execute(f"""SELECT eventeum.make_partitions(%(kind_table)s, n.name, m.low, m.high)
                     FROM (SELECT min(r.block_number) AS low, max(r.block_number) AS high FROM ({rows_sql}) AS r) m,
                          eventeum.event_nodes n
                    WHERE n.node_key = {node_key} AND m.low IS NOT NULL""",
               {**params, "kind_table": table.removeprefix("eventeum_store.")})
    db.execute(f"""INSERT INTO {table}
                     (node_key, filter_key, block_number, log_index, status, block_timestamp, block_hash,
                      transaction_hash, address, p1, p2)
                   SELECT {node_key}, {filter_key}, r.block_number, r.log_index, 'CONFIRMED', r.block_timestamp,
                          r.block_hash::eventeum.hash, r.transaction_hash::eventeum.hash,
                          r.address::eventeum.address, r.who::eventeum.address, r.value
                     FROM ({rows_sql}) AS r""", params)


def timed(db, query, runs=5):
    db.execute(query).fetchall()  # warm the cache and the plan
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        db.execute(query).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def lookup_ms(db, query):
    times = []
    for i in range(300):
        address = f"0x{1 + i % ADDRESSES:040d}"
        start = time.perf_counter()
        got = db.execute(query, (address,)).fetchall()
        times.append((time.perf_counter() - start) * 1000)
        assert len(got) == 50, len(got)
    return statistics.median(times[50:])  # the first calls warm the cache and the plan


def wait_view_index(db, prefix):
    """Until the index builder has made the typed view's index named `prefix`…"""
    wait_until(lambda: db.execute("SELECT state FROM eventeum.view_indexes WHERE index_name LIKE %s",
                                  (prefix + "%",)).fetchall() == [("READY",)],
               timeout=3600, interval=0.05, what=f"the index {prefix}*")


def live_waits_during_index_build(db, cluster, anvil, live, step):
    """The longest live wait while set_view adds an index on the large filter,
    then over as long a stretch with no build. Returns (quiet ms, during the
    build ms, build s)."""
    db.execute("SELECT eventeum.add_node('storage_live', %s, %s)",
               (anvil.ws_url, json.dumps({"blockStrategy": "PUBSUB", "blockNotification": False,
                                          "numBlocksToWait": 0})))
    db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
        "id": "storage_live", "contractAddress": live.address, "node": "storage_live",
        "eventSpecification": {"type": "event", "name": "Simple", "inputs": SIMPLE_INPUTS}, "view": False}),))
    head = anvil.block_number()

    def followed():
        row = db.execute("SELECT latest_block FROM eventeum.node_state WHERE node = 'storage_live'").fetchone()
        return bool(row and row[0] is not None and row[0] >= head)
    wait_until(followed, timeout=60, what="storage_live followed")
    time.sleep(1)  # the filter reaches the follower
    with LiveEvents(cluster, anvil, live, "storage_live") as events:
        time.sleep(2)
        start = time.perf_counter()
        db.execute("""SELECT eventeum.set_view('storage', '{"name": "storage_view", "index": ["who"]}')""")
        wait_view_index(db, "storage_view_who_")
        build_s = time.perf_counter() - start
        time.sleep(1)
    busy = events.longest_wait_ms()
    step(f"index built in {build_s:.1f} s; {len(events.sent)} live events, the longest waited {busy:.0f} ms")
    with LiveEvents(cluster, anvil, live, "storage_live") as quiet_events:
        time.sleep(build_s + 3)
    quiet = quiet_events.longest_wait_ms()
    db.execute("SELECT eventeum.remove_filter('storage_live')")
    db.execute("SELECT eventeum.remove_node('storage_live')")
    return quiet, busy, build_s
