"""eventeum.address and eventeum.hash on a real cluster: text and binary
input and output, comparisons and indexes, casts, and their errors."""

import psycopg
import pytest

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
HASH = "0x" + "ab" * 32


def one(db, sql, *params):
    return db.execute(sql, params).fetchone()[0]


def test_an_address_reads_in_any_case_and_prints_eip55(db):
    for written in (WETH, WETH.lower(), "0x" + WETH[2:].upper()):
        assert one(db, "SELECT %s::eventeum.address::text", written) == WETH
    assert one(db, "SELECT octet_length(%s::eventeum.address::bytea)", WETH) == 20
    assert one(db, "SELECT pg_column_size(%s::eventeum.address)", WETH) == 24  # 4-byte header in memory


def test_a_hash_prints_in_lower_case(db):
    assert one(db, "SELECT %s::eventeum.hash::text", HASH.upper().replace("0X", "0x")) == HASH
    assert one(db, "SELECT octet_length(%s::eventeum.hash::bytea)", HASH) == 32


@pytest.mark.parametrize("sql, written, reason", [
    ("SELECT %s::eventeum.address", WETH[:-3] + "cC2", "EIP-55 checksum"),   # mixed case, one letter off
    ("SELECT %s::eventeum.address", WETH[2:], "must start with 0x"),
    ("SELECT %s::eventeum.address", WETH[:-1], "40 hex digits after 0x, not 39"),
    ("SELECT %s::eventeum.address", "0x" + "zz" * 20, "not hex"),
    ("SELECT %s::eventeum.hash", "0x1234", "64 hex digits after 0x, not 4"),
])
def test_malformed_text_is_refused_with_the_reason(db, sql, written, reason):
    with pytest.raises(psycopg.Error) as failure:
        db.execute(sql, (written,))
    assert failure.value.sqlstate == "22P02"
    assert reason in str(failure.value), failure.value


def test_equality_is_on_bytes_and_uses_an_index(db):
    db.execute("SET search_path = eventeum, public")
    db.execute("CREATE TEMP TABLE owners (who eventeum.address NOT NULL, tx eventeum.hash NOT NULL)")
    db.execute("""INSERT INTO owners
                  SELECT ('0x' || lpad(to_hex(i), 40, '0'))::eventeum.address,
                         ('0x' || lpad(to_hex(i), 64, '0'))::eventeum.hash
                    FROM generate_series(1, 5000) AS i""")
    db.execute("INSERT INTO owners VALUES (%s, %s)", (WETH, HASH))
    db.execute("CREATE INDEX ON owners (who)")
    db.execute("CREATE INDEX ON owners USING hash (tx)")
    db.execute("ANALYZE owners")
    # On disk as a short bytea: one header byte.
    assert db.execute("SELECT pg_column_size(who), pg_column_size(tx) FROM owners LIMIT 1").fetchone() == (21, 33)
    # Written in lower case, found by its bytes.
    assert one(db, "SELECT count(*) FROM owners WHERE who = %s", WETH.lower()) == 1
    assert one(db, "SELECT count(*) FROM owners WHERE tx = %s", HASH.upper().replace("0X", "0x")) == 1
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN SELECT * FROM owners WHERE who = %s", (WETH,)))
    assert "owners_who_idx" in plan, plan
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN SELECT * FROM owners WHERE tx = %s", (HASH,)))
    assert "owners_tx_idx" in plan, plan
    # Ordered as bytes; grouped and joined by hash.
    first = one(db, "SELECT who::text FROM owners ORDER BY who LIMIT 1")
    assert first == "0x" + "0" * 39 + "1"
    assert one(db, "SELECT count(DISTINCT who) FROM owners") == 5001
    assert one(db, "SELECT count(*) FROM owners a JOIN owners b USING (tx)") == 5001


def test_text_functions_and_comparisons_with_text_work_through_the_cast(db):
    assert one(db, "SELECT lower(%s::eventeum.address)", WETH) == WETH.lower()
    assert one(db, "SELECT %s::eventeum.address = %s::text", WETH, WETH) is True
    assert one(db, "SELECT length(%s::eventeum.hash)", HASH) == 66
    assert one(db, "SELECT %s::text::eventeum.address::text", WETH.lower()) == WETH


def test_binary_copy_round_trips_and_checks_the_length(db):
    db.execute("CREATE TEMP TABLE source (who eventeum.address, tx eventeum.hash)")
    db.execute("CREATE TEMP TABLE target (who eventeum.address, tx eventeum.hash)")
    db.execute("INSERT INTO source VALUES (%s, %s), (NULL, NULL)", (WETH, HASH))
    with db.cursor().copy("COPY source TO STDOUT (FORMAT binary)") as out:
        data = b"".join(bytes(chunk) for chunk in out)
    with db.cursor().copy("COPY target FROM STDIN (FORMAT binary)") as copy:
        copy.write(data)
    assert db.execute("SELECT who::text, tx::text FROM target ORDER BY who NULLS LAST").fetchall() == \
        [(WETH, HASH), (None, None)]
    # A bytea of 19 bytes in an address's place: the same wire format, the wrong length.
    db.execute("CREATE TEMP TABLE short (who bytea, tx eventeum.hash)")
    db.execute("INSERT INTO short VALUES (%s, %s)", (b"\x01" * 19, HASH))
    with db.cursor().copy("COPY short TO STDOUT (FORMAT binary)") as out:
        data = b"".join(bytes(chunk) for chunk in out)
    with pytest.raises(psycopg.Error) as failure:
        with db.cursor().copy("COPY target FROM STDIN (FORMAT binary)") as copy:
            copy.write(data)
    assert failure.value.sqlstate == "22P03"
    db.rollback()


def test_a_reader_may_use_the_types(cluster, db):
    db.execute("DROP ROLE IF EXISTS types_reader")
    db.execute("CREATE ROLE types_reader LOGIN IN ROLE eventeum_reader")
    db.commit()
    try:
        with psycopg.connect(cluster.conninfo().replace("user=postgres", "user=types_reader")) as reader:
            reader.execute("SET search_path = eventeum, public")
            assert reader.execute("SELECT %s::eventeum.address = %s", (WETH, WETH.lower())).fetchone()[0] is True
            assert reader.execute("SELECT %s::eventeum.hash < %s", (HASH, "0x" + "ff" * 32)).fetchone()[0] is True
    finally:
        db.execute("DROP ROLE types_reader")
        db.commit()
