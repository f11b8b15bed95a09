"""Dynamic contract sets against contracts no one here wrote: Uniswap V2's
factory, pairs and test token, as npm's @uniswap/v2-core 1.0.1 ships them
(e2e/contracts/uniswap-v2/README.md). A factory filter on PairCreated
feeds a set that Swap, Sync and Mint filters follow; applications add
addresses with a plain INSERT; a Transfer filter follows any emitter whose
`to` is in a 10,000-address set."""

import json
import os
import secrets
import subprocess
import uuid

import psycopg
import pytest
from conftest import wait_caught_up
from harness import DEPLOYER, PGBIN, ROOT, keccak256, to_checksum, wait_until

UNISWAP = ROOT / "e2e" / "contracts" / "uniswap-v2"
SUPPLY = 10**24
LIQUIDITY = 10**18
SWAP_IN = 10**16
REORG_WAIT = 2  # numBlocksToWaitBeforeInvalidating's default


def word(value) -> str:
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


class Contract:
    """A deployed artifact (or one at `address`); calls take uint256 and address arguments, and a
    trailing b"" for an empty `bytes`."""

    def __init__(self, anvil, name: str, *constructor, address: str | None = None):
        self.anvil = anvil
        self.artifact = artifact(name)
        if address is None:
            receipt = anvil.send(None, self.artifact["bytecode"] + "".join(word(a) for a in constructor))
            address = receipt["contractAddress"]
            self.block = int(receipt["blockNumber"], 16)
        self.address = to_checksum(address)

    def signature(self, event: str) -> str:
        item = next(i for i in self.artifact["abi"] if i["type"] == "event" and i["name"] == event)
        params = ", ".join(f"{p['type']}{' indexed' if p['indexed'] else ''} {p['name']}" for p in item["inputs"])
        return f"{event}({params})"

    def call(self, function: str, *args) -> dict:
        selector = keccak256(function.encode())[:4].hex()
        head, tail = [], []
        for arg in args:
            if isinstance(arg, bytes):  # an empty `bytes`, the only dynamic argument used
                assert arg == b""
                head.append(word(32 * len(args)))
                tail.append(word(0))
            else:
                head.append(word(arg))
        return self.anvil.send(self.address, "0x" + selector + "".join(head + tail))


def block_of(receipt) -> int:
    return int(receipt["blockNumber"], 16)


def create_pair(anvil, factory):
    """Two new tokens and their pair; returns (pair, tokens sorted as the pair sorts them, receipt)."""
    a, b = Contract(anvil, "ERC20", SUPPLY), Contract(anvil, "ERC20", SUPPLY)
    receipt = factory.call("createPair(address,address)", a.address, b.address)
    created = next(log for log in receipt["logs"] if log["address"].lower() == factory.address.lower())
    pair = Contract(anvil, "UniswapV2Pair", address="0x" + created["data"][2 + 24:2 + 64])
    tokens = sorted([a, b], key=lambda t: t.address.lower())
    return pair, tokens, receipt


def add_liquidity(pair, tokens):
    for token in tokens:
        token.call("transfer(address,uint256)", pair.address, LIQUIDITY)
    return pair.call("mint(address)", DEPLOYER)


def swap(pair, tokens):
    """Sells SWAP_IN of token0 for what the pool gives (reserves are equal)."""
    tokens[0].call("transfer(address,uint256)", pair.address, SWAP_IN)
    out = SWAP_IN * 997 * LIQUIDITY // (LIQUIDITY * 1000 + SWAP_IN * 997)
    return pair.call("swap(uint256,uint256,address,bytes)", 0, out, DEPLOYER, b"")


def events(db, filter_id):
    """(emitter, block, status) of the filter's rows, in chain order."""
    return db.execute("""SELECT address, block_number, status::text FROM eventeum.contract_events
                          WHERE filter_id = %s ORDER BY block_number, log_index""", (filter_id,)).fetchall()


def members(db, set_name):
    return db.execute("""SELECT address, start_block, source_filter FROM eventeum.address_set_members
                          WHERE set_name = %s ORDER BY start_block, address""", (set_name,)).fetchall()


def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def factory(anvil, cluster):
    factory = Contract(anvil, "UniswapV2Factory", DEPLOYER)
    anvil.mine(3)  # buried below any reorg a test makes
    return factory


def artifact(name: str) -> dict:
    return json.loads((UNISWAP / f"{name}.json").read_text())


