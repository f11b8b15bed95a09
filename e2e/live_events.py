"""Live events at a steady rate, and how long each waited for its NOTIFY:
the measure of an ingestion stall (e2e/test_index_builds.py and
scripts/bench's storage phase)."""

import json
import threading
import time

LIVE_INTERVAL_S = 0.05  # 20 events a second


class LiveEvents:
    """One event every LIVE_INTERVAL_S (a Bench contract's emitMany(1, …)),
    and when its first NOTIFY came: the longest wait is the longest the
    worker's inserts stalled."""

    def __init__(self, cluster, anvil, emitter, node):
        self.cluster, self.anvil, self.emitter, self.node = cluster, anvil, emitter, node
        self.sent, self.arrived = {}, {}
        self.stop = threading.Event()

    def __enter__(self):
        self.listener = self.cluster.connect()
        self.listener.execute("LISTEN eventeum_contract_events")
        self.threads = [threading.Thread(target=self._listen, daemon=True),
                        threading.Thread(target=self._mine, daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.threads[1].join()
        self.threads[0].join()  # it returns once every event arrived, or 60 s after the last
        self.listener.close()

    def _mine(self):
        i = 0
        while not self.stop.is_set():
            start = time.perf_counter()
            tx = self.anvil.submit(self.emitter.address, self.emitter.calldata("emitMany(uint256,uint256)", 1, 10**12 + i))
            self.sent[tx] = start
            i += 1
            time.sleep(max(0.0, LIVE_INTERVAL_S - (time.perf_counter() - start)))

    def _listen(self):
        while not (self.stop.is_set() and not set(self.sent) - set(self.arrived)):
            for note in self.listener.notifies(timeout=0.2, stop_after=1):
                details = json.loads(note.payload).get("details", {})
                if details.get("nodeName") == self.node:
                    self.arrived.setdefault(details.get("transactionHash"), time.perf_counter())
            if self.stop.is_set() and time.perf_counter() > max(self.sent.values(), default=0) + 60:
                return

    def longest_wait_ms(self):
        missing = set(self.sent) - set(self.arrived)
        assert not missing, f"{len(missing)} of {len(self.sent)} live events never arrived"
        return max(self.arrived[tx] - sent for tx, sent in self.sent.items()) * 1000
