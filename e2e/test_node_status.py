"""eventeum.node_status: one row per node, with health from the worker."""

from harness import free_port, wait_until


def status(db, node):
    return db.execute("SELECT status, latest_block, current_block, syncing, last_error "
                      "FROM eventeum.node_status WHERE name = %s", (node,)).fetchone()


def test_followed_nodes_are_connected(db, anvil):
    head = anvil.block_number()
    got = wait_until(lambda: (s := status(db, "default")) and s[1] >= head and s, what="default to catch up")
    state, latest, current, syncing, error = got
    assert state == "CONNECTED" and current >= latest >= head and syncing is False and error is None


def test_an_unreachable_node_is_down_and_does_not_stop_the_others(db, anvil):
    dead = f"http://127.0.0.1:{free_port()}"
    db.execute("SELECT eventeum.add_node('dead', %s, '{\"pollingInterval\": 100}')", (dead,))
    try:
        # The view says DOWN ("not reached yet") before the worker tried; wait
        # for what the worker recorded.
        state, latest, _, _, error = wait_until(
            lambda: (s := status(db, "dead")) and s[4] != "not reached yet" and s, what="dead to be recorded")
        assert state == "DOWN" and latest is None
        # The first call to a node asks which chain it serves.
        assert "eth_chainId failed" in error, error
        anvil.mine(1)
        head = anvil.block_number()
        wait_until(lambda: status(db, "default")[1] >= head, what="default to go on")
    finally:
        db.execute("SELECT eventeum.remove_node('dead')")
    assert status(db, "dead") is None