def add_pair_filters(db, factory, pairs_set, pc_start):
    """PairCreated on the factory feeding `pairs_set`, which Sync, Swap and Mint follow.

    In one transaction: a pair that the factory's backfill finds is then
    caught up on for all three. (Committed one by one, a pair found before
    the last filter commits is caught up on without it, and that filter,
    live from its commit, never sees the pair's earlier events.)"""
    ids = {"pc": f"pc-{pairs_set}"}
    with db.transaction():
        db.execute("SELECT eventeum.add_filter(%s, %s, start_block => %s, id => %s)",
                   (factory.address, factory.signature("PairCreated"), pc_start, ids["pc"]))
        for event in ("Sync", "Swap", "Mint"):
            ids[event] = f"{event.lower()}-{pairs_set}"
            spec = filter_body(artifact("UniswapV2Pair"), event)
            spec.update({"id": ids[event], "addressSet": pairs_set,
                         "factory": {"filter": ids["pc"], "parameter": "pair"}})
            db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(spec),))
    return ids


def filter_body(artifact, event):
    """Eventeum's REST body for `event`, from the ABI (with the parameters' names)."""
    item = next(i for i in artifact["abi"] if i["type"] == "event" and i["name"] == event)
    indexed, non_indexed = [], []
    for position, p in enumerate(item["inputs"]):
        (indexed if p["indexed"] else non_indexed).append(
            {"position": position, "type": p["type"].upper(), "name": p["name"]})
    return {"eventSpecification": {"eventName": event, "indexedParameterDefinitions": indexed,
                                   "nonIndexedParameterDefinitions": non_indexed}}


def test_a_factory_feeds_its_pairs_to_a_set_in_backfill_and_live(db, anvil, factory):
    pairs_set = f"pairs-{uid()}"
    # A pair created, funded and traded before anything is registered.
    early, early_tokens, early_created = create_pair(anvil, factory)
    add_liquidity(early, early_tokens)
    swap(early, early_tokens)
    anvil.mine(2)

    db.execute("SELECT eventeum.create_address_set(%s)", (pairs_set,))
    ids = add_pair_filters(db, factory, pairs_set, max(0, factory.block - 5))  # from below the deployment

    # One created after registration, funded in the same block range.
    late, late_tokens, late_created = create_pair(anvil, factory)
    add_liquidity(late, late_tokens)
    last = swap(late, late_tokens)
    wait_caught_up(db, "default", block_of(last))

    expected_members = sorted([(early.address.lower(), block_of(early_created), ids["pc"]),
                               (late.address.lower(), block_of(late_created), ids["pc"])], key=lambda m: m[1])
    wait_until(lambda: members(db, pairs_set) == expected_members, what="both pairs in the set")
    # The early pair's events come by its own catch-up (it joined the set after
    # its blocks), which may still run when the late pair's are in: wait for all.
    wait_until(lambda: all(len(events(db, ids[event])) >= n for event, n in (("Sync", 4), ("Mint", 2), ("Swap", 2))),
               timeout=60, what="the pairs' Sync, Mint and Swap events")
    # Each pair: Sync on mint and on swap, one Mint, one Swap; exact, so duplicates show.
    for pair in (early, late):
        assert [(a, s) for a, _, s in events(db, ids["Sync"]) if a == pair.address] == [
            (pair.address, "CONFIRMED")] * 2
        assert [(a, s) for a, _, s in events(db, ids["Mint"]) if a == pair.address] == [(pair.address, "CONFIRMED")]
        assert [(a, s) for a, _, s in events(db, ids["Swap"]) if a == pair.address] == [(pair.address, "CONFIRMED")]
    assert len(events(db, ids["Sync"])) == 4 and len(events(db, ids["Swap"])) == 2
    assert [b for _, b, _ in events(db, ids["pc"])] == [block_of(early_created), block_of(late_created)]

    listed = {f["id"]: f for (f,) in db.execute("SELECT eventeum.list_filters()")}
    assert listed[ids["Swap"]]["addressSet"] == pairs_set
    assert listed[ids["Swap"]]["factory"] == {"filter": ids["pc"], "parameter": "pair"}
    assert "contractAddress" not in listed[ids["Swap"]]
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("SELECT eventeum.remove_filter(%s)", (ids["pc"],))
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("SELECT eventeum.drop_address_set(%s)", (pairs_set,))


