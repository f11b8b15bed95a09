"""The docs run: every ```sql block of README.md and docs/REFERENCE.md is
executed, in order, against a real cluster with the worker preloaded, one
fresh cluster per document, so that the docs cannot drift from the code.

A statement followed by a comment that starts `-- ERROR:` and ends with a
SQLSTATE in parentheses, `(22023)`, must fail with that SQLSTATE; every other
statement must succeed. Nodes in the examples point at hosts that do not
answer here (127.0.0.1:8545, *.example): the worker reports them DOWN, and
the suite's crash check holds it to that."""

import re
from pathlib import Path

import psycopg
import pytest

from conftest import crashes
from harness import Cluster, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/REFERENCE.md"]
FENCE = re.compile(r"^(\s*)```sql\s*$")
EXPECTED_ERROR = re.compile(r"\(([0-9A-Z]{5})\)\s*$")


def sql_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each ```sql block, indentation removed."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start, body = len(m.group(1)), i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i].lstrip())
            i += 1
        blocks.append((start + 1, "\n".join(body)))
        i += 1
    return blocks


def statements(block: str) -> list[tuple[str, str | None]]:
    """The statements of a block, each with the SQLSTATE its trailing
    `-- ERROR: … (XXXXX)` comment expects, if any. Splits at semicolons
    outside quotes, identifiers and comments."""
    parts, current, i, n = [], [], 0, len(block)
    while i < n:
        c = block[i]
        if c == "'" or c == '"':
            end = i + 1
            while end < n:
                if block[end] == c:
                    if end + 1 < n and block[end + 1] == c:
                        end += 2
                        continue
                    break
                end += 1
            current.append(block[i:end + 1])
            i = end + 1
        elif block.startswith("--", i):
            end = block.find("\n", i)
            end = n if end < 0 else end
            current.append(block[i:end])
            i = end
        elif c == ";":
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    parts.append("".join(current))
    # A part is the comments after the previous statement, then a statement.
    result = []
    for k, part in enumerate(parts):
        code = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
        if not code:
            continue
        expected = None
        if k + 1 < len(parts):
            trailing = []
            for line in parts[k + 1].splitlines():
                stripped = line.strip()
                if stripped and not stripped.startswith("--"):
                    break
                trailing.append(stripped)
            comment = "\n".join(trailing)
            if "-- ERROR:" in comment:
                for line in trailing:
                    m = EXPECTED_ERROR.search(line)
                    if m:
                        expected = m.group(1)
                        break
                assert expected, f"an -- ERROR: comment without a (SQLSTATE) after: {code}"
        result.append((part.strip(), expected))
    return result


@pytest.fixture(scope="module")
def docs_cluster(workdir):
    clusters = []

    def fresh(name: str) -> Cluster:
        c = Cluster(workdir / f"docs-{name}", free_port())
        c.init()
        c.start()
        clusters.append(c)
        with c.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{c.database}"')
        return c

    yield fresh
    for c in clusters:
        found = crashes(c.log_text(), set())
        c.stop(missing_ok=True)
        assert not found, "the docs' cluster log shows a crash:\n" + "\n".join(found[:20])


def test_statement_splitting_and_expected_errors():
    block = """SELECT 'a;b', "x;y" FROM t;  -- one; comment
SELECT eventeum.add_node('imds', 'http://169.254.169.254/');
-- ERROR:  node url ...: 169.254.169.254 is a link-local (cloud metadata) address,
--         which eventeum.allowed_hosts does not allow   (42501)
SELECT 1;"""
    got = statements(block)
    assert [e for _, e in got] == [None, "42501", None]
    assert got[0][0].startswith("SELECT 'a;b'")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_sql_block_runs(docs_cluster, document):
    path = ROOT / document
    blocks = sql_blocks(path)
    assert blocks, f"{document} has no ```sql block"
    cluster = docs_cluster(Path(document).stem.lower())
    ran = 0
    with cluster.connect() as db:
        if document != "README.md":  # README's quickstart creates it
            db.execute("CREATE EXTENSION eventeum")
        for line, block in blocks:
            for statement, expected in statements(block):
                where = f"{document}, the block at line {line}: {statement}"
                if expected is None:
                    try:
                        db.execute(statement)
                    except psycopg.Error as e:
                        pytest.fail(f"{where}\nfailed with {e.sqlstate}: {e}")
                else:
                    with pytest.raises(psycopg.Error) as failure:
                        db.execute(statement)
                    assert failure.value.sqlstate == expected, f"{where}\n{failure.value}"
                ran += 1
        # The worker took the configuration the docs made: it follows their nodes.
        nodes = db.execute("SELECT count(*) FROM eventeum.nodes").fetchone()[0]
        assert nodes > 0
        wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.node_state").fetchone()[0] >= nodes,
                   timeout=60, what="the worker to take up the docs' nodes")
    assert ran >= 5
