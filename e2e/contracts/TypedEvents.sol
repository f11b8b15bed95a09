// SPDX-License-Identifier: Apache-2.0
// Events whose parameters are structs, nested and fixed-size arrays, and the
// extremes of each type, for the typed views. Compiled by
// scripts/compile-contracts into TypedEvents.json; both files are committed.
pragma solidity ^0.8.20;

contract TypedEvents {
    struct Leg {
        int256 amount;
        address to;
    }

    struct Order {
        address maker;
        uint256 price;
        bytes32 id;
        Leg[] legs;
        bool open;
        string note;
    }

    event Ordered(uint256 indexed seq, Order order, Leg last);
    event Extremes(
        uint256 max, int256 min, int8 small, bytes32 word, bytes blob, bytes emptyBlob,
        string text, string emptyText, uint256[] empty, address[2] pair, uint8[][] grid, bool yes
    );
    event Keyed(string indexed key, Order indexed order, bytes indexed blob, address to);

    /// Emits each event once; `text` goes into strings as it is.
    function emitAll(string calldata text) external {
        Leg[] memory legs = new Leg[](2);
        legs[0] = Leg(-1, msg.sender);
        legs[1] = Leg(type(int256).max, address(this));
        Order memory order = Order(msg.sender, 5, keccak256("id"), legs, true, text);
        emit Ordered(7, order, legs[1]);
        uint8[][] memory grid = new uint8[][](2);
        grid[0] = new uint8[](2);
        grid[0][0] = 1;
        grid[0][1] = 2;
        emit Extremes(
            type(uint256).max, type(int256).min, type(int8).min, keccak256("word"), hex"00ff10",
            "", text, "", new uint256[](0), [msg.sender, address(this)], grid, true
        );
        emit Keyed("k", order, hex"beef", msg.sender);
    }
}