def test_a_fork_that_drops_pair_created_takes_the_pair_out_of_the_set(db, anvil, factory):
    pairs_set = f"pairs-{uid()}"
    db.execute("SELECT eventeum.create_address_set(%s)", (pairs_set,))
    ids = add_pair_filters(db, factory, pairs_set, None)
    pair, tokens, receipt = create_pair(anvil, factory)  # the tokens are mined before the pair
    created = block_of(receipt)
    minted = add_liquidity(pair, tokens)
    wait_caught_up(db, "default", block_of(minted))
    wait_until(lambda: len(events(db, ids["Sync"])) == 1 and len(events(db, ids["Mint"])) == 1,
               what="the new pair's first events")
    assert [m[0] for m in members(db, pairs_set)] == [pair.address.lower()]

    depth = anvil.block_number() - created + 1  # drops createPair and everything after it
    anvil.rpc("anvil_reorg", depth, [])
    anvil.mine(REORG_WAIT)
    head = anvil.block_number()
    wait_until(lambda: events(db, ids["pc"]) == [(factory.address, created, "INVALIDATED")],
               what="PairCreated invalidated")
    wait_until(lambda: members(db, pairs_set) == [], what="the pair to leave the set")
    wait_caught_up(db, "default", head)
    assert [s for _, _, s in events(db, ids["Sync"])] == ["INVALIDATED"]
    assert [s for _, _, s in events(db, ids["Mint"])] == ["INVALIDATED"]


def transfer_filter(db, set_name, fid, **where):
    body = filter_body(artifact("ERC20"), "Transfer") | {"id": fid} | where
    if set_name:
        body["addressSet"] = set_name
    return db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(body),)).fetchone()[0]


def test_an_application_insert_is_followed_once_it_commits(cluster, db, anvil):
    watched = f"watched-{uid()}"
    db.execute("SELECT eventeum.create_address_set(%s)", (watched,))
    fid = transfer_filter(db, watched, f"t-{watched}")
    token = Contract(anvil, "ERC20", SUPPLY)
    before = [token.call("transfer(address,uint256)", "0x" + secrets.token_hex(20), n) for n in (1, 2)]
    insert = "INSERT INTO eventeum.address_set_members (set_name, address, start_block) VALUES (%s, %s, %s)"

    # As the application would, in its own transaction: rolled back, nothing is followed.
    with cluster.connect() as app:
        app.autocommit = False
        app.execute(insert, (watched, token.address, token.block))
        app.rollback()
    rolled_back = token.call("transfer(address,uint256)", "0x" + secrets.token_hex(20), 3)
    wait_caught_up(db, "default", block_of(rolled_back))
    anvil.mine(2)
    wait_caught_up(db, "default", anvil.block_number())
    assert events(db, fid) == []

    # Committed (mixed-case address, as applications write them): backfilled from start_block, then live.
    with cluster.connect() as app:
        with app.transaction():
            app.execute(insert, (watched, token.address, token.block))
    after = token.call("transfer(address,uint256)", "0x" + secrets.token_hex(20), 4)
    # The token's constructor minted its supply with a Transfer in the deployment block.
    expected = [(token.address, b, "CONFIRMED")
                for b in (token.block, *(block_of(r) for r in (*before, rolled_back, after)))]
    wait_until(lambda: events(db, fid) == expected, timeout=60, what="backfilled and live Transfers")
    assert members(db, watched) == [(token.address.lower(), token.block, None)]
    wait_until(lambda: db.execute("""SELECT current_block >= to_block FROM eventeum.member_backfill
                                      WHERE set_name = %s""", (watched,)).fetchone() == (True,),
               what="the member's backfill to be done")

    # Removed: no longer followed; its events stay.
    assert db.execute("SELECT eventeum.unwatch(%s, %s)", (watched, token.address)).fetchone()[0] is True
    gone = token.call("transfer(address,uint256)", "0x" + secrets.token_hex(20), 5)
    wait_caught_up(db, "default", block_of(gone))
    anvil.mine(1)
    wait_caught_up(db, "default", anvil.block_number())
    assert events(db, fid) == expected

    # watch() without start_block follows from the block the worker is at.
    assert db.execute("SELECT eventeum.watch(%s, %s)", (watched, token.address)).fetchone()[0] is True
    assert db.execute("SELECT eventeum.watch(%s, %s)", (watched, token.address)).fetchone()[0] is False
    again = token.call("transfer(address,uint256)", "0x" + secrets.token_hex(20), 6)
    wait_until(lambda: events(db, fid)[-1:] == [(token.address, block_of(again), "CONFIRMED")],
               what="the watched token's next Transfer")
    assert block_of(gone) not in [b for _, b, _ in events(db, fid)]

    # Readers read the sets; they do not change them.
    with cluster.connect() as reader:
        reader.execute("SET ROLE eventeum_reader")
        assert reader.execute("SELECT count(*) FROM eventeum.address_set_members WHERE set_name = %s",
                              (watched,)).fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(insert, (watched, "0x" + "11" * 20, None))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT eventeum.watch(%s, %s)", (watched, "0x" + "11" * 20))


