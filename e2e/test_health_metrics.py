"""eventeum.health(), the eventeum.metrics view, and the worker's Prometheus
endpoint, read with a real HTTP client and parsed with prometheus_client."""

import json
import urllib.error
import urllib.request

import pytest
from conftest import wait_caught_up
from harness import free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families

EVENTEUM_LABELS = {"application": "Eventeum", "environment": "default"}


def fetch(url):
    """(status, body), or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


def scrape(url):
    status, body = fetch(url + "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in families.values() for s in f.samples}
    return families, samples


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def endpoint(db):
    port = free_port()
    db.execute(f"ALTER SYSTEM SET eventeum.metrics_address = '127.0.0.1:{port}'")
    db.execute("SELECT pg_reload_conf()")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: fetch(url + "/metrics"), timeout=30, what="the metrics endpoint")
    yield url
    db.execute("ALTER SYSTEM RESET eventeum.metrics_address")
    db.execute("SELECT pg_reload_conf()")
    wait_until(lambda: fetch(url + "/metrics") is None, timeout=30, what="the endpoint to close")


def view_value(db, name, **labels):
    row = db.execute("SELECT value FROM eventeum.metrics WHERE name = %s AND labels = %s::jsonb",
                     (name, json.dumps(labels))).fetchone()
    return row and row[0]


def test_prometheus_endpoint_and_the_metrics_view(db, emitter, endpoint, receiver):
    db.execute("SELECT eventeum.add_broadcaster('metrics_hook', 'http', %s)",
               (json.dumps({"contractEventsUrl": receiver.url + "/events"}),))
    try:
        confirmed_before = view_value(db, "eventeum_events_total", node="default", status="CONFIRMED") or 0
        fid = db.execute("SELECT eventeum.add_filter(%s, %s)", (emitter.address, emitter.signature("Ping"))).fetchone()[0]
        receipt = emitter.call("burst(uint256)", 5)
        block = int(receipt["blockNumber"], 16)
        wait_caught_up(db, "default", block)
        wait_until(lambda: len(receiver.accepted()) >= 5, timeout=30, what="5 deliveries")

        def delivered_scraped():
            families, samples = scrape(endpoint)
            done = sample(samples, "eventeum_messages_delivered_total", broadcaster="metrics_hook") == 5
            return done and (families, samples)
        families, samples = wait_until(delivered_scraped, timeout=30, what="the scrape to show 5 deliveries")

        # Eventeum's per-node gauges, with its labels.
        assert sample(samples, "eventeum_default_latestBlock", **EVENTEUM_LABELS) >= block
        assert sample(samples, "eventeum_default_currentBlock", **EVENTEUM_LABELS) >= block
        assert sample(samples, "eventeum_default_syncing", **EVENTEUM_LABELS) == 0
        assert sample(samples, "eventeum_default_status", **EVENTEUM_LABELS) == 1  # CONNECTED
        assert families["eventeum_default_status"].type == "gauge"
        # Counters.
        assert families["eventeum_events"].type == "counter"
        confirmed = sample(samples, "eventeum_events_total", node="default", status="CONFIRMED")
        assert confirmed >= confirmed_before + 5
        assert sample(samples, "eventeum_rpc_calls_total", node="default") > 0
        assert families["eventeum_messages_delivered"].type == "counter"
        # The latency histogram: cumulative buckets ending at +Inf = count.
        histogram = families["eventeum_delivery_latency_seconds"]
        assert histogram.type == "histogram"
        buckets = sorted((float(s.labels["le"]), s.value) for s in histogram.samples
                         if s.name.endswith("_bucket") and s.labels["broadcaster"] == "metrics_hook")
        assert len(buckets) == 14 and buckets[-1] == (float("inf"), 5)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
        assert sample(samples, "eventeum_delivery_latency_seconds_count", broadcaster="metrics_hook") == 5
        assert 0 < sample(samples, "eventeum_delivery_latency_seconds_sum", broadcaster="metrics_hook") < 60
        # The SQL view holds the same figures.
        assert view_value(db, "eventeum_messages_delivered_total", broadcaster="metrics_hook") == 5
        assert view_value(db, "eventeum_delivery_latency_seconds_bucket", broadcaster="metrics_hook", le="+Inf") == 5
        view_names = {n for (n,) in db.execute("SELECT DISTINCT name FROM eventeum.metrics")}
        assert view_names <= {name for name, _ in samples} | {"eventeum_outbox_backlog"}

        # Health over HTTP, as Eventeum's /monitoring/health: 200 when UP, 503 when DOWN.
        status, body = fetch(endpoint + "/monitoring/health")
        health = json.loads(body)
        assert (status == 200) == (health["status"] == "UP")
        assert health["details"]["nodes"]["default"]["status"] == "UP"
        assert fetch(endpoint + "/nope")[0] == 404
        db.execute("SELECT eventeum.remove_filter(%s)", (fid,))
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('metrics_hook')")


def broadcaster_health(db, name):
    health = db.execute("SELECT eventeum.health()").fetchone()[0]
    return health, health["details"]["broadcasters"].get(name)


def test_health_follows_a_broker_outage_and_dead_letters(db, receiver):
    health, _ = broadcaster_health(db, "nobody")
    assert health["details"]["worker"] == {"status": "UP"}
    for node in ("default", "deep"):
        assert health["details"]["nodes"][node]["status"] == "UP"
        assert health["details"]["nodes"][node]["nodeStatus"] == "CONNECTED"
    dead_before = health["details"]["deadLetters"]

    # Only messages published to it by name reach it in this test.
    db.execute("SELECT eventeum.add_broadcaster('health_hook', 'http', %s)",
               (json.dumps({"transactionEventsUrl": receiver.url + "/transactions"}),))
    try:
        _, hook = broadcaster_health(db, "health_hook")
        assert hook["status"] == "UNKNOWN" and hook["backlog"] == 0

        receiver.status = 503
        db.execute("SELECT eventeum.publish(%s, 'k', '{\"n\": 1}', 'health_hook')", (receiver.url + "/app",))

        def down():
            health, hook = broadcaster_health(db, "health_hook")
            return hook["status"] == "DOWN" and (health, hook)
        health, hook = wait_until(down, timeout=30, what="the broadcaster to be DOWN")
        assert health["status"] == "DOWN"
        assert "503" in hook["lastError"] and hook["backlog"] == 1 and hook["lastDelivery"] is None
        assert health["details"]["outbox"]["backlog"] >= 1
        assert health["details"]["outbox"]["oldestAgeSeconds"] > 0

        receiver.status = 200
        health, hook = wait_until(lambda: (r := broadcaster_health(db, "health_hook"))[1]["status"] == "UP" and r,
                                  timeout=30, what="the broadcaster to be UP again")
        assert hook["backlog"] == 0 and hook["lastDelivery"] is not None

        receiver.status = 422  # refused for good: a dead letter
        db.execute("SELECT eventeum.publish(%s, 'k', '{\"n\": 2}', 'health_hook')", (receiver.url + "/app",))
        health = wait_until(lambda: (h := broadcaster_health(db, "health_hook")[0])["details"]["deadLetters"]
                            == dead_before + 1 and h, timeout=30, what="a dead letter")
        assert health["details"]["broadcasters"]["health_hook"]["status"] == "DOWN"
        assert view_value(db, "eventeum_messages_dead_lettered_total", broadcaster="health_hook") == 1
        assert view_value(db, "eventeum_messages_failed_total", broadcaster="health_hook") >= 2
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('health_hook')")
        db.execute("DELETE FROM eventeum.dead_letters WHERE broadcaster = 'health_hook'")
