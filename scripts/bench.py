"""eventeum's benchmark. Run it with scripts/bench; it prints a table, then,
as its last line, one JSON object with every figure.

Each figure is measured in this run next to its baseline (raw eth_getLogs,
Postgres COPY of the same rows), since the machines are noisy. Sizes come from
the environment: BENCH_EVENTS (100000), BENCH_LIVE_BLOCKS (200), BENCH_FILTERS
(10000), BENCH_RPC_BLOCKS (50), BENCH_BACKFILL_ROUNDS (3). BENCH_ONLY picks
phases, for profiling: a comma list of hostile (the backfill through the RPC
proxy), live, sets (address sets of 10 and 100,000), views (typed views: the
backfill with two indexed columns, and a lookup among BENCH_LOOKUP_EVENTS,
1,000,000, rows), filters, relay and storage (scripts/bench_storage.py:
disk, aggregates and an index build at BENCH_SCALE, 1,000,000, events); the
backfill always runs, and "none" runs only it. A 1,000,000-event run: BENCH_EVENTS=1000000 BENCH_ONLY=none.
BENCH_PG (15, 17 or 18) picks the PostgreSQL; scripts/bench sets PG_CONFIG.
"""

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))

import pika  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from harness import PG_MAJOR, Anvil, Cluster, Emitter, RpcProxy, Tansu, free_port, wait_until  # noqa: E402

from bench_storage import (SIMPLE_KIND, delete_events, insert_simple_rows, keys, kind_table,  # noqa: E402
                           narrow_copy_seconds, storage, truncate_events, wait_view_index)

EVENTS = int(os.environ.get("BENCH_EVENTS", 100_000))
LIVE_BLOCKS = int(os.environ.get("BENCH_LIVE_BLOCKS", 200))
FILTERS = int(os.environ.get("BENCH_FILTERS", 10_000))
RPC_BLOCKS = int(os.environ.get("BENCH_RPC_BLOCKS", 50))
EVENTS_PER_TX = 2_000
GETLOGS_CALL_LOGS = 100_000  # the raw baseline's largest call; a 1,000,000-log answer is about 700 MB
SIMPLE = "Simple(address indexed who, uint256 value)"
PHASES = set(os.environ.get("BENCH_ONLY", "hostile,live,sets,views,filters,relay,storage").split(","))
LOOKUP_EVENTS = int(os.environ.get("BENCH_LOOKUP_EVENTS", 1_000_000))
LOOKUP_ADDRESSES = 1_000  # distinct "who" values among them: 1,000 rows each
SET_SMALL, SET_LARGE = 10, 100_000
POLL_MS = 20  # the live POLL figure: as often as a local node can sensibly be asked
BACKFILL_ROUNDS = int(os.environ.get("BENCH_BACKFILL_ROUNDS", 3))
ARTIFACT = ROOT / "e2e" / "contracts" / "Bench.json"

figures: dict[str, float] = {}
rows: list[tuple[str, str, str]] = []  # (what, figure, note)


def report(key, value, label, unit, note=""):
    figures[key] = value
    rows.append((label, f"{value:,.2f} {unit}".strip() if isinstance(value, float) else f"{value:,} {unit}", note))
    print(f"  {label}: {rows[-1][1]} {note}", file=sys.stderr, flush=True)


def step(text):
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def count_events(db, filter_id):
    return db.execute("SELECT count(*) FROM eventeum.contract_events WHERE filter_id = %s AND status = 'CONFIRMED'",
                      (filter_id,)).fetchone()[0]


def backfill_done(db, filter_id):
    row = db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s", (filter_id,)).fetchone()
    return bool(row and row[0])


def add_node(db, name, url, **options):
    db.execute("SELECT eventeum.add_node(%s, %s, %s)",
               (name, url, json.dumps({"numBlocksToWait": 0, "pollingInterval": 100, **options})))


def caught_up(db, node, block):
    row = db.execute("SELECT latest_block FROM eventeum.node_state WHERE node = %s", (node,)).fetchone()
    return bool(row and row[0] is not None and row[0] >= block)


def wait_caught_up(db, anvil, node, timeout=120):
    head = anvil.block_number()
    wait_until(lambda: caught_up(db, node, head), timeout=timeout, interval=0.05, what=f"{node} at {head}")


