// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Emits many events per transaction: the load of scripts/bench.
contract Bench {
    event Simple(address indexed who, uint256 value);

    function emitMany(uint256 count, uint256 offset) external {
        for (uint256 i = 0; i < count; i++) {
            emit Simple(msg.sender, offset + i);
        }
    }
}
