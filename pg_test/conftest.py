"""Fixtures: one real cluster with eventeum preloaded and one anvil per test session."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import Anvil, Cluster, Emitter, HttpReceiver, free_port, wait_until  # noqa: E402

POLL_MS = 100


@pytest.fixture(scope="session")
def workdir():
    # EVENTEUM_E2E_KEEP=1 keeps the cluster's and the brokers' logs for a post-mortem.
    if os.environ.get("EVENTEUM_E2E_KEEP"):
        d = tempfile.mkdtemp(prefix="eventeum-e2e-")
        Path(d).chmod(0o755)
        yield Path(d)
        return
    with tempfile.TemporaryDirectory(prefix="eventeum-e2e-") as d:
        Path(d).chmod(0o755)  # the cluster runs as postgres
        yield Path(d)


@pytest.fixture(scope="session")
def anvil(workdir):
    node = Anvil(free_port(), workdir / "anvil.log")
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def cluster(workdir, anvil):
    c = Cluster(workdir / "pg", free_port())
    c.init()
    c.start()
    try:
        c.create_database()
        with c.connect() as conn:
            # Two nodes on the same chain: one confirms at once, one waits 3 blocks.
            conn.execute("SELECT eventeum.add_node('default', %s, %s)",
                         (anvil.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0}}'))
            conn.execute("SELECT eventeum.add_node('deep', %s, %s)",
                         (anvil.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 3}}'))
            # Following starts where the worker first reaches a node; wait for that.
            for node in ("default", "deep"):
                wait_caught_up(conn, node, anvil.block_number(), timeout=60)
        yield c
    finally:
        c.stop(missing_ok=True)
        log = c.log_text()
        if "PANIC" in log or "panicked" in log:
            print(log[-5000:])


@pytest.fixture
def db(cluster):
    with cluster.connect() as conn:
        yield conn


@pytest.fixture
def receiver():
    """A webhook endpoint recording what the HTTP relay posts."""
    r = HttpReceiver()
    yield r
    r.stop()


@pytest.fixture
def emitter(anvil, cluster):
    return Emitter(anvil)


def caught_up(db, node: str, block: int) -> bool:
    """The worker has committed every block up to `block` for `node`."""
    row = db.execute("SELECT latest_block FROM eventeum.node_state WHERE node = %s", (node,)).fetchone()
    return bool(row and row[0] is not None and row[0] >= block)


def wait_caught_up(db, node: str, block: int, timeout: float = 30):
    wait_until(lambda: caught_up(db, node, block), timeout=timeout, what=f"{node} to reach block {block}")