def worker_memory(db):
    pid = worker_pid(db)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    kb = {k: int(status[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}
    return {k: v / 1024 for k, v in kb.items()}


# --- the chain --------------------------------------------------------------

def emit_events(anvil, bench):
    txs = math.ceil(EVENTS / EVENTS_PER_TX)
    for i in range(txs):
        count = min(EVENTS_PER_TX, EVENTS - i * EVENTS_PER_TX)
        anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", count, i * EVENTS_PER_TX))
    return txs


def getlogs_baseline(anvil, bench):
    """The node's limit: eth_getLogs over the whole range, in calls of at most
    GETLOGS_CALL_LOGS logs (one call at 100,000 events), timed in sum; the
    best of 3."""
    blocks_per_call = max(1, GETLOGS_CALL_LOGS // EVENTS_PER_TX)
    head = anvil.block_number()
    best = math.inf
    for _ in range(3):
        seconds, count = 0.0, 0
        for first in range(0, head + 1, blocks_per_call):
            # A short tail joins the call before it: 100,000 events are one call.
            last = head if head - first < blocks_per_call * 1.5 else first + blocks_per_call - 1
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                               "params": [{"fromBlock": hex(first), "toBlock": hex(last),
                                           "address": bench.address}]}).encode()
            start = time.perf_counter()
            request = urllib.request.Request(anvil.url, body, {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as response:
                count += len(json.load(response)["result"])
            seconds += time.perf_counter() - start
            if last == head:
                break
        best = min(best, seconds)
        assert count == EVENTS, count
    return EVENTS / best


# --- backfill and COPY --------------------------------------------------------

def worker_pid(db):
    return db.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventeum'").fetchone()[0]


def cpu_seconds(pid, tid=None):
    """User plus system CPU time of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by the worker's main thread (the one that owns
    Postgres), its other threads (RPC, decoding, rows) and anvil."""

    def __init__(self, db, anvil):
        self.worker = worker_pid(db)
        self.anvil = anvil.process.pid

    def read(self):
        total = cpu_seconds(self.worker)
        main = cpu_seconds(self.worker, self.worker)
        return {"main": main, "threads": total - main, "anvil": cpu_seconds(self.anvil)}

    @staticmethod
    def spent(before, after):
        return {k: after[k] - before[k] for k in before}


def backfill(db, anvil, bench, node="bench", filter_id="bench_backfill"):
    """One backfill of every event from block 0: returns (seconds, CPU seconds by whom)."""
    meter = CpuMeter(db, anvil)
    before = meter.read()
    start = time.perf_counter()
    db.execute("SELECT eventeum.add_filter(%s, %s, %s, 0, %s)", (bench.address, SIMPLE, node, filter_id))
    # Poll the one-row backfill status, not count(*) of a growing table, which
    # would take a core from the worker on this 2-core machine; then count.
    # Every 10 ms: the figure's resolution, against a run of about a second.
    wait_until(lambda: backfill_done(db, filter_id) and count_events(db, filter_id) >= EVENTS,
               timeout=3600, interval=0.01, what=f"{EVENTS} CONFIRMED rows")
    elapsed = time.perf_counter() - start
    spent = CpuMeter.spent(before, meter.read())
    assert count_events(db, filter_id) == EVENTS
    return elapsed, spent


class MemorySampler:
    """Samples the worker's /proc status every 20 ms on a thread of its own
    and keeps the peaks: private memory (RssAnon, what the worker holds),
    file pages, and the shared buffers it touched (RssShmem, the server's
    shared memory, counted in VmHWM though no process owns it)."""

    def __init__(self, db):
        pid = worker_pid(db)
        self._path = Path(f"/proc/{pid}/status")
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0, "RssShmem": 0.0, "RssAnon+RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.02):
            try:
                status = dict(line.split(":", 1) for line in self._path.read_text().splitlines())
            except OSError:
                return
            mb = {key: int(status[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile", "RssShmem")}
            mb["RssAnon+RssFile"] = mb["RssAnon"] + mb["RssFile"]
            for key in self.peak:
                self.peak[key] = max(self.peak[key], mb[key])

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def vm_hwm_mb(pid):
    """A process's peak resident memory since it started (VmHWM), in MB."""
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def peak_rss_mb(db):
    """The worker's peak resident memory since it started (VmHWM), in MB."""
    return vm_hwm_mb(worker_pid(db))


def proxied_backfill(db, anvil, bench, hostile):
    """The same backfill through the test suite's RPC proxy; when `hostile`,
    the proxy plays a hosted provider: a quarter of the requests refused for
    the rate limit (half HTTP 429 with Retry-After: 1, half -32005), a tenth
    answered 0.5 s late, and half the eth_getLogs answers from a backend two
    seconds behind (the newest blocks' logs left out)."""
    proxy = RpcProxy(anvil.url)
    if hostile:
        proxy.rate_limited, proxy.slow, proxy.lagging = 0.25, 0.1, 0.5
    proxy.start()
    try:
        add_node(db, "bench_hostile", proxy.url)
        wait_caught_up(db, anvil, "bench_hostile")
        seconds, _ = backfill(db, anvil, bench, "bench_hostile", "bench_hostile_backfill")
        step(f"through the {'hostile' if hostile else 'clean'} proxy: {seconds:.2f} s, {proxy.refused_for_rate} "
             f"requests refused for the rate limit, {proxy.lagged_answers} lagging answers")
        db.execute("SELECT eventeum.remove_filter('bench_hostile_backfill')")
        delete_events(db, "bench_hostile_backfill")
        db.execute("SELECT eventeum.remove_node('bench_hostile')")
        return seconds
    finally:
        proxy.stop()


def hostile_backfill(db, anvil, bench):
    clean = proxied_backfill(db, anvil, bench, hostile=False)
    hostile = proxied_backfill(db, anvil, bench, hostile=True)
    report("backfill_hostile_events_per_s", EVENTS / hostile, "backfill via a rate-limiting, lagging proxy",
           "events/s", "(25% of requests refused, 10% slow; the lag hides only blocks newer than the backfill)")
    report("backfill_hostile_vs_clean", clean / hostile, "backfill via the hostile proxy / the same proxy clean", "",
           f"(clean through the proxy {EVENTS / clean:,.0f} events/s)")


def copy_baseline(db):
    """COPYs the backfilled rows into an identical table (same columns, keys
    and indexes): returns (seconds, CPU seconds of the backend that ran it)."""
    buffer = bytearray()
    table, (filter_key, _) = kind_table(db, SIMPLE_KIND), keys(db, "bench_backfill")
    with db.cursor().copy(f"COPY (SELECT * FROM {table} WHERE filter_key = {filter_key}) "
                          "TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            buffer += chunk
    backend = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    db.execute("DROP TABLE IF EXISTS public.bench_copy")
    db.execute(f"CREATE TABLE public.bench_copy (LIKE {table} INCLUDING ALL)")
    cpu = cpu_seconds(backend)
    start = time.perf_counter()
    with db.cursor().copy("COPY public.bench_copy FROM STDIN (FORMAT binary)") as copy:
        copy.write(bytes(buffer))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(backend) - cpu
    figures["copy_backend_peak_rss_mb"] = max(figures.get("copy_backend_peak_rss_mb", 0), vm_hwm_mb(backend))
    copied = db.execute("SELECT count(*) FROM public.bench_copy").fetchone()[0]
    assert copied == EVENTS, copied
    db.execute("DROP TABLE public.bench_copy")
    return elapsed, cpu


def backfill_rounds(db, anvil, bench):
    """BACKFILL_ROUNDS rounds of a backfill, each followed by COPY of its
    rows; both figures are the best round, the same statistic on both sides.
    Returns the rounds as (backfill s, its CPU, COPY s, COPY CPU)."""
    add_node(db, "bench", anvil.url)
    wait_caught_up(db, anvil, "bench")
    rounds, narrow = [], []
    sampler = MemorySampler(db)
    for i in range(BACKFILL_ROUNDS):
        if i:
            # Start again from the same place: no filter, no rows.
            db.execute("SELECT eventeum.remove_filter('bench_backfill')")
            truncate_events(db)
        seconds, cpu = backfill(db, anvil, bench)
        copy_s, copy_cpu = copy_baseline(db)
        narrow.append(narrow_copy_seconds(db, "bench_backfill", EVENTS))
        rounds.append((seconds, cpu, copy_s, copy_cpu))
        step(f"round {i + 1}: backfill {seconds:.2f} s (CPU: main thread {cpu['main']:.2f} s, "
             f"other threads {cpu['threads']:.2f} s, anvil {cpu['anvil']:.2f} s); "
             f"COPY {copy_s:.2f} s (CPU {copy_cpu:.2f} s); ratio {copy_s / seconds:.2f}")
    figures["backfill_peak_memory_mb"] = sampler.stop()
    figures["narrow_copy_s"] = min(narrow)
    return rounds


# --- live latency -------------------------------------------------------------

def live_latency(cluster, db, anvil, bench, node, arrived, label):
    """Mines LIVE_BLOCKS blocks, one event each; `arrived(tx_hash, deadline)` waits for
    the event's message and returns when it came. Returns latencies in ms."""
    anvil.rpc("evm_setAutomine", False)
    latencies = []
    try:
        for i in range(LIVE_BLOCKS):
            tx_hash = anvil.submit(bench.address, bench.calldata("emitMany(uint256,uint256)", 1, 10**9 + i))
            time.sleep(0.02)  # let the previous block's work settle
            mined = time.perf_counter()
            anvil.rpc("evm_mine")
            at = arrived(tx_hash, mined + 30)
            latencies.append((at - mined) * 1000)
    finally:
        anvil.rpc("evm_setAutomine", True)
    step(f"{label}: {len(latencies)} blocks")
    return latencies


def notify_waiter(listener, node):
    def arrived(tx_hash, deadline):
        while time.perf_counter() < deadline:
            for note in listener.notifies(timeout=max(0.0, deadline - time.perf_counter()), stop_after=1):
                message = json.loads(note.payload)
                details = message.get("details", {})
                if details.get("nodeName") == node and details.get("transactionHash") == tx_hash:
                    return time.perf_counter()
        raise TimeoutError(f"no NOTIFY for {tx_hash} on {node}")
    return arrived


def notify_latency(cluster, db, anvil, bench, node, url, **options):
    add_node(db, node, url, **options)
    wait_caught_up(db, anvil, node)
    db.execute("SELECT eventeum.add_filter(%s, %s, %s, NULL, %s)", (bench.address, SIMPLE, node, node))
    time.sleep(1)  # the filter reaches the follower
    with cluster.connect() as listener:
        listener.execute("LISTEN eventeum_contract_events")
        latencies = live_latency(cluster, db, anvil, bench, node, notify_waiter(listener, node), node)
    db.execute("SELECT eventeum.remove_filter(%s)", (node,))
    return latencies


def wait_for_arrival(arrivals, tx_hash, deadline, where):
    """When a reader thread noted `tx_hash` in `arrivals`, waiting until `deadline`."""
    while time.perf_counter() < deadline:
        if tx_hash in arrivals:
            return arrivals[tx_hash]
        time.sleep(0.0002)
    raise TimeoutError(f"no message for {tx_hash} {where}")


class BareSubscriber:
    """The live-latency baseline: a bare WebSocket client on the same anvil,
    no database, that takes each `newHeads` push and then asks `eth_getLogs`
    for that block; an event has arrived when its log is in hand."""

    def __init__(self, ws_url, address):
        from websockets.sync.client import connect

        self.arrivals: dict[str, float] = {}
        self._address = address
        self._socket = connect(ws_url, max_size=None)
        self._socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                      "params": ["newHeads"]}))
        json.loads(self._socket.recv())  # the subscription id
        self._next_id = 2
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                message = json.loads(self._socket.recv())
                if message.get("method") != "eth_subscription":
                    continue
                head = message["params"]["result"]
                self._next_id += 1
                self._socket.send(json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": "eth_getLogs",
                                              "params": [{"blockHash": head["hash"], "address": self._address}]}))
                while True:  # heads pushed meanwhile wait in the socket's queue
                    answer = json.loads(self._socket.recv())
                    if answer.get("id") == self._next_id:
                        break
                now = time.perf_counter()
                for log in answer.get("result") or []:
                    self.arrivals.setdefault(log["transactionHash"], now)
        except ConnectionClosed:
            pass

    def arrived(self, tx_hash, deadline):
        return wait_for_arrival(self.arrivals, tx_hash, deadline, "at the bare subscriber")

    def close(self):
        self._socket.close()
        self._thread.join(timeout=10)


def bare_subscriber_latency(cluster, db, anvil, bench):
    subscriber = BareSubscriber(anvil.ws_url, bench.address)
    try:
        return live_latency(cluster, db, anvil, bench, "bare", subscriber.arrived, "bare subscriber")
    finally:
        subscriber.close()


class KafkaReader:
    """A Kafka consumer on its own thread, noting when each message arrived."""

    def __init__(self, broker, topic, track_arrivals=True):
        # Parsing every payload costs the consumer a core's worth of Python on
        # this 2-core machine; the throughput run only counts.
        self.track_arrivals = track_arrivals
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.last = 0.0
        self.last_wall = 0.0  # the same instant on the Unix clock, for the bare producer's start
        self._stop = False
        self._consumer = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{topic}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                   "fetch.wait.max.ms": 5, "topic.metadata.refresh.interval.ms": 500})
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            for message in self._consumer.consume(num_messages=10_000, timeout=0.05):
                if message.error():
                    continue
                now = time.perf_counter()
                self.count += 1
                self.last = now
                self.last_wall = time.time()
                if not self.track_arrivals:
                    continue
                payload = json.loads(message.value())
                details = payload.get("details", {})
                if "transactionHash" in details:
                    self.arrivals[details["transactionHash"]] = now

    def arrived(self, tx_hash, deadline):
        return wait_for_arrival(self.arrivals, tx_hash, deadline, "in Kafka")

    def close(self):
        self._stop = True
        self._thread.join(timeout=10)
        self._consumer.close()


