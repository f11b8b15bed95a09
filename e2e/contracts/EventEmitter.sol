// SPDX-License-Identifier: Apache-2.0
// Emits one event of every parameter type eventeum decodes. Compiled by
// scripts/compile-contracts into EventEmitter.json; both files are committed.
pragma solidity ^0.8.20;

contract EventEmitter {
    bytes32 constant PATTERN = 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20;

    // Every width: the uints at their maximum, the ints at their (negative) minimum,
    // and bytesN as the first N bytes of PATTERN.
    event UintsA(uint8 u8, uint16 u16, uint24 u24, uint32 u32, uint40 u40, uint48 u48, uint56 u56, uint64 u64);
    event IntsA(int8 i8, int16 i16, int24 i24, int32 i32, int40 i40, int48 i48, int56 i56, int64 i64);
    event BytesA(bytes1 b1, bytes2 b2, bytes3 b3, bytes4 b4, bytes5 b5, bytes6 b6, bytes7 b7, bytes8 b8);
    event UintsB(uint72 u72, uint80 u80, uint88 u88, uint96 u96, uint104 u104, uint112 u112, uint120 u120, uint128 u128);
    event IntsB(int72 i72, int80 i80, int88 i88, int96 i96, int104 i104, int112 i112, int120 i120, int128 i128);
    event BytesB(bytes9 b9, bytes10 b10, bytes11 b11, bytes12 b12, bytes13 b13, bytes14 b14, bytes15 b15, bytes16 b16);
    event UintsC(uint136 u136, uint144 u144, uint152 u152, uint160 u160, uint168 u168, uint176 u176, uint184 u184, uint192 u192);
    event IntsC(int136 i136, int144 i144, int152 i152, int160 i160, int168 i168, int176 i176, int184 i184, int192 i192);
    event BytesC(bytes17 b17, bytes18 b18, bytes19 b19, bytes20 b20, bytes21 b21, bytes22 b22, bytes23 b23, bytes24 b24);
    event UintsD(uint200 u200, uint208 u208, uint216 u216, uint224 u224, uint232 u232, uint240 u240, uint248 u248, uint256 u256);
    event IntsD(int200 i200, int208 i208, int216 i216, int224 i224, int232 i232, int240 i240, int248 i248, int256 i256);
    event BytesD(bytes25 b25, bytes26 b26, bytes27 b27, bytes28 b28, bytes29 b29, bytes30 b30, bytes31 b31, bytes32 b32);

    event Misc(address indexed who, bool indexed flag, uint256 indexed big, string text, bool no, address plain, int256 minusOne);
    event Arrays(uint256[] numbers, int256[] signed, address[] addrs, string[] words, bool[] flags, bytes32[] hashes, uint8[] small);
    event IndexedDynamic(string indexed key, uint256[] indexed list, string value);
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Ping(uint256 indexed n, uint256 value);
    event Big(string text);

    /// Emits every type once.
    function emitAll() external {
        emit UintsA(type(uint8).max, type(uint16).max, type(uint24).max, type(uint32).max, type(uint40).max, type(uint48).max, type(uint56).max, type(uint64).max);
        emit IntsA(type(int8).min, type(int16).min, type(int24).min, type(int32).min, type(int40).min, type(int48).min, type(int56).min, type(int64).min);
        emit BytesA(bytes1(PATTERN), bytes2(PATTERN), bytes3(PATTERN), bytes4(PATTERN), bytes5(PATTERN), bytes6(PATTERN), bytes7(PATTERN), bytes8(PATTERN));
        emit UintsB(type(uint72).max, type(uint80).max, type(uint88).max, type(uint96).max, type(uint104).max, type(uint112).max, type(uint120).max, type(uint128).max);
        emit IntsB(type(int72).min, type(int80).min, type(int88).min, type(int96).min, type(int104).min, type(int112).min, type(int120).min, type(int128).min);
        emit BytesB(bytes9(PATTERN), bytes10(PATTERN), bytes11(PATTERN), bytes12(PATTERN), bytes13(PATTERN), bytes14(PATTERN), bytes15(PATTERN), bytes16(PATTERN));
        emit UintsC(type(uint136).max, type(uint144).max, type(uint152).max, type(uint160).max, type(uint168).max, type(uint176).max, type(uint184).max, type(uint192).max);
        emit IntsC(type(int136).min, type(int144).min, type(int152).min, type(int160).min, type(int168).min, type(int176).min, type(int184).min, type(int192).min);
        emit BytesC(bytes17(PATTERN), bytes18(PATTERN), bytes19(PATTERN), bytes20(PATTERN), bytes21(PATTERN), bytes22(PATTERN), bytes23(PATTERN), bytes24(PATTERN));
        emit UintsD(type(uint200).max, type(uint208).max, type(uint216).max, type(uint224).max, type(uint232).max, type(uint240).max, type(uint248).max, type(uint256).max);
        emit IntsD(type(int200).min, type(int208).min, type(int216).min, type(int224).min, type(int232).min, type(int240).min, type(int248).min, type(int256).min);
        emit BytesD(bytes25(PATTERN), bytes26(PATTERN), bytes27(PATTERN), bytes28(PATTERN), bytes29(PATTERN), bytes30(PATTERN), bytes31(PATTERN), bytes32(PATTERN));
        emit Misc(msg.sender, true, type(uint256).max, "  hello\x00world  ", false, address(this), -1);
        uint256[] memory numbers = new uint256[](3);
        numbers[0] = 1; numbers[1] = 2; numbers[2] = type(uint256).max;
        int256[] memory signed = new int256[](2);
        signed[0] = -5; signed[1] = type(int256).min;
        address[] memory addrs = new address[](2);
        addrs[0] = msg.sender; addrs[1] = address(this);
        string[] memory words = new string[](2);
        words[0] = "alpha"; words[1] = " beta ";
        bool[] memory flags = new bool[](2);
        flags[0] = true; flags[1] = false;
        bytes32[] memory hashes = new bytes32[](1);
        hashes[0] = PATTERN;
        uint8[] memory small = new uint8[](0);
        emit Arrays(numbers, signed, addrs, words, flags, hashes, small);
        emit IndexedDynamic("key", numbers, "value");
    }

    function transfer(address to, uint256 value) external {
        emit Transfer(msg.sender, to, value);
    }

    /// Emits `count` Ping events in one transaction.
    function burst(uint256 count) external {
        for (uint256 i = 0; i < count; i++) {
            emit Ping(i, i * 2);
        }
    }

    /// Always reverts with `reason`: a failed transaction for the monitors.
    function fail(string calldata reason) external pure {
        revert(reason);
    }

    /// Emits `text` as it is: control characters, backslashes, quotes, UTF-8.
    function say(string calldata text) external {
        emit Big(text);
    }

    /// Emits a string of `length` bytes, to exceed NOTIFY's payload limit.
    function big(uint256 length) external {
        bytes memory text = new bytes(length);
        for (uint256 i = 0; i < length; i++) {
            text[i] = "x";
        }
        emit Big(string(text));
    }
}
