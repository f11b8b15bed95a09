"""Fixtures: one real cluster with eventeum preloaded and one anvil per test session."""

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import PG_CONFIG, PG_MAJOR, Anvil, Cluster, Emitter, HttpReceiver, free_port, wait_until  # noqa: E402

POLL_MS = 100


def pytest_report_header(config):
    return f"PostgreSQL {PG_MAJOR}: {PG_CONFIG}"


def pytest_configure(config):
    config.addinivalue_line("markers", "kills(*signals): the test kills a server process with these signals on purpose")


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
            # The server is the version under test (PG_CONFIG), not whatever answers.
            assert int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000 == PG_MAJOR
            # Two nodes on the same chain: one confirms at once, one waits 3 blocks.
            conn.execute("SELECT eventeum.add_node('default', %s, %s)",
                         (anvil.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 0}}'))
            conn.execute("SELECT eventeum.add_node('deep', %s, %s)",
                         (anvil.url, f'{{"pollingInterval": {POLL_MS}, "numBlocksToWait": 3}}'))
            # Wait for the first contact, so that tests start from a followed node.
            for node in ("default", "deep"):
                wait_caught_up(conn, node, anvil.block_number(), timeout=60)
        found = crashes(c.log_text(), set())
        assert not found, "the server log shows a crash at start:\n" + "\n".join(found[:20])
        yield c
    finally:
        c.stop(missing_ok=True)


# What the server log shows when something crashed: a Rust panic (eventeum's
# hook prints "panicked at" for every thread), a Postgres PANIC, or a server
# process that died of a signal or an exception. A test that kills a process
# on purpose says so with @pytest.mark.kills(signal_number).
CRASH = re.compile(r"panicked at|PANIC:|terminated by signal (\d+)|terminated by exception")


def crashes(text: str, expected_signals: set[int]) -> list[str]:
    found = []
    for line in text.splitlines():
        m = CRASH.search(line)
        if m and not (m.group(1) and int(m.group(1)) in expected_signals):
            found.append(line)
    return found


@pytest.fixture(autouse=True)
def no_crash_in_the_server_log(request):
    """Fails the test when the server log shows a panic or a crash while it ran."""
    if "cluster" not in request.fixturenames:
        yield
        return
    c = request.getfixturevalue("cluster")
    start = c.log.stat().st_size if c.log.exists() else 0
    yield
    expected = {s for m in request.node.iter_markers("kills") for s in m.args}
    with open(c.log, "rb") as f:
        f.seek(start)
        new = f.read().decode(errors="replace")
    found = crashes(new, expected)
    assert not found, "the server log shows a crash:\n" + "\n".join(found[:20])


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


def wait_backfilled(db, filter_id: str, timeout: float = 60):
    """The filter's backfill (from where it starts to where live following
    took it over) is done."""
    wait_until(lambda: db.execute("SELECT done FROM eventeum.backfill_status WHERE filter_id = %s",
                                  (filter_id,)).fetchone() == (True,), timeout=timeout,
               what=f"the backfill of {filter_id}")