def create_topic(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker})  # alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)


def kafka_latency(db, anvil, bench, tansu):
    topic = "bench-live"
    create_topic(tansu.address, topic)
    reader = KafkaReader(tansu.address, topic)
    db.execute("SELECT eventeum.add_broadcaster('bench_kafka', 'kafka', %s)",
               (json.dumps({"bootstrapServers": tansu.address, "contractEvents": topic}),))
    db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
        "id": "bench_kafka", "contractAddress": bench.address, "node": "bench_ws", "broadcasters": ["bench_kafka"],
        "eventSpecification": {"eventName": "Simple", "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS"}],
                               "nonIndexedParameterDefinitions": [{"position": 1, "type": "UINT256"}]}}),))
    time.sleep(1)
    try:
        # A first message, so that the producer and the consumer are connected before the clock runs.
        warm = anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", 1, 0))
        reader.arrived(warm["transactionHash"], time.perf_counter() + 60)
        return live_latency(None, db, anvil, bench, "bench_ws", reader.arrived, "kafka")
    finally:
        db.execute("SELECT eventeum.remove_filter('bench_kafka')")
        db.execute("SELECT eventeum.remove_broadcaster('bench_kafka')")
        reader.close()


# --- RPC calls per block and memory with many filters --------------------------

def rpc_calls_per_block(db, anvil, bench, proxy, node):
    """Mines RPC_BLOCKS blocks with one event each, at a steady pace, and counts
    the calls the worker made through the proxy."""
    wait_caught_up(db, anvil, node)
    time.sleep(0.5)
    proxy.calls.clear()
    for i in range(RPC_BLOCKS):
        anvil.send(bench.address, bench.calldata("emitMany(uint256,uint256)", 1, i))
        time.sleep(0.2)
    wait_caught_up(db, anvil, node)
    calls = dict(proxy.calls)
    return sum(calls.values()) / RPC_BLOCKS, calls