def test_transfers_from_any_token_to_a_10000_address_deposit_set(cluster, db, anvil):
    deposits = f"deposits-{uid()}"
    db.execute("SELECT eventeum.create_address_set(%s)", (deposits,))
    addresses = ["0x" + secrets.token_hex(20) for _ in range(10_000)]
    with db.cursor().copy("COPY eventeum.address_set_members (set_name, address) FROM STDIN") as copy:
        for address in addresses:
            copy.write_row((deposits, address))
    fid = transfer_filter(db, None, f"t-{deposits}", contractAddress="*",
                          indexedParameterFilters=[{"position": 1, "addressSet": deposits}])
    tokens = [Contract(anvil, "ERC20", SUPPLY), Contract(anvil, "ERC20", SUPPLY)]
    anvil.mine(1)
    wait_caught_up(db, "default", anvil.block_number())
    outsider = "0x" + secrets.token_hex(20)
    expected = []
    for n, (token, to) in enumerate([(tokens[0], addresses[7]), (tokens[1], outsider), (tokens[1], addresses[9_999]),
                                     (tokens[0], outsider), (tokens[1], addresses[7])]):
        receipt = token.call("transfer(address,uint256)", to, n + 1)
        if to != outsider:
            expected.append((token.address, block_of(receipt), "CONFIRMED"))
    wait_caught_up(db, "default", anvil.block_number())
    wait_until(lambda: events(db, fid) == expected, what="the deposits' Transfers")
    assert db.execute("""SELECT non_indexed_parameters -> 0 ->> 'value' FROM eventeum.contract_events
                          WHERE filter_id = %s ORDER BY block_number""", (fid,)).fetchall() == [("1",), ("3",), ("5",)]
    listed = next(f for (f,) in db.execute("SELECT eventeum.list_filters()") if f["id"] == fid)
    assert listed["contractAddress"] is None
    assert listed["indexedParameterFilters"] == [{"position": 1, "addressSet": deposits}]

    # pg_dump keeps the sets and their members.
    dump = subprocess.run([str(PGBIN / "pg_dump"), "--data-only", "-t", "eventeum.address_set_members",
                           "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
                           cluster.database], check=True, capture_output=True, text=True,
                          env=os.environ | {"PGCONNECT_TIMEOUT": "10"}).stdout
    assert sum(line.startswith(deposits + "\t") for line in dump.splitlines()) == 10_000


def test_bad_sets_and_filters_are_refused_with_sqlstates(db, anvil, factory):
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT eventeum.watch('no-such-set', %s)", (DEPLOYER,))
    name = f"s-{uid()}"
    db.execute("SELECT eventeum.create_address_set(%s)", (name,))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT eventeum.watch(%s, '0x1234')", (name,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO eventeum.address_set_members (set_name, address) VALUES (%s, 'nope')", (name,))
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT eventeum.add_filter(NULL, 'Sync(uint112 r0, uint112 r1)', address_set => 'no-such-set')")
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(
            {"addressSet": name, "factory": {"filter": "no-such-filter", "parameter": "pair"},
             "eventSpecification": {"eventName": "Sync"}}),))
    pc = db.execute("SELECT eventeum.add_filter(%s, %s)",
                    (factory.address, factory.signature("PairCreated"))).fetchone()[0]
    for parameter, error in [("nope", "has no parameter"), ("token0x", "has no parameter"), (3, "not an address")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=error):
            db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(
                {"addressSet": name, "factory": {"filter": pc, "parameter": parameter},
                 "eventSpecification": {"eventName": "Sync"}}),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="needs addressSet"):
        db.execute("SELECT eventeum.add_filter(%s::jsonb)", (json.dumps(
            {"contractAddress": DEPLOYER, "factory": {"filter": pc, "parameter": "pair"},
             "eventSpecification": {"eventName": "Sync"}}),))
    db.execute("SELECT eventeum.remove_filter(%s)", (pc,))
    db.execute("SELECT eventeum.drop_address_set(%s)", (name,))
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT eventeum.drop_address_set(%s)", (name,))
