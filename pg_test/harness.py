"""Real components for the end-to-end tests and the demo: a private PostgreSQL
cluster with eventeum preloaded, an anvil node, and the test contract.

Nothing here is mocked: the cluster is Debian's PostgreSQL 15 running the
installed extension, anvil is a real node, and transactions are really mined.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg
from Crypto.Hash import keccak

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
PGBIN = Path("/usr/lib/postgresql/15/bin")
ARTIFACT = ROOT / "pg_test" / "contracts" / "EventEmitter.json"
# anvil's first dev account; anvil signs eth_sendTransaction for it.
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def to_checksum(address: str) -> str:
    """EIP-55, computed independently of the extension."""
    hex_addr = address.lower().removeprefix("0x")
    digest = keccak256(hex_addr.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, **kwargs)


class Cluster:
    """A private cluster, run as the postgres user, with eventeum preloaded."""

    def __init__(self, base: Path, port: int, database: str = "eventeum"):
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.log = base / "postgres.log"
        self.port = port
        self.database = database

    def init(self, extra_conf: dict[str, str] | None = None) -> None:
        if self.base.exists():
            self.stop(missing_ok=True)
            shutil.rmtree(self.base)
        self.socket_dir.mkdir(parents=True)
        shutil.chown(self.base, "postgres", "postgres")
        shutil.chown(self.socket_dir, "postgres", "postgres")
        as_postgres([str(PGBIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                     "--no-sync"], stdout=subprocess.DEVNULL)
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "shared_preload_libraries": "'eventeum'",
            "eventeum.database": f"'{self.database}'",
            "fsync": "off",
            "log_min_messages": "log",
        }
        conf.update(extra_conf or {})
        with open(self.data / "postgresql.conf", "a") as f:
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def start(self) -> None:
        as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                     "start"], stdout=subprocess.DEVNULL)

    def stop(self, mode: str = "fast", missing_ok: bool = False) -> None:
        if missing_ok and not (self.data / "postmaster.pid").exists():
            return
        as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def conninfo(self, dbname: str | None = None) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname or self.database}"

    def connect(self, dbname: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def connect_when_ready(self, timeout: float = 60) -> psycopg.Connection:
        """Connects, waiting out crash recovery or a restart."""
        def attempt():
            try:
                return self.connect()
            except psycopg.OperationalError:
                return None
        return wait_until(attempt, timeout=timeout, interval=0.2, what="the server to accept connections")

    def create_database(self) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION eventeum")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Anvil:
    """A real anvil node on a loopback port; every transaction is mined at once."""

    def __init__(self, port: int, log: Path):
        self.port = port
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.process = subprocess.Popen(
            [str(TOOLS / "bin" / "anvil"), "--port", str(self.port), "--host", "127.0.0.1", *extra],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, timeout=30, what="anvil to answer")

    def _answers(self) -> bool:
        try:
            self.rpc("eth_blockNumber")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def rpc(self, method: str, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.url, body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.load(response)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def submit(self, to: str | None, data: str = "0x", value: int = 0, sender: str = DEPLOYER) -> str:
        """Sends a transaction (the gas is given, so a reverting one is mined too); returns its hash."""
        tx = {"from": sender, "data": data, "gas": hex(15_000_000), "value": hex(value)}
        if to:
            tx["to"] = to
        return self.rpc("eth_sendTransaction", tx)

    def send(self, to: str | None, data: str = "0x", value: int = 0, sender: str = DEPLOYER,
             expect_success: bool = True) -> dict:
        tx_hash = self.submit(to, data, value, sender)
        receipt = wait_until(lambda: self.rpc("eth_getTransactionReceipt", tx_hash), what="receipt")
        assert (receipt["status"] == "0x1") == expect_success, receipt
        return receipt


class Emitter:
    """A deployed test contract: EventEmitter unless another artifact is given."""

    def __init__(self, anvil: Anvil, sender: str = DEPLOYER, artifact: Path = ARTIFACT):
        self.anvil = anvil
        self.artifact = json.loads(artifact.read_text())
        self.deployment = anvil.send(None, self.artifact["bytecode"], sender=sender)
        self.address = to_checksum(self.deployment["contractAddress"])

    def signature(self, event: str) -> str:
        """The human-readable signature of `event`, from the ABI."""
        item = next(i for i in self.artifact["abi"] if i["type"] == "event" and i["name"] == event)
        params = ", ".join(f"{p['type']}{' indexed' if p['indexed'] else ''} {p['name']}" for p in item["inputs"])
        return f"{event}({params})"

    def events(self) -> list[str]:
        return [i["name"] for i in self.artifact["abi"] if i["type"] == "event"]

    def call(self, function: str, *args, expect_success: bool = True) -> dict:
        return self.anvil.send(self.address, self.calldata(function, *args), expect_success=expect_success)

    def calldata(self, function: str, *args) -> str:
        """ABI-encodes a call; arguments are uint256, address or (one, last) string."""
        selector = self.artifact["methodIdentifiers"][function]
        if args and isinstance(args[-1], bytes):  # a trailing dynamic string
            head = "".join(_word(a) for a in args[:-1]) + _word(32 * len(args))
            text = args[-1]
            tail = _word(len(text)) + text.hex().ljust((len(text) + 31) // 32 * 64, "0")
            return "0x" + selector + head + tail
        return "0x" + selector + "".join(_word(a) for a in args)


def _word(value) -> str:
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


class RpcProxy:
    """A JSON-RPC relay in front of anvil with a real provider's limits: it
    refuses eth_getLogs over more than `max_range` blocks, as hosted nodes do,
    and it can be taken down and brought back to play a node outage. Every
    answer it gives comes from anvil."""

    def __init__(self, upstream: str, max_range: int | None = None):
        self.upstream = upstream
        self.max_range = max_range
        self.port = free_port()
        self.refused_ranges = 0
        self.largest_served_range = 0
        self.calls: dict[str, int] = {}  # JSON-RPC method -> calls relayed or refused
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import http.server
        import threading

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                request = json.loads(body)
                for call in request if isinstance(request, list) else [request]:
                    proxy.calls[call.get("method")] = proxy.calls.get(call.get("method"), 0) + 1
                refused = None if isinstance(request, list) else proxy._refuse(request)
                if refused:
                    reply = json.dumps(refused).encode()
                else:
                    upstream = urllib.request.Request(proxy.upstream, body, {"content-type": "application/json"})
                    with urllib.request.urlopen(upstream, timeout=30) as response:
                        reply = response.read()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Takes the node down: connections are refused until start()."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _refuse(self, request):
        if request.get("method") != "eth_getLogs" or self.max_range is None:
            return None
        query = request["params"][0]
        span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
        if span > self.max_range:
            self.refused_ranges += 1
            return {"jsonrpc": "2.0", "id": request["id"],
                    "error": {"code": -32005, "message": f"query exceeds max block range {self.max_range}"}}
        self.largest_served_range = max(self.largest_served_range, span)
        return None


class HttpReceiver:
    """An HTTP endpoint that records every POST and answers with `status`
    (changeable while it runs), like a real webhook consumer."""

    def __init__(self):
        import http.server
        import threading

        self.port = free_port()
        self.status = 200
        self.fail_once_at: int | None = None  # the request number answered 503, once
        self.requests: list[dict] = []  # {"path", "headers", "body", "status"}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 503 if len(receiver.requests) == receiver.fail_once_at else receiver.status
                receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": json.loads(body), "status": status})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self) -> list[dict]:
        return [r for r in self.requests if 200 <= r["status"] < 300]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def tansu_binary() -> str:
    found = shutil.which("tansu") or str(Path.home() / ".cargo" / "bin" / "tansu")
    assert os.access(found, os.X_OK), "tansu is missing: run scripts/setup"
    return found


class Tansu:
    """tansu with in-memory storage on a loopback port: a restart loses every topic."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.log = log
        self.process = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        url = f"tcp://{self.address}"
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        import socket

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout=30, what="tansu to listen")

    def freeze(self):
        """An outage: the broker stops answering but keeps its topics (a
        restart of the memory engine would drop them and still ack writes)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