def many_filters(db, anvil, bench, proxy):
    add_node(db, "bench_count", proxy.url)
    db.execute("SELECT eventeum.add_filter(%s, %s, 'bench_count', NULL, 'bench_count_0')", (bench.address, SIMPLE))
    time.sleep(1)
    one, calls_one = rpc_calls_per_block(db, anvil, bench, proxy, "bench_count")
    memory_one = worker_memory(db)
    step(f"1 filter: {calls_one}")
    start = time.perf_counter()
    # Without typed views: 10,000 views created in one transaction would
    # each hold a lock until it commits (more than max_locks_per_transaction).
    simple = {"type": "event", "name": "Simple", "inputs": [{"name": "who", "type": "address", "indexed": True},
                                                           {"name": "value", "type": "uint256", "indexed": False}]}
    db.execute("""SELECT eventeum.add_filter(jsonb_build_object(
                             'id', 'bench_count_' || i, 'contractAddress', '0x' || lpad(to_hex(i), 40, '0'),
                             'node', 'bench_count', 'view', false, 'eventSpecification', %s::jsonb))
                    FROM generate_series(1, %s) AS i""", (json.dumps(simple), FILTERS - 1))
    step(f"{FILTERS - 1} more filters added in {time.perf_counter() - start:.1f} s")
    time.sleep(2)
    many, calls_many = rpc_calls_per_block(db, anvil, bench, proxy, "bench_count")
    step(f"{FILTERS} filters: {calls_many}")
    time.sleep(2)
    memory_many = worker_memory(db)
    # Leave nothing behind: every later configuration change would reload them.
    db.execute("SELECT eventeum.remove_filter(id) FROM eventeum.contract_event_filters WHERE node = 'bench_count'")
    db.execute("SELECT eventeum.remove_node('bench_count')")
    return one, many, memory_one, memory_many


def address_sets(db, anvil, bench, proxy):
    """RPC calls per block and worker memory with a set of SET_SMALL and of
    SET_LARGE addresses (the contract among them), then the time from a
    watch() commit to the first event its backfill stores."""
    members = """INSERT INTO eventeum.address_set_members (set_name, address)
                 SELECT 'bench_set', '0x' || lpad(to_hex(i), 40, '0') FROM generate_series(%s::int, %s::int) AS i"""
    add_node(db, "bench_sets", proxy.url)
    db.execute("SELECT eventeum.create_address_set('bench_set')")
    db.execute(members, (1, SET_SMALL - 1))
    db.execute("SELECT eventeum.watch('bench_set', %s)", (bench.address,))
    db.execute("SELECT eventeum.add_filter(NULL, %s, 'bench_sets', id => 'bench_set', address_set => 'bench_set')",
               (SIMPLE,))
    time.sleep(1)
    small, calls_small = rpc_calls_per_block(db, anvil, bench, proxy, "bench_sets")
    memory_small = worker_memory(db)
    step(f"set of {SET_SMALL}: {calls_small}")
    db.execute(members, (SET_SMALL, SET_LARGE - 1))
    time.sleep(2)
    large, calls_large = rpc_calls_per_block(db, anvil, bench, proxy, "bench_sets")
    memory_large = worker_memory(db)
    step(f"set of {SET_LARGE}: {calls_large}")

    # A contract with history, watched from the block of its first event.
    late = Emitter(anvil, artifact=ARTIFACT)
    first = anvil.send(late.address, late.calldata("emitMany(uint256,uint256)", 1, 0))
    anvil.mine(100)
    wait_caught_up(db, anvil, "bench_sets")
    with db.transaction():
        db.execute("SELECT eventeum.watch('bench_set', %s, %s)", (late.address, int(first["blockNumber"], 16)))
    committed = time.perf_counter()
    wait_until(lambda: db.execute("SELECT 1 FROM eventeum.contract_events WHERE filter_id = 'bench_set' "
                                  "AND address = %s", (late.address,)).fetchone(),
               timeout=60, interval=0.005, what="the first backfilled event")
    watch_ms = (time.perf_counter() - committed) * 1000
    db.execute("SELECT eventeum.remove_filter('bench_set')")
    db.execute("SELECT eventeum.remove_node('bench_sets')")
    db.execute("SELECT eventeum.drop_address_set('bench_set')")
    return small, large, memory_small, memory_large, watch_ms


# --- relay throughput ---------------------------------------------------------

# One Eventeum message of a Simple event, as the worker writes it: the relay
# phase needs no rows of another phase's.
SAMPLE_PAYLOAD = {
    "id": "0x" + "ab" * 32 + "-0x" + "cd" * 32 + "-0", "type": "CONTRACT_EVENT", "retries": 0,
    "details": {
        "id": "0x" + "ab" * 32 + "-0x" + "cd" * 32 + "-0", "name": "Simple", "filterId": "bench_relay",
        "nodeName": "bench", "indexedParameters": [{"type": "address", "value": "0x" + "12" * 20}],
        "nonIndexedParameters": [{"type": "uint256", "value": 123456789}],
        "transactionHash": "0x" + "ab" * 32, "logIndex": 0, "blockNumber": 1234567, "blockHash": "0x" + "cd" * 32,
        "address": "0x" + "34" * 20, "status": "CONFIRMED", "eventSpecificationSignature": "0x" + "ef" * 32,
    },
}


