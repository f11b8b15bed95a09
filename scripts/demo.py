"""The demo behind scripts/demo; run that instead of this file."""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import DEPLOYER, Anvil, Cluster, Emitter, wait_until  # noqa: E402

BASE = Path("/tmp/eventeum-demo")
PG_PORT = 54329
ANVIL_PORT = 18545
cluster = Cluster(BASE / "pg", PG_PORT)
anvil = Anvil(ANVIL_PORT, BASE / "anvil.log")
ANVIL_PID = BASE / "anvil.pid"


def stop() -> None:
    cluster.stop(missing_ok=True)
    if ANVIL_PID.exists():
        try:
            os.killpg(int(ANVIL_PID.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        ANVIL_PID.unlink()
    print("[demo] stopped PostgreSQL and anvil")


def main() -> None:
    stop()
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o755)
    print(f"[demo] starting anvil on {anvil.url}")
    anvil.start()
    ANVIL_PID.write_text(str(anvil.process.pid))
    print(f"[demo] starting PostgreSQL 15 on port {PG_PORT} with shared_preload_libraries = 'eventeum'")
    cluster.init()
    cluster.start()
    cluster.create_database()
    db = cluster.connect()

    emitter = Emitter(anvil)
    print(f"[demo] deployed EventEmitter at {emitter.address}")
    db.execute("SELECT eventeum.add_node('default', %s, %s)",
               (anvil.url, json.dumps({"pollingInterval": 200, "numBlocksToWait": 2})))
    transfers = db.execute("SELECT eventeum.add_filter(%s, %s, id => 'transfers')",
                           (emitter.address, "Transfer(address indexed from, address indexed to, uint256 value)")
                           ).fetchone()[0]
    db.execute("""SELECT eventeum.set_view('transfers', '{"index": ["to"]}')""")
    pings = db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps({
        "id": "pings",
        "contractAddress": emitter.address,
        "eventSpecification": {
            "eventName": "Ping",
            "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}],
            "nonIndexedParameterDefinitions": [{"position": 1, "type": "UINT256"}],
        },
        "correlationIdStrategy": {"type": "INDEXED_PARAMETER", "parameterIndex": 0},
    }),)).fetchone()[0]
    print(f"[demo] node 'default' (numBlocksToWait 2); filters {transfers!r} (Transfer) and {pings!r} (Ping)")

    head = anvil.block_number()
    wait_until(lambda: db.execute("SELECT latest_block >= %s FROM eventeum.node_state WHERE node = 'default'",
                                  (head,)).fetchone(), what="the worker to follow the node")
    listener = cluster.connect()
    listener.execute("LISTEN eventeum_contract_events")
    print("[demo] LISTEN eventeum_contract_events; emitting 2 transfers and a burst of 3 pings")
    def follow(receipt):
        # Let the worker see each block before the next, as on a live chain.
        block = int(receipt["blockNumber"], 16)
        wait_until(lambda: db.execute("SELECT latest_block >= %s FROM eventeum.node_state WHERE node = 'default'",
                                      (block,)).fetchone()[0], what=f"the worker to reach block {block}")

    follow(emitter.call("transfer(address,uint256)", "0x000000000000000000000000000000000000dEaD", 10**18))
    follow(emitter.call("transfer(address,uint256)", DEPLOYER, 42))
    follow(emitter.call("burst(uint256)", 3))
    print("[demo] mining 2 more blocks so that every event confirms")
    for _ in range(2):
        anvil.mine(1)
        follow({"blockNumber": hex(anvil.block_number())})

    received = []
    for note in listener.notifies(timeout=30, stop_after=10):
        message = json.loads(note.payload)
        d = message["details"]
        received.append(message)
        params = [p["value"] for p in d["indexedParameters"] + d["nonIndexedParameters"]]
        print(f"  NOTIFY {d['status']:<11} {d['name']:<8} block {d['blockNumber']:<3} log {d['logIndex']} {params}")
    print("[demo] one full NOTIFY payload:")
    print(json.dumps(received[-1], indent=2))

    wait_until(lambda: db.execute("SELECT count(*) FROM eventeum.contract_events WHERE status = 'CONFIRMED'"
                                  ).fetchone()[0] == 5, what="5 confirmed events")
    print("[demo] SELECT name, block_number, log_index, status, non_indexed_parameters FROM eventeum.contract_events:")
    for row in db.execute("SELECT name, block_number, log_index, status, non_indexed_parameters::text "
                          "FROM eventeum.contract_events ORDER BY block_number, log_index"):
        print("  ", " | ".join(str(c) for c in row))
    query = 'SELECT "from", "to", value, block_number, status FROM eventeum.transfers ORDER BY block_number'
    print(f"[demo] each filter has a typed view; {query}:")
    for row in db.execute(query):
        print("  ", " | ".join(str(c) for c in row))
    print(f"""
[demo] running. Connect with:
  psql "{cluster.conninfo()}"
then try:
  LISTEN eventeum_contract_events;
  SELECT * FROM eventeum.transfers WHERE "to" = '0x...' ORDER BY block_number DESC LIMIT 50;
  SELECT * FROM eventeum.list_filters();
anvil is at {anvil.url}. Stop everything with: scripts/demo stop""")


if __name__ == "__main__":
    stop() if sys.argv[1:] == ["stop"] else main()
