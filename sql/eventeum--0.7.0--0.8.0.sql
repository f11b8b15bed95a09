-- eventeum 0.7.0 -> 0.8.0: storage for years (issue 34), first step: the
-- compact types eventeum.address and eventeum.hash (docs/ARCHITECTURE.md,
-- "Storage for years"). Nothing stored changes yet.

-- Compact types ---------------------------------------------------------------
-- eventeum.address (20 bytes) and eventeum.hash (32 bytes) are stored as a
-- bytea of that length (21 and 33 bytes on disk, where their hex text takes
-- 43 and 67) and read and print as Eventeum's text: EIP-55 for an address,
-- lower-case 0x hex for a hash. Input takes 0x hex in any case; an address
-- in mixed case must carry its EIP-55 checksum. Comparison and hashing are
-- bytea's own, so their B-tree and hash indexes are bytea's; a cast to text
-- is implicit, so text functions and comparisons with text keep working.
CREATE TYPE address;
CREATE FUNCTION address_in(cstring) RETURNS address
    AS 'MODULE_PATHNAME', 'address_in_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_out(address) RETURNS cstring
    AS 'MODULE_PATHNAME', 'address_out_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_recv(internal) RETURNS address
    AS 'MODULE_PATHNAME', 'address_recv_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_send(address) RETURNS bytea
    AS 'byteasend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE address (
    INPUT = address_in, OUTPUT = address_out, RECEIVE = address_recv, SEND = address_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE address IS
  'An Ethereum address: 20 bytes, shown in EIP-55 mixed case. Input: 0x and 40 hex digits, in lower case or with a valid EIP-55 checksum.';

CREATE TYPE hash;
CREATE FUNCTION hash_in(cstring) RETURNS hash
    AS 'MODULE_PATHNAME', 'hash_in_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_out(hash) RETURNS cstring
    AS 'MODULE_PATHNAME', 'hash_out_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_recv(internal) RETURNS hash
    AS 'MODULE_PATHNAME', 'hash_recv_wrapper' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_send(hash) RETURNS bytea
    AS 'byteasend' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE hash (
    INPUT = hash_in, OUTPUT = hash_out, RECEIVE = hash_recv, SEND = hash_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE hash IS
  'A 32-byte hash (a block or transaction hash, a bytes32 topic), shown as 0x and 64 lower-case hex digits. Input: 0x and 64 hex digits in any case.';

-- Their comparisons, B-tree and hash operator classes, and casts: the same for both.
CREATE FUNCTION address_eq(address, address) RETURNS boolean
    AS 'byteaeq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR = (LEFTARG = address, RIGHTARG = address, FUNCTION = address_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE FUNCTION address_ne(address, address) RETURNS boolean
    AS 'byteane' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <> (LEFTARG = address, RIGHTARG = address, FUNCTION = address_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE FUNCTION address_lt(address, address) RETURNS boolean
    AS 'bytealt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR < (LEFTARG = address, RIGHTARG = address, FUNCTION = address_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE FUNCTION address_le(address, address) RETURNS boolean
    AS 'byteale' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <= (LEFTARG = address, RIGHTARG = address, FUNCTION = address_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE FUNCTION address_gt(address, address) RETURNS boolean
    AS 'byteagt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR > (LEFTARG = address, RIGHTARG = address, FUNCTION = address_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE FUNCTION address_ge(address, address) RETURNS boolean
    AS 'byteage' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR >= (LEFTARG = address, RIGHTARG = address, FUNCTION = address_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE FUNCTION address_cmp(address, address) RETURNS integer
    AS 'byteacmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION address_hash(address) RETURNS integer
    AS 'hashvarlena' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION address_hash_extended(address, bigint) RETURNS bigint
    AS 'hashvarlenaextended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR CLASS address_ops DEFAULT FOR TYPE address USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 address_cmp(address, address);
CREATE OPERATOR CLASS address_hash_ops DEFAULT FOR TYPE address USING hash AS
    OPERATOR 1 =, FUNCTION 1 address_hash(address), FUNCTION 2 address_hash_extended(address, bigint);
CREATE CAST (address AS text) WITH INOUT AS IMPLICIT;
CREATE CAST (text AS address) WITH INOUT;
CREATE CAST (address AS bytea) WITHOUT FUNCTION;
CREATE FUNCTION hash_eq(hash, hash) RETURNS boolean
    AS 'byteaeq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR = (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE FUNCTION hash_ne(hash, hash) RETURNS boolean
    AS 'byteane' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <> (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE FUNCTION hash_lt(hash, hash) RETURNS boolean
    AS 'bytealt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR < (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE FUNCTION hash_le(hash, hash) RETURNS boolean
    AS 'byteale' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR <= (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE FUNCTION hash_gt(hash, hash) RETURNS boolean
    AS 'byteagt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR > (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE FUNCTION hash_ge(hash, hash) RETURNS boolean
    AS 'byteage' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR >= (LEFTARG = hash, RIGHTARG = hash, FUNCTION = hash_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE FUNCTION hash_cmp(hash, hash) RETURNS integer
    AS 'byteacmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION hash_hash(hash) RETURNS integer
    AS 'hashvarlena' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hash_hash_extended(hash, bigint) RETURNS bigint
    AS 'hashvarlenaextended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR CLASS hash_ops DEFAULT FOR TYPE hash USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 hash_cmp(hash, hash);
CREATE OPERATOR CLASS hash_hash_ops DEFAULT FOR TYPE hash USING hash AS
    OPERATOR 1 =, FUNCTION 1 hash_hash(hash), FUNCTION 2 hash_hash_extended(hash, bigint);
CREATE CAST (hash AS text) WITH INOUT AS IMPLICIT;
CREATE CAST (text AS hash) WITH INOUT;
CREATE CAST (hash AS bytea) WITHOUT FUNCTION;
-- PUBLIC gets nothing, as on a fresh install (privileges.sql).
REVOKE ALL ON FUNCTION
    address_in(cstring),
    address_out(address),
    address_recv(internal),
    address_send(address),
    address_eq(address, address),
    address_ne(address, address),
    address_lt(address, address),
    address_le(address, address),
    address_gt(address, address),
    address_ge(address, address),
    address_cmp(address, address),
    address_hash(address),
    address_hash_extended(address, bigint),
    hash_in(cstring),
    hash_out(hash),
    hash_recv(internal),
    hash_send(hash),
    hash_eq(hash, hash),
    hash_ne(hash, hash),
    hash_lt(hash, hash),
    hash_le(hash, hash),
    hash_gt(hash, hash),
    hash_ge(hash, hash),
    hash_cmp(hash, hash),
    hash_hash(hash),
    hash_hash_extended(hash, bigint)
   FROM PUBLIC;
-- The compact types' functions: whoever reads events compares and hashes
-- them through their operators, which check EXECUTE.
GRANT EXECUTE ON FUNCTION
    address_in(cstring),
    address_out(address),
    address_recv(internal),
    address_send(address),
    address_eq(address, address),
    address_ne(address, address),
    address_lt(address, address),
    address_le(address, address),
    address_gt(address, address),
    address_ge(address, address),
    address_cmp(address, address),
    address_hash(address),
    address_hash_extended(address, bigint),
    hash_in(cstring),
    hash_out(hash),
    hash_recv(internal),
    hash_send(hash),
    hash_eq(hash, hash),
    hash_ne(hash, hash),
    hash_lt(hash, hash),
    hash_le(hash, hash),
    hash_gt(hash, hash),
    hash_ge(hash, hash),
    hash_cmp(hash, hash),
    hash_hash(hash),
    hash_hash_extended(hash, bigint)
   TO eventeum_reader;