def prefill_outbox(db, broadcaster, destination):
    """Writes EVENTS messages in one transaction; returns the instant it committed."""
    payload = SAMPLE_PAYLOAD
    with db.transaction():
        # As the worker writes them: the outbox row and its entry in the queue.
        db.execute("""WITH added AS (
                          INSERT INTO eventeum.outbox (message_id, type, broadcaster, destination, key, payload)
                          SELECT %s || '-' || i, 'CONTRACT_EVENT', %s, %s, i::text, %s
                            FROM generate_series(1, %s) AS i
                          RETURNING broadcaster, id, created_at)
                      INSERT INTO eventeum.outbox_pending (broadcaster, id, created_at)
                      SELECT broadcaster, id, created_at FROM added""",
                   (broadcaster, broadcaster, destination, json.dumps(payload, separators=(",", ":")), EVENTS))
    return time.perf_counter()


def undelivered(db, broadcaster):
    return db.execute("SELECT count(*) FROM eventeum.outbox WHERE broadcaster = %s AND delivered_at IS NULL",
                      (broadcaster,)).fetchone()[0]


def kafka_throughput(db, tansu):
    topic = "bench-bulk"
    create_topic(tansu.address, topic)
    reader = KafkaReader(tansu.address, topic, track_arrivals=False)
    time.sleep(2)  # the consumer joins its group
    db.execute("SELECT eventeum.add_broadcaster('bench_kafka_bulk', 'kafka', %s)",
               (json.dumps({"bootstrapServers": tansu.address, "contractEvents": topic}),))
    try:
        cpu = RelayCpu(db, [tansu.process.pid])
        start = prefill_outbox(db, "bench_kafka_bulk", topic)
        wait_until(lambda: reader.count >= EVENTS, timeout=3600, interval=0.05, what="Kafka to receive every message")
        rate = EVENTS / (reader.last - start)
        figures["kafka_relay_cpu_s"] = cpu.spent()
        wait_until(lambda: undelivered(db, "bench_kafka_bulk") == 0, timeout=600, what="the outbox to drain")
        return rate
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('bench_kafka_bulk')")
        reader.close()


BARE_PRODUCER = ROOT / "target" / "release" / "examples" / "bare_producer"


