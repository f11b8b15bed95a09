"""Real components for the end-to-end tests and the demo: a private PostgreSQL
cluster with eventeum preloaded, an anvil node, and the test contract.

Nothing here is mocked: the cluster is a real PostgreSQL (Debian's 15, or 17
or 18 built by scripts/build-postgres; PG_CONFIG picks it) running the
installed extension, anvil is a real node, and transactions are really mined.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
from Crypto.Hash import keccak

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
# The server under test: PG_CONFIG (scripts/test sets it per version), else Debian's 15.
PG_CONFIG = os.environ.get("PG_CONFIG") or "/usr/lib/postgresql/15/bin/pg_config"
PGBIN = Path(subprocess.check_output([PG_CONFIG, "--bindir"], text=True).strip())
PG_MAJOR = int(subprocess.check_output([PG_CONFIG, "--version"], text=True).split()[1].split(".")[0])
ARTIFACT = ROOT / "e2e" / "contracts" / "EventEmitter.json"
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

    def stop(self, mode: str = "fast", missing_ok: bool = False, timeout: int = 60) -> None:
        if missing_ok and not (self.data / "postmaster.pid").exists():
            return
        as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", str(timeout), "stop"],
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
    """A JSON-RPC relay in front of anvil that behaves like a hosted provider.
    Every answer that is not a refusal comes from anvil. What it plays:

    - `max_range`: refuses eth_getLogs over more than this many blocks;
    - `rate_limited`: refuses this fraction of requests for a rate limit, in
      turn as HTTP 429 with `Retry-After: 1` and as JSON-RPC -32005 (Infura's);
    - `slow`: delays this fraction of answers by `slow_seconds`;
    - `huge_logs_over`: answers eth_getLogs over more blocks than this with
      `huge_bytes` of JSON, streamed without a content-length;
    - `lagging`: answers this fraction of eth_getLogs from a backend
      `lag_seconds` behind: the logs of blocks the proxy first reported (in an
      eth_blockNumber answer) less than that ago are left out, and asked by
      block hash it does not know those blocks;
    - `rewrite(request, reply) -> reply`: any other change to an answer (a
      reply given as bytes is sent as it is);
    - `basic_auth`: (user, password) every request must carry, else HTTP 401;
    - stop() and start(): an outage.

    It records when each request came (`arrivals`) and counts calls per method."""

    def __init__(self, upstream: str, max_range: int | None = None):
        self.upstream = upstream
        self.max_range = max_range
        self.rate_limited = 0.0
        self.slow = 0.0
        self.slow_seconds = 0.5
        self.huge_logs_over: int | None = None
        self.huge_bytes = 400 << 20
        self.lagging = 0.0
        self.lag_seconds = 2.0
        self.lagged_answers = 0
        self._first_reported: dict[int, float] = {}  # block number -> when a head answer first named it
        self.rewrite = None
        self.basic_auth: tuple[str, str] | None = None
        self.unauthorized = 0
        self.port = free_port()
        self.refused_ranges = 0
        self.refused_for_rate = 0
        self.huge_answers = 0
        self.largest_served_range = 0
        self.calls: dict[str, int] = {}  # JSON-RPC method -> calls relayed or refused
        self.arrivals: list[float] = []
        self._random = random.Random(17)
        self._lock = threading.Lock()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second."""
        times = sorted(self.arrivals)
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    def start(self) -> None:
        import http.server

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if proxy.basic_auth:
                    import base64
                    expected = "Basic " + base64.b64encode(":".join(proxy.basic_auth).encode()).decode()
                    if self.headers.get("authorization") != expected:
                        with proxy._lock:
                            proxy.unauthorized += 1
                        return self.reply(401, b'{"error": "unauthorized"}', {"www-authenticate": "Basic"})
                request = json.loads(body)
                single = not isinstance(request, list)
                with proxy._lock:
                    proxy.arrivals.append(time.monotonic())
                    for call in request if isinstance(request, list) else [request]:
                        proxy.calls[call.get("method")] = proxy.calls.get(call.get("method"), 0) + 1
                    roll = proxy._random.random()
                    slow = proxy._random.random() < proxy.slow
                    lag = proxy._random.random() < proxy.lagging
                if roll < proxy.rate_limited:
                    with proxy._lock:
                        proxy.refused_for_rate += 1
                        as_http = proxy.refused_for_rate % 2 == 1
                    if as_http:
                        return self.reply(429, b'{"message": "Too Many Requests"}', {"retry-after": "1"})
                    error = {"code": -32005, "message": "project ID request rate exceeded"}
                    reply = [{"jsonrpc": "2.0", "id": c.get("id"), "error": error}
                             for c in request] if not single else {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
                    return self.reply(200, json.dumps(reply).encode())
                if slow:
                    time.sleep(proxy.slow_seconds)
                if single and proxy._huge(request):
                    return self.stream_huge(request)
                refused = proxy._refuse(request) if single else None
                if refused:
                    return self.reply(200, json.dumps(refused).encode())
                upstream = urllib.request.Request(proxy.upstream, body, {"content-type": "application/json"})
                with urllib.request.urlopen(upstream, timeout=30) as response:
                    reply = response.read()
                if single and request.get("method") == "eth_blockNumber":
                    proxy._reported(reply)
                if lag and single and request.get("method") == "eth_getLogs":
                    reply = proxy._lag(request, json.loads(reply))
                if proxy.rewrite and single:
                    reply = proxy.rewrite(request, json.loads(reply))
                    reply = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.reply(200, reply)

            def stream_huge(self, request):
                """`huge_bytes` of valid-looking logs with no content-length
                (HTTP/1.0: the body ends when the connection does), so its
                size is only known by reading it."""
                with proxy._lock:
                    proxy.huge_answers += 1
                log = json.dumps({"address": "0x" + "11" * 20, "topics": ["0x" + "22" * 32],
                                  "data": "0x" + "33" * 512, "blockNumber": "0x1",
                                  "blockHash": "0x" + "44" * 32, "transactionHash": "0x" + "55" * 32,
                                  "transactionIndex": "0x0", "logIndex": "0x0", "removed": False}).encode()
                chunk = b",".join([log] * 1000) + b","
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                try:
                    self.wfile.write(b'{"jsonrpc":"2.0","id":%d,"result":[' % request.get("id", 0))
                    for _ in range(proxy.huge_bytes // len(chunk)):
                        self.wfile.write(chunk)
                    self.wfile.write(log + b"]}")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader stopped at its cap

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        http.server.ThreadingHTTPServer.daemon_threads = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Takes the node down: connections are refused until start()."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _reported(self, reply: bytes) -> None:
        head = int(json.loads(reply).get("result", "0x0"), 16)
        with self._lock:
            newest = max(self._first_reported, default=head - 1)
            for number in range(newest + 1, head + 1):
                self._first_reported[number] = time.monotonic()

    def _unknown_to_the_lagging_backend(self, number: int) -> bool:
        return time.monotonic() - self._first_reported.get(number, 0.0) < self.lag_seconds

    def _lag(self, request, reply) -> bytes:
        """The answer of a backend `lag_seconds` behind."""
        if "result" not in reply:
            return json.dumps(reply).encode()
        query = request["params"][0]
        if "blockHash" in query:
            block = self._upstream("eth_getBlockByHash", query["blockHash"], False)["result"]
            if block and self._unknown_to_the_lagging_backend(int(block["number"], 16)):
                self.lagged_answers += 1
                return json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                   "error": {"code": -32000, "message": "unknown block"}}).encode()
            return json.dumps(reply).encode()
        kept = [log for log in reply["result"]
                if not self._unknown_to_the_lagging_backend(int(log["blockNumber"], 16))]
        if len(kept) < len(reply["result"]):
            self.lagged_answers += 1
        return json.dumps({**reply, "result": kept}).encode()

    def _upstream(self, method, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.upstream, body, {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def _span(self, request) -> int:
        query = request["params"][0]
        if "blockHash" in query:
            return 1
        return int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1

    def _huge(self, request) -> bool:
        return (request.get("method") == "eth_getLogs" and self.huge_logs_over is not None
                and self._span(request) > self.huge_logs_over)

    def _refuse(self, request):
        if request.get("method") != "eth_getLogs" or self.max_range is None:
            return None
        span = self._span(request)
        if span > self.max_range:
            self.refused_ranges += 1
            return {"jsonrpc": "2.0", "id": request["id"],
                    "error": {"code": -32005, "message": f"query exceeds max block range {self.max_range}"}}
        self.largest_served_range = max(self.largest_served_range, span)
        return None


class WsProxy:
    """A relay in front of a node's websocket that can go silent: while
    `silent`, it drops the node's eth_subscription notifications and passes
    everything else, so calls are still answered but no head is pushed."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.silent = False
        self.dropped = 0
        self._loop = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        import asyncio

        ready = threading.Event()

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def frames(reader, writer):
            """Server to client: the upgrade answer as it is, then frame by frame."""
            try:
                writer.write(await reader.readuntil(b"\r\n\r\n"))
                while True:
                    head = await reader.readexactly(2)
                    size = head[1] & 0x7F
                    extended = b""
                    if size == 126:
                        extended = await reader.readexactly(2)
                        size = int.from_bytes(extended, "big")
                    elif size == 127:
                        extended = await reader.readexactly(8)
                        size = int.from_bytes(extended, "big")
                    payload = await reader.readexactly(size)
                    if self.silent and head[0] & 0x0F == 1 and b'"eth_subscription"' in payload:
                        self.dropped += 1
                        continue
                    writer.write(head + extended + payload)
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(client_reader, client_writer):
            try:
                node_reader, node_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, node_writer), frames(node_reader, client_writer))

        async def serve():
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await server.serve_forever()

        def run():
            loop = self._loop = asyncio.new_event_loop()
            loop.create_task(serve())
            loop.run_forever()
            loop.run_until_complete(asyncio.sleep(0.1))  # let the transports close
            loop.close()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    def stop(self) -> None:
        import asyncio

        async def shutdown():
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            asyncio.get_running_loop().stop()

        if self._loop:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            self._loop = None


class HttpReceiver:
    """An HTTP endpoint that records every POST and answers with `status`
    (changeable while it runs), like a real webhook consumer."""

    def __init__(self):
        import http.server
        import threading

        self.port = free_port()
        self.status = 200
        self.fail_once_at: int | None = None  # the request number answered 503, once
        self.requests: list[dict] = []  # {"path", "headers", "body", "raw", "status"}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 503 if len(receiver.requests) == receiver.fail_once_at else receiver.status
                receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": json.loads(body), "raw": body.decode(), "status": status})
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