def rabbit_pids():
    """RabbitMQ's processes (its Erlang VM)."""
    out = subprocess.run(["pgrep", "-f", "beam"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class RelayCpu:
    """CPU seconds spent while a relay run or its baseline runs: by the
    worker's main thread and its other threads, by the bare producer (a
    child of this script), and by the broker. On a 2-core machine the
    rates are bound by their sum."""

    def __init__(self, db, broker_pids):
        self.worker = worker_pid(db)
        self.broker_pids = broker_pids
        self.before = self.read()

    def read(self):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        main = cpu_seconds(self.worker, self.worker)
        return {"main": main, "threads": cpu_seconds(self.worker) - main,
                "producer": children.ru_utime + children.ru_stime,
                "broker": sum(cpu_seconds(pid) for pid in self.broker_pids)}

    def spent(self):
        after = self.read()
        return {k: after[k] - self.before[k] for k in after}


def cpu_note(cpu, relay):
    if relay:
        return f"CPU: worker main thread {cpu['main']:.2f} s, its other threads {cpu['threads']:.2f} s, broker {cpu['broker']:.2f} s"
    return f"CPU: producer {cpu['producer']:.2f} s, broker {cpu['broker']:.2f} s"


def bare_producer(broker, address, destination, db):
    """Runs the relay's baseline (core/examples/bare_producer.rs: rdkafka or
    lapin with the relay's acks, idempotence and confirms) on the messages the
    relay sends; returns the Unix time it sent the first one."""
    payload = json.dumps(SAMPLE_PAYLOAD, separators=(",", ":"))
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(payload)
        f.flush()
        out = subprocess.run([str(BARE_PRODUCER), broker, address, destination, str(EVENTS), f.name],
                             check=True, capture_output=True, text=True, timeout=3600).stdout
    started, _acked = (float(x) for x in out.split())
    return started


def bare_kafka_producer(db, tansu):
    """The relay's Kafka baseline, clocked as the relay is: from the first
    send until a consumer has every message."""
    topic = "bench-bare"
    create_topic(tansu.address, topic)
    reader = KafkaReader(tansu.address, topic, track_arrivals=False)
    time.sleep(2)  # the consumer joins its group
    try:
        cpu = RelayCpu(db, [tansu.process.pid])
        start = bare_producer("kafka", tansu.address, topic, db)
        wait_until(lambda: reader.count >= EVENTS, timeout=3600, interval=0.05, what="Kafka to receive every message")
        figures["kafka_bare_cpu_s"] = cpu.spent()
        return EVENTS / (reader.last_wall - start)
    finally:
        reader.close()


class RabbitQueue:
    """A queue bound to every routing key of the bench's exchange, counted by the broker."""

    EXCHANGE = "bench-exchange"

    def __init__(self, name):
        self.name = name
        self.connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(self.EXCHANGE, "topic", durable=True)
        self.channel.queue_declare(name, auto_delete=False)
        self.channel.queue_purge(name)
        self.channel.queue_bind(name, self.EXCHANGE, "#")

    def wait_for_all(self):
        """Returns the instant (perf_counter, time) the broker held every message."""
        wait_until(lambda: self.channel.queue_declare(self.name, passive=True).method.message_count >= EVENTS,
                   timeout=3600, interval=0.02, what="RabbitMQ to hold every message")
        return time.perf_counter(), time.time()

    def drain(self):
        got = 0
        for method, _, _ in self.channel.consume(self.name, inactivity_timeout=2, auto_ack=True):
            if method is None:
                break
            got += 1
        self.channel.cancel()
        return got

    def close(self):
        self.channel.queue_delete(self.name)
        self.connection.close()


def bare_rabbit_producer(db):
    """The relay's RabbitMQ baseline, clocked as the relay is: from the first
    send until the broker's queue holds every message."""
    queue = RabbitQueue("bench-bare")
    try:
        cpu = RelayCpu(db, rabbit_pids())
        start = bare_producer("rabbitmq", "amqp://guest:guest@127.0.0.1:5672/%2f", RabbitQueue.EXCHANGE, db)
        _, held = queue.wait_for_all()
        figures["rabbit_bare_cpu_s"] = cpu.spent()
        assert queue.drain() == EVENTS
        return EVENTS / (held - start)
    finally:
        queue.close()


def rabbit_throughput(db):
    queue = RabbitQueue("bench-bulk")
    db.execute("SELECT eventeum.add_broadcaster('bench_rabbit', 'rabbitmq', %s)",
               (json.dumps({"url": "amqp://guest:guest@127.0.0.1:5672/%2f", "exchange": RabbitQueue.EXCHANGE}),))
    try:
        cpu = RelayCpu(db, rabbit_pids())
        start = prefill_outbox(db, "bench_rabbit", "bench.bulk")
        held, _ = queue.wait_for_all()
        figures["rabbit_relay_cpu_s"] = cpu.spent()
        got = queue.drain()
        assert got == EVENTS, got  # exactly: a duplicate would show
        return EVENTS / (held - start)
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('bench_rabbit')")
        queue.close()


# --- the run ------------------------------------------------------------------

def main():
    with tempfile.TemporaryDirectory(prefix="eventeum-bench-") as work:
        work = Path(work)
        work.chmod(0o755)
        anvil = Anvil(free_port(), work / "anvil.log")
        anvil.start("--gas-limit", "300000000")
        cluster = Cluster(work / "pg", free_port(), database="bench")
        # Postgres' durable defaults: fsync and synchronous_commit on, for us and for COPY alike.
        cluster.init({"fsync": "on", "log_min_messages": "warning"})
        cluster.start()
        tansu = Tansu(work / "tansu.log")
        tansu.start()
        proxy = RpcProxy(anvil.url)
        proxy.start()
        try:
            cluster.create_database()
            with cluster.connect() as db:
                run(cluster, db, anvil, tansu, proxy)
        finally:
            proxy.stop()
            tansu.stop()
            # The shutdown checkpoint writes what the run left dirty, fsync on:
            # on a slow disk that takes a while after 500,000 rows.
            stopping = time.perf_counter()
            try:
                cluster.stop(missing_ok=True, timeout=600)
            finally:
                step(f"cluster stopped in {time.perf_counter() - stopping:.1f} s")
                shutil.copy(cluster.log, Path(tempfile.gettempdir()) / "eventeum-bench-postgres.log")
            anvil.stop()
    print_table()
    print(json.dumps({"postgresql": PG_MAJOR, **figures}))


def run(cluster, db, anvil, tansu, proxy):
    step(f"deploying and emitting {EVENTS:,} Simple events")
    bench = Emitter(anvil, artifact=ARTIFACT)
    txs = emit_events(anvil, bench)
    step(f"{txs} transactions in {txs} blocks; head {anvil.block_number()}")

    getlogs_rate = getlogs_baseline(anvil, bench)
    report("getlogs_baseline_events_per_s", getlogs_rate, "raw eth_getLogs", "logs/s",
           f"(baseline: calls of up to {GETLOGS_CALL_LOGS:,} logs, best of 3)")
    rounds = backfill_rounds(db, anvil, bench)
    best = min(rounds, key=lambda r: r[0])
    copy_best = min(rounds, key=lambda r: r[2])
    paired = sorted(r[2] / r[0] for r in rounds)
    report("backfill_events_per_s", EVENTS / best[0], "backfill into Postgres", "events/s",
           f"(best of {len(rounds)}: {best[0]:.2f} s from add_filter to all rows CONFIRMED)")
    report("copy_baseline_events_per_s", EVENTS / copy_best[2], "COPY of the same rows", "rows/s",
           f"(baseline: best of {len(rounds)}, each right after a backfill)")
    report("backfill_vs_copy", copy_best[2] / best[0], "backfill / COPY", "",
           f"(goal >= 0.5; round by round {', '.join(f'{p:.2f}' for p in paired)})")
    figures["backfill_vs_copy_rounds"] = [round(r[2] / r[0], 3) for r in rounds]
    limit = max(EVENTS / getlogs_rate, copy_best[2])
    report("backfill_vs_limit", best[0] / limit, "backfill time / max(eth_getLogs time, COPY time)", "",
           f"(goal <= 1.2; {best[0]:.2f} s / max({EVENTS / getlogs_rate:.2f} s, {copy_best[2]:.2f} s))")
    narrow_limit = max(EVENTS / getlogs_rate, figures["narrow_copy_s"])
    report("backfill_vs_narrow_limit", best[0] / narrow_limit,
           "backfill time / max(eth_getLogs time, COPY into a narrow typed table)", "",
           f"(issue 34's goal <= 1.2; {best[0]:.2f} s / max({EVENTS / getlogs_rate:.2f} s, "
           f"{figures['narrow_copy_s']:.2f} s): block, log index, hashes and addresses as bytea, numeric)")
    main_cpu = min(r[1]["main"] for r in rounds)
    copy_cpu = min(r[3] for r in rounds)
    report("backfill_main_thread_cpu_vs_copy", main_cpu / copy_cpu, "worker main thread CPU / COPY backend CPU", "",
           f"(least of each: {main_cpu:.2f} s / {copy_cpu:.2f} s)")
    peak = figures["backfill_peak_memory_mb"]
    report("backfill_peak_rss_own_mb", peak["RssAnon+RssFile"],
           f"worker peak RSS outside shared buffers, {EVENTS:,}-event backfills", "MB",
           f"(goal <= 64; sampled every 20 ms: private {peak['RssAnon']:.0f} MB at most, mapped files "
           f"{peak['RssFile']:.0f} MB)")
    report("backfill_peak_rss_mb", peak_rss_mb(db), f"worker peak RSS with shared buffers, {EVENTS:,}-event backfills",
           "MB", f"(VmHWM; the shared buffers it touched, up to {peak['RssShmem']:.0f} MB, any backend writing the "
                 f"rows touches: the COPY backend's VmHWM is {figures['copy_backend_peak_rss_mb']:.0f} MB)")
    if "hostile" in PHASES:
        hostile_backfill(db, anvil, bench)
    db.execute("SELECT eventeum.remove_filter('bench_backfill')")
    db.execute("SELECT eventeum.remove_node('bench')")
    # Each phase owns its chain state: the ones that emit events do so on a
    # contract of their own, so `bench` keeps exactly EVENTS events (the views
    # phase backfills them) and the phases' order changes no figure.
    if "live" in PHASES:
        live(cluster, db, anvil, Emitter(anvil, artifact=ARTIFACT), tansu)
    if "sets" in PHASES:
        sets(db, anvil, Emitter(anvil, artifact=ARTIFACT), proxy)
    if "views" in PHASES:
        views(db, anvil, bench)
    if "filters" in PHASES:
        filters(db, anvil, Emitter(anvil, artifact=ARTIFACT), proxy)
    if "relay" in PHASES:
        bare = bare_kafka_producer(db, tansu)
        report("bare_kafka_msgs_per_s", bare, "bare producer -> Kafka", "msgs/s",
               "(baseline: rdkafka with the relay's acks and idempotence, no database; "
               + cpu_note(figures["kafka_bare_cpu_s"], relay=False) + ")")
        relayed = kafka_throughput(db, tansu)
        report("kafka_msgs_per_s", relayed, "outbox -> Kafka", "msgs/s",
               "(goal >= 20,000; " + cpu_note(figures["kafka_relay_cpu_s"], relay=True) + ")")
        report("kafka_vs_bare", relayed / bare, "outbox -> Kafka / bare producer", "", "(goal >= 0.7)")
        bare = bare_rabbit_producer(db)
        report("bare_rabbit_msgs_per_s", bare, "bare producer -> RabbitMQ", "msgs/s",
               "(baseline: lapin with the relay's confirms and persistence, no database; "
               + cpu_note(figures["rabbit_bare_cpu_s"], relay=False) + ")")
        relayed = rabbit_throughput(db)
        report("rabbit_msgs_per_s", relayed, "outbox -> RabbitMQ", "msgs/s",
               "(goal >= 10,000; " + cpu_note(figures["rabbit_relay_cpu_s"], relay=True) + ")")
        report("rabbit_vs_bare", relayed / bare, "outbox -> RabbitMQ / bare producer", "", "(goal >= 0.7)")
    # Last: its million rows leave the tables larger for anything after it.
    if "storage" in PHASES:
        storage(db, cluster, anvil, Emitter(anvil, artifact=ARTIFACT), Emitter(anvil, artifact=ARTIFACT), report, step)
    figures["events"] = EVENTS
    figures["live_blocks"] = LIVE_BLOCKS
    figures["filters"] = FILTERS


def live(cluster, db, anvil, bench, tansu):
    poll = notify_latency(cluster, db, anvil, bench, "bench_poll", anvil.url, pollingInterval=POLL_MS,
                          blockNotification=False)
    report("live_poll_p50_ms", percentile(poll, 50), f"live POLL ({POLL_MS} ms) p50", "ms", "mined -> NOTIFY")
    report("live_poll_p99_ms", percentile(poll, 99), f"live POLL ({POLL_MS} ms) p99", "ms")
    pubsub = notify_latency(cluster, db, anvil, bench, "bench_ws", anvil.ws_url, blockStrategy="PUBSUB",
                            blockNotification=False)
    bare = bare_subscriber_latency(cluster, db, anvil, bench)
    report("bare_subscriber_p50_ms", percentile(bare, 50), "bare WebSocket subscriber p50", "ms",
           "(baseline: newHeads, then eth_getLogs of the block; no database)")
    report("bare_subscriber_p99_ms", percentile(bare, 99), "bare WebSocket subscriber p99", "ms", "(baseline)")
    report("live_p50_ms", percentile(pubsub, 50), "live PUBSUB p50", "ms", "mined -> NOTIFY")
    report("live_p99_ms", percentile(pubsub, 99), "live PUBSUB p99", "ms", "(goal <= 50)")
    report("live_p50_vs_bare", percentile(pubsub, 50) / percentile(bare, 50), "live PUBSUB p50 / bare p50", "",
           "(goal <= 1.5)")
    report("live_p99_vs_bare", percentile(pubsub, 99) / percentile(bare, 99), "live PUBSUB p99 / bare p99", "",
           "(goal <= 1.5)")
    kafka = kafka_latency(db, anvil, bench, tansu)
    report("kafka_p50_ms", percentile(kafka, 50), "live PUBSUB -> Kafka p50", "ms", "mined -> consumer")
    report("kafka_p99_ms", percentile(kafka, 99), "live PUBSUB -> Kafka p99", "ms", "(goal <= 100)")


def sets(db, anvil, bench, proxy):
    small, large, memory_small, memory_large, watch_ms = address_sets(db, anvil, bench, proxy)

    def own(memory):
        return memory["RssAnon"] + memory["RssFile"]
    report("rpc_calls_per_block_set_10", small, f"RPC calls per block, a set of {SET_SMALL}", "")
    report("rpc_calls_per_block_set_100k", large, f"RPC calls per block, a set of {SET_LARGE:,}", "")
    report("rpc_calls_ratio_set_100k_vs_10", large / small, "RPC calls ratio, sets", "", "(goal <= 1.2)")
    report("worker_rss_set_10_mb", own(memory_small), f"worker RSS, a set of {SET_SMALL}", "MB",
           f"(private {memory_small['RssAnon']:.0f} + file {memory_small['RssFile']:.0f})")
    report("worker_rss_set_100k_mb", own(memory_large), f"worker RSS, a set of {SET_LARGE:,}", "MB",
           f"(private {memory_large['RssAnon']:.0f} + file {memory_large['RssFile']:.0f})")
    report("watch_to_first_backfilled_event_ms", watch_ms, "watch() commit -> first backfilled event", "ms",
           "(a contract whose event is 100 blocks back)")


def views(db, anvil, bench):
    """Typed views: the backfill with two indexed view columns (until the
    rows and the index builder's indexes are there) against the same
    backfill without (rounds alternate, best of each), then an indexed
    lookup among LOOKUP_EVENTS rows against the same lookup on a plain table
    with a B-tree on the same columns."""
    add_node(db, "bench", anvil.url)
    wait_caught_up(db, anvil, "bench")
    plain, indexed = [], []
    for _ in range(max(2, BACKFILL_ROUNDS)):
        for index, times in (([], plain), (["who", "value"], indexed)):
            truncate_events(db)
            start = time.perf_counter()
            db.execute("SELECT eventeum.add_filter(%s)", (json.dumps({
                "id": "bench_view", "contractAddress": bench.address, "node": "bench", "startBlock": 0,
                "eventSpecification": {"type": "event", "name": "Simple", "inputs": [
                    {"name": "who", "type": "address", "indexed": True},
                    {"name": "value", "type": "uint256", "indexed": False}]},
                "view": {"name": "bench_view", "index": index}}),))
            wait_until(lambda: backfill_done(db, "bench_view") and count_events(db, "bench_view") >= EVENTS,
                       timeout=3600, interval=0.01, what=f"{EVENTS} rows")
            # The index builder makes the view's indexes beside the backfill:
            # the time is until the rows and the indexes are all there (and no
            # concurrent build is left for the next TRUNCATE to deadlock with).
            wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.view_indexes "
                                          "WHERE filter_id = 'bench_view' AND state = 'READY'").fetchone()[0]
                       == len(index), timeout=3600, interval=0.01, what="the view's indexes")
            times.append(time.perf_counter() - start)
            assert count_events(db, "bench_view") == EVENTS
            db.execute("SELECT eventeum.remove_filter('bench_view')")
        step(f"backfill without indexes {plain[-1]:.2f} s, with 2 indexed view columns {indexed[-1]:.2f} s")
    truncate_events(db)
    db.execute("SELECT eventeum.remove_node('bench')")
    report("view_indexed_backfill_events_per_s", EVENTS / min(indexed), "backfill, 2 indexed view columns",
           "events/s", f"(best of {len(indexed)})")
    report("view_indexed_vs_plain_backfill", min(plain) / min(indexed), "backfill with 2 indexes / without", "",
           f"(baseline: the same backfill, no index, {EVENTS / min(plain):,.0f} events/s; rounds alternate)")

    # The lookup: LOOKUP_EVENTS rows of one filter, as the worker writes them.
    step(f"writing {LOOKUP_EVENTS:,} rows for the lookup")
    db.execute("SELECT eventeum.add_node('lookup', %s)", (anvil.url,))
    db.execute("SELECT eventeum.add_filter(%s, %s, 'lookup', NULL, 'lookup')", (bench.address, SIMPLE))
    insert_simple_rows(db, "lookup", """
        SELECT i / 100 AS block_number, (i %% 100)::integer AS log_index,
               '0x' || md5('b' || (i / 100)) || md5('B' || (i / 100)) AS block_hash,
               '0x' || md5('t' || i) || md5('T' || i) AS transaction_hash, %(address)s AS address,
               '0x' || lpad(to_hex(1 + i %% %(addresses)s), 40, '0') AS who, i::numeric AS value,
               1700000000 + i / 100 AS block_timestamp
          FROM generate_series(1, %(rows)s) AS i""",
                       {"address": bench.address, "addresses": LOOKUP_ADDRESSES, "rows": LOOKUP_EVENTS})
    start = time.perf_counter()
    db.execute("""SELECT eventeum.set_view('lookup', '{"name": "lookup", "index": ["who"]}')""")
    wait_view_index(db, "lookup_who_")
    step(f"index built in {time.perf_counter() - start:.1f} s")
    db.execute(f"ANALYZE {kind_table(db, SIMPLE_KIND)}")
    db.execute("SET search_path = eventeum, public")  # the compact types' operators (REFERENCE, "Types")
    db.execute("CREATE TABLE public.lookup_plain AS SELECT who, value, block_number FROM eventeum.lookup")
    db.execute("CREATE INDEX ON public.lookup_plain (who, block_number)")
    db.execute("ANALYZE public.lookup_plain")
    probe = f"0x{7:040x}"
    query = 'SELECT * FROM {} WHERE who = %s ORDER BY block_number DESC LIMIT 50'
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + query.format("eventeum.lookup"), (probe,)))
    # The view's index, or (kind tables being partitioned) its partition's.
    parts = [r[0] for r in db.execute("""SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                            JOIN eventeum.view_indexes v ON i.inhparent = ('eventeum_store.' || quote_ident(v.index_name))::regclass
                                           WHERE v.filter_id = 'lookup'""").fetchall()]
    assert any(f"Index Scan Backward using {name} " in plan for name in parts), plan

    def timed(table):
        times = []
        for i in range(300):
            address = f"0x{1 + i % LOOKUP_ADDRESSES:040x}"
            start = time.perf_counter()
            got = db.execute(query.format(table), (address,)).fetchall()
            times.append((time.perf_counter() - start) * 1000)
            assert len(got) == 50, len(got)
        return times[50:]  # the first calls warm the cache and the plan
    view_ms, plain_ms = timed("eventeum.lookup"), timed("public.lookup_plain")
    db.execute("DROP TABLE public.lookup_plain")
    db.execute("SELECT eventeum.remove_filter('lookup')")
    db.execute("RESET search_path")
    delete_events(db, "lookup")
    db.execute("SELECT eventeum.remove_node('lookup')")
    report("view_lookup_p50_ms", percentile(view_ms, 50),
           f"typed view lookup, {LOOKUP_EVENTS:,} rows, 50 newest by an indexed column, p50", "ms",
           "(goal < 5; from psycopg, round trip included)")
    report("view_lookup_p99_ms", percentile(view_ms, 99), "typed view lookup p99", "ms")
    report("view_lookup_vs_plain_table", percentile(view_ms, 50) / percentile(plain_ms, 50),
           "typed view lookup p50 / plain table p50", "",
           f"(baseline: a table of the same rows with a B-tree on (who, block_number): "
           f"{percentile(plain_ms, 50):.2f} ms)")


def filters(db, anvil, bench, proxy):
    one, many, memory_one, memory_many = many_filters(db, anvil, bench, proxy)
    report("rpc_calls_per_block_1_filter", one, "RPC calls per block, 1 filter", "")
    report("rpc_calls_per_block_10k_filters", many, f"RPC calls per block, {FILTERS:,} filters", "")
    report("rpc_calls_ratio_10k_vs_1_filter", many / one, "RPC calls ratio", "", "(goal <= 2)")
    report("worker_rss_mb", memory_many["RssAnon"] + memory_many["RssFile"], f"worker RSS, {FILTERS:,} filters",
           "MB", f"(goal <= 64; private {memory_many['RssAnon']:.0f} + file {memory_many['RssFile']:.0f}; "
                 f"shared buffers touched {memory_many['RssShmem']:.0f} MB; "
                 f"with 1 filter {memory_one['RssAnon'] + memory_one['RssFile']:.0f} MB)")


def print_table():
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"\neventeum benchmark on PostgreSQL {PG_MAJOR}: {EVENTS:,} events, {LIVE_BLOCKS} live blocks, "
          f"{FILTERS:,} filters, {os.cpu_count()} CPUs\n")
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{value_width}}  {note}")
    print()


if __name__ == "__main__":
    main()
