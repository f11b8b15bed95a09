"""Least privilege (issue 18): a role that is only a member of eventeum_admin
cannot reach the server's code, files or metadata endpoints through broker
options or node URLs; TLS material is PEM text; consumer groups are granted
one by one; a database the worker does not serve refuses to be configured."""

import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from confluent_kafka.admin import AdminClient
from harness import Tansu, free_port, wait_until


@pytest.fixture(scope="module")
def admin_only(cluster):
    """A login role whose only membership is eventeum_admin."""
    with cluster.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS lp_admin")
        conn.execute("CREATE ROLE lp_admin LOGIN")
        conn.execute("GRANT eventeum_admin TO lp_admin")
    yield "lp_admin"
    with cluster.connect() as conn:
        conn.execute("DROP ROLE lp_admin")


def connect_as(cluster, role, dbname=None):
    return psycopg.connect(cluster.conninfo(dbname).replace("user=postgres", f"user={role}"), autocommit=True)


def drop_broadcaster(db, name):
    if db.execute("SELECT count(*) FROM eventeum.broadcasters WHERE name = %s", (name,)).fetchone() == (1,):
        db.execute("SELECT eventeum.remove_broadcaster(%s)", (name,))


def outbox_row(db, broadcaster):
    return db.execute("SELECT attempts, last_error, delivered_at FROM eventeum.outbox WHERE broadcaster = %s",
                      (broadcaster,)).fetchone()


# --- Code and files: librdkafka properties ------------------------------------

PLUGIN_SOURCE = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%(marker)s", "w");
    if (f) { fputs("loaded\n", f); fclose(f); }
}
"""


def test_a_kafka_plugin_library_is_refused_and_never_loaded(cluster, admin_only, db, workdir):
    marker = workdir / "plugin-loaded.marker"
    source = workdir / "planted.c"
    library = workdir / "planted.so"
    source.write_text(PLUGIN_SOURCE % {"marker": marker})
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    library.chmod(0o755)
    # The library works: loading it writes the marker (here, in this process).
    import ctypes
    probe = workdir / "probe.marker"
    source.write_text(PLUGIN_SOURCE % {"marker": probe})
    probe_library = workdir / "probe.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(probe_library), str(source)], check=True)
    ctypes.CDLL(str(probe_library))
    assert probe.exists(), "the planted library writes its marker when loaded"

    attempts = [
        {"bootstrapServers": "127.0.0.1:9", "librdkafka": {"plugin.library.paths": str(library)}},
        {"bootstrapServers": "127.0.0.1:9", "plugin.library.paths": str(library)},
    ]
    with connect_as(cluster, admin_only) as admin:
        for options in attempts:
            with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                admin.execute("SELECT eventeum.add_broadcaster('planted', 'kafka', %s)", (json.dumps(options),))
            assert "plugin.library.paths" in str(refused.value) or "librdkafka" in str(refused.value)
    assert db.execute("SELECT count(*) FROM eventeum.broadcasters WHERE name = 'planted'").fetchone() == (0,)

    # Options that got into the table another way (an older version, a
    # superuser's INSERT) are refused by the relay too: the lane says why
    # and the library is never loaded.
    db.execute("INSERT INTO eventeum.broadcasters (name, kind, options) VALUES ('planted', 'kafka', %s)",
               (json.dumps(attempts[0]),))
    try:
        db.execute("SELECT eventeum.publish('topic', 'k', '{}', broadcaster => 'planted')")
        row = wait_until(lambda: (r := outbox_row(db, "planted")) and r[0] > 0 and r, timeout=30,
                         what="the relay to refuse the planted options")
        assert "unknown kafka broadcaster option" in row[1] and row[2] is None, row
        time.sleep(1)
        assert not marker.exists(), "the worker never loaded the library"
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('planted')")


@pytest.mark.parametrize("kind, options, key", [
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "librdkafka": {"ssl.ca.location": "/etc/passwd"}}, "librdkafka"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "ssl.ca.location": "/etc/passwd"}, "ssl.ca.location"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "ssl.key.location": "/etc/shadow"}, "ssl.key.location"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "ssl.keystore.location": "/x.p12"}, "ssl.keystore.location"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "sasl.kerberos.kinit.cmd": "touch /tmp/pwned"},
     "sasl.kerberos.kinit.cmd"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "sasl.kerberos.keytab": "/etc/krb5.keytab"}, "sasl.kerberos.keytab"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "saslMechanism": "GSSAPI", "securityProtocol": "SASL_SSL",
               "username": "u", "password": "p"}, "GSSAPI"),
    ("kafka", {"bootstrapServers": "127.0.0.1:9", "securityProtocol": "SSL", "tls": {"caLocation": "/etc/passwd"}},
     "tls.caLocation"),
    ("rabbitmq", {"url": "amqps://127.0.0.1:5671/%2f?cacertfile=/etc/passwd", "exchange": "x"}, "cacertfile"),
    ("rabbitmq", {"url": "amqps://127.0.0.1:5671/%2f", "exchange": "x", "certfile": "/etc/passwd"}, "certfile"),
    ("http", {"contractEventsUrl": "https://127.0.0.1:1/e", "tls": {"caPem": "/etc/ssl/certs/ca-certificates.crt"}},
     "caPem"),
    ("http", {"contractEventsUrl": "https://127.0.0.1:1/e", "tls": {"certificatePath": "/etc/passwd"}},
     "tls.certificatePath"),
])
def test_file_and_command_options_are_refused(cluster, admin_only, kind, options, key):
    with connect_as(cluster, admin_only) as admin:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            admin.execute("SELECT eventeum.add_broadcaster('files', %s, %s)", (kind, json.dumps(options)))
    assert key in str(refused.value), refused.value


# --- TLS material as PEM -----------------------------------------------------

def make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    made here with openssl; keys are unencrypted PKCS#8."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=eventeum test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    for name, extensions in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                             ("client", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n" + extensions)
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=eventeum-{name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
    return {name: (directory / name).read_text() for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.fixture(scope="module")
def certificates(workdir):
    """(directory, PEM texts) of a test CA, a server and a client certificate."""
    directory = workdir / "tls"
    directory.mkdir(exist_ok=True)
    return directory, make_certificates(directory)


class TlsReceiver:
    """An HTTPS endpoint that requires a client certificate signed by the test
    CA and records each POST with the client's common name."""

    def __init__(self, directory):
        self.port = free_port()
        self.requests = []
        receiver = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "server.pem", directory / "server.key")
        context.load_verify_locations(directory / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                subject = dict(item for rdn in self.connection.getpeercert()["subject"] for item in rdn)
                receiver.requests.append({"path": self.path, "client": subject.get("commonName"),
                                          "key": self.headers.get("Idempotency-Key"), "body": json.loads(body)})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def test_pem_material_reaches_a_tls_endpoint(cluster, admin_only, db, certificates):
    directory, pem = certificates
    receiver = TlsReceiver(directory)
    tls_variants = {
        "tls_none": None,  # the system's CAs do not know the test CA
        "tls_ca_only": {"caPem": pem["ca.pem"]},  # the server asks for a client certificate
        "tls_full": {"caPem": pem["ca.pem"], "certificatePem": pem["client.pem"], "keyPem": pem["client.key"]},
    }
    try:
        with connect_as(cluster, admin_only) as admin:
            for name, tls in tls_variants.items():
                options = {"contractEventsUrl": receiver.url + "/events"} | ({"tls": tls} if tls else {})
                admin.execute("SELECT eventeum.add_broadcaster(%s, 'http', %s)", (name, json.dumps(options)))
                admin.execute("SELECT eventeum.publish(%s, %s, %s, broadcaster => %s)",
                              (receiver.url + "/app", name, json.dumps({"via": name}), name))
            listed = json.dumps(admin.execute("SELECT b FROM eventeum.list_broadcasters() b "
                                              "WHERE b->>'name' = 'tls_full'").fetchone()[0])
            assert "PRIVATE KEY" not in listed, "the key is a secret: lists show ***"

        got = wait_until(lambda: receiver.requests, timeout=30, what="the message sent with the client certificate")
        for name in ("tls_none", "tls_ca_only"):
            row = wait_until(lambda: (r := outbox_row(db, name)) and r[0] > 0 and r, timeout=30,
                             what=f"{name} to fail")
            assert row[2] is None and row[1], row
        time.sleep(1)  # nothing else arrives
        assert [(r["path"], r["client"], r["body"]) for r in receiver.requests] == \
            [("/app", "eventeum-client", {"via": "tls_full"})], "exactly the one sent with the full PEM set"
        assert got[0]["key"].startswith("app-")
        assert "certificate" in outbox_row(db, "tls_none")[1].lower()
    finally:
        for name in tls_variants:
            drop_broadcaster(db, name)
        receiver.stop()


class TlsProxy:
    """TLS in front of the machine's plain RabbitMQ: requires a client
    certificate signed by the test CA, then passes bytes both ways."""

    def __init__(self, directory, upstream_port):
        self.upstream_port = upstream_port
        self.clients = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "server.pem", directory / "server.key")
        self.context.load_verify_locations(directory / "ca.pem")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                plain, _ = self.listener.accept()
            except OSError:
                return
            try:
                client = self.context.wrap_socket(plain, server_side=True)
            except (ssl.SSLError, OSError):
                plain.close()
                continue
            subject = dict(item for rdn in client.getpeercert()["subject"] for item in rdn)
            self.clients.append(subject.get("commonName"))
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def stop(self):
        self.listener.close()


def test_pem_material_reaches_rabbitmq_over_amqps(cluster, admin_only, db, certificates):
    from test_rabbit_relay import connect, drain, rabbit_up
    if not rabbit_up():
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        wait_until(rabbit_up, timeout=60, what="RabbitMQ to start")
    directory, pem = certificates
    proxy = TlsProxy(directory, 5672)
    exchange = f"lp-tls-{uuid.uuid4().hex[:8]}"
    queue = exchange + "-queue"
    with connect() as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key="jobs.#")
    url = f"amqps://guest:guest@127.0.0.1:{proxy.port}/%2f"
    variants = {"lp_amqps_ca_only": {"caPem": pem["ca.pem"]},
                "lp_amqps_full": {"caPem": pem["ca.pem"], "certificatePem": pem["client.pem"],
                                  "keyPem": pem["client.key"]}}
    try:
        with connect_as(cluster, admin_only) as admin:
            for name, tls in variants.items():
                admin.execute("SELECT eventeum.add_broadcaster(%s, 'rabbitmq', %s)",
                              (name, json.dumps({"url": url, "exchange": exchange, "tls": tls})))
                admin.execute("SELECT eventeum.publish('jobs.tls', %s, %s, broadcaster => %s)",
                              (name, json.dumps({"via": name}), name))
        wait_until(lambda: (r := outbox_row(db, "lp_amqps_full")) and r[2] is not None, timeout=30,
                   what="the message sent with the client certificate to be confirmed")
        wait_until(lambda: (r := outbox_row(db, "lp_amqps_ca_only")) and r[0] > 0, timeout=30,
                   what="the one without a client certificate to fail")
        time.sleep(1)
        got = [(key, body) for key, _, body in drain(queue)]
        assert got == [("jobs.tls", {"via": "lp_amqps_full"})], "exactly the one sent with the full PEM set"
        assert set(proxy.clients) == {"eventeum-client"}
    finally:
        for name in variants:
            drop_broadcaster(db, name)
        proxy.stop()
        with connect() as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(exchange)


# --- Where nodes and brokers may live ------------------------------------------

@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::ffff:169.254.169.254]/",
    "ws://169.254.169.254:8546",
    "http://127.0.0.1:8545, http://169.254.169.254/",  # a fallback counts too
])
def test_a_node_on_a_metadata_address_is_refused(cluster, admin_only, url):
    with connect_as(cluster, admin_only) as admin:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            admin.execute("SELECT eventeum.add_node('metadata', %s)", (url,))
    assert "eventeum.allowed_hosts" in str(refused.value)
    assert refused.value.diag.message_hint and "superuser" in refused.value.diag.message_hint


def test_brokers_on_metadata_addresses_are_refused_and_published_urls_are_dead_lettered(
        cluster, admin_only, db, receiver):
    with connect_as(cluster, admin_only) as admin:
        for kind, options in (("http", {"blockEventsUrl": "http://169.254.169.254/latest/"}),
                              ("kafka", {"bootstrapServers": "169.254.169.254:9092"}),
                              ("rabbitmq", {"url": "amqp://[fe80::1]:5672", "exchange": "x"})):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin.execute("SELECT eventeum.add_broadcaster('meta', %s, %s)", (kind, json.dumps(options)))
        # publish() names any URL for an http broadcaster: the relay checks
        # each one, and dead-letters the refused one without holding back the next.
        admin.execute("SELECT eventeum.add_broadcaster('lp_hook', 'http', %s)",
                      (json.dumps({"contractEventsUrl": receiver.url + "/events"}),))
    try:
        db.execute("SELECT eventeum.publish('http://169.254.169.254/latest/meta-data/', 'a', '{}', "
                   "broadcaster => 'lp_hook')")
        db.execute("SELECT eventeum.publish(%s, 'b', '{\"n\": 2}', broadcaster => 'lp_hook')", (receiver.url + "/ok",))
        (dead,) = wait_until(lambda: db.execute("SELECT key, reason FROM eventeum.dead_letters "
                                                "WHERE broadcaster = 'lp_hook'").fetchall(), what="a dead letter")
        assert dead[0] == "a" and "eventeum.allowed_hosts" in dead[1], dead
        (delivered,) = wait_until(lambda: receiver.accepted(), what="the next message")
        assert delivered["path"] == "/ok" and delivered["body"] == {"n": 2}
    finally:
        db.execute("SELECT eventeum.remove_broadcaster('lp_hook')")
        db.execute("DELETE FROM eventeum.dead_letters WHERE broadcaster = 'lp_hook'")


def reload_with(cluster, policy):
    with cluster.connect() as conn:
        if policy is None:
            conn.execute("ALTER SYSTEM RESET eventeum.allowed_hosts")
        else:
            conn.execute(sql.SQL("ALTER SYSTEM SET eventeum.allowed_hosts = {}").format(policy))
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


def test_only_a_superuser_sets_the_policy_and_the_worker_applies_it(cluster, admin_only, db, anvil):
    with connect_as(cluster, admin_only) as admin:
        with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
            admin.execute("SET eventeum.allowed_hosts = 'public, private, loopback, link-local'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute("ALTER SYSTEM SET eventeum.allowed_hosts = 'link-local'")
    # A name that resolves to a loopback address passes the API (it cannot
    # resolve names) and is refused by the worker when it connects.
    name = socket.gethostname()
    port = anvil.url.rsplit(":", 1)[1]
    reload_with(cluster, "public, private")
    try:
        with connect_as(cluster, admin_only) as admin:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin.execute("SELECT eventeum.add_node('lp_loop', %s)", (anvil.url,))
            resolves = [a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)]
            if not all(a.startswith("127.") for a in resolves):
                pytest.skip(f"no name here resolves to loopback only ({name}: {resolves})")
            admin.execute("SELECT eventeum.add_node('lp_loop', %s, '{\"pollingInterval\": 100}')",
                          (f"http://{name}:{port}",))
        error = wait_until(lambda: (r := db.execute("SELECT last_error FROM eventeum.node_status "
                                                    "WHERE name = 'lp_loop'").fetchone()) and r[0]
                           and "allowed_hosts" in r[0] and r[0], timeout=30, what="the worker to refuse the node")
        assert "loopback" in error, error
        assert db.execute("SELECT latest_block FROM eventeum.node_status WHERE name = 'lp_loop'").fetchone() == (None,)
    finally:
        reload_with(cluster, None)
    status = "SELECT latest_block, status, last_error FROM eventeum.node_status WHERE name = 'lp_loop'"
    wait_until(lambda: db.execute(status).fetchone()[1] == "CONNECTED", timeout=30,
               what=f"the node followed once the policy allows it ({db.execute(status).fetchone()})")
    db.execute("SELECT eventeum.remove_node('lp_loop')")


# --- Kafka topics as production wants them ------------------------------------

def test_kafka_topics_are_made_with_the_partitions_asked_or_not_at_all(cluster, admin_only, db, workdir):
    broker = Tansu(workdir / "tansu-privileges.log")
    broker.start()
    suffix = uuid.uuid4().hex[:8]
    made, absent = f"made-{suffix}", f"absent-{suffix}"
    try:
        with connect_as(cluster, admin_only) as admin:
            admin.execute("SELECT eventeum.add_broadcaster('lp_made', 'kafka', %s)", (json.dumps(
                {"bootstrapServers": broker.address, "contractEvents": made, "blockEvents": made + "-b",
                 "transactionEvents": made + "-t", "partitions": 3, "replicationFactor": 1}),))
            admin.execute("SELECT eventeum.add_broadcaster('lp_absent', 'kafka', %s)", (json.dumps(
                {"bootstrapServers": broker.address, "contractEvents": absent, "createTopics": False,
                 "requestTimeoutMs": 2000}),))
            admin.execute("SELECT eventeum.publish(%s, 'k', '{}', broadcaster => 'lp_absent')", (absent,))
        client = AdminClient({"bootstrap.servers": broker.address})

        def partitions(topic):
            found = client.list_topics(timeout=5).topics.get(topic)
            return len(found.partitions) if found is not None and found.error is None else None
        wait_until(lambda: partitions(made) == 3, timeout=30, what="the topic made with 3 partitions")
        wait_until(lambda: (r := outbox_row(db, "lp_absent")) and r[0] > 0, timeout=60,
                   what="a failed attempt on the topic that is not made")
        assert partitions(absent) is None, "createTopics false makes no topic"
    finally:
        drop_broadcaster(db, "lp_made")
        drop_broadcaster(db, "lp_absent")
        broker.stop()


# --- Consumer groups -------------------------------------------------------------

@pytest.fixture
def group_roles(cluster):
    roles = {"lp_reader": "GRANT eventeum_reader TO lp_reader",
             "lp_team": None,
             "lp_worker": "GRANT eventeum_consumer, lp_team TO lp_worker"}
    with cluster.connect() as conn:
        for role, grant in roles.items():
            conn.execute(f"DROP ROLE IF EXISTS {role}")
            conn.execute(f"CREATE ROLE {role} {'NOLOGIN' if role == 'lp_team' else 'LOGIN'}")
        for grant in filter(None, roles.values()):
            conn.execute(grant)
    yield
    with cluster.connect() as conn:
        for role in reversed(list(roles)):
            conn.execute(f"DROP ROLE {role}")


def test_a_group_is_consumed_only_by_the_roles_it_is_granted_to(cluster, admin_only, db, group_roles):
    with connect_as(cluster, admin_only) as admin:
        for group in ("lp_billing", "lp_audit"):
            admin.execute("SELECT eventeum.create_consumer_group(%s, ARRAY['APP'])", (group,))
        admin.execute("SELECT eventeum.grant_consumer_group('lp_billing', 'lp_team')")
        with pytest.raises(psycopg.errors.UndefinedObject):
            admin.execute("SELECT eventeum.grant_consumer_group('lp_billing', 'lp_nobody')")
        for n in range(3):
            admin.execute("SELECT eventeum.publish('jobs', %s, %s)", (f"k{n}", json.dumps({"n": n})))
    try:
        with connect_as(cluster, "lp_reader") as reader:
            for sql in ("SELECT * FROM eventeum.poll('lp_billing')", "SELECT eventeum.ack('lp_billing', ARRAY['x'])"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(sql)
        with connect_as(cluster, "lp_worker") as worker:
            taken = worker.execute("SELECT message_id, key FROM eventeum.poll('lp_billing', 10)").fetchall()
            assert [key for _, key in taken] == ["k0", "k1", "k2"], "its own group, through lp_team"
            assert worker.execute("SELECT eventeum.ack('lp_billing', %s)", ([m for m, _ in taken],)).fetchone() == (3,)
            for sql in ("SELECT * FROM eventeum.poll('lp_audit')", "SELECT eventeum.ack('lp_audit', ARRAY['x'])"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                    worker.execute(sql)
                assert "grant_consumer_group" in refused.value.diag.message_hint
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                worker.execute("SELECT count(*) FROM eventeum.outbox")
        # The other group still holds every message: nobody else took them.
        with connect_as(cluster, admin_only) as admin:
            assert len(admin.execute("SELECT * FROM eventeum.poll('lp_audit', 10)").fetchall()) == 3
            admin.execute("SELECT eventeum.revoke_consumer_group('lp_billing', 'lp_team')")
        with connect_as(cluster, "lp_worker") as worker:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                worker.execute("SELECT * FROM eventeum.poll('lp_billing')")
    finally:
        for group in ("lp_billing", "lp_audit"):
            db.execute("SELECT eventeum.remove_broadcaster(%s)", (group,))
    assert db.execute("SELECT count(*) FROM eventeum.consumer_group_grants WHERE group_name LIKE 'lp_%'"
                      ).fetchone() == (0,), "grants go with their group"


# --- A database the worker does not serve ---------------------------------------

def test_a_database_the_worker_does_not_serve_refuses_to_be_configured(cluster, db):
    with cluster.connect("postgres") as conn:
        conn.execute("DROP DATABASE IF EXISTS lp_elsewhere")
        conn.execute("CREATE DATABASE lp_elsewhere")
    try:
        with cluster.connect("lp_elsewhere") as other:
            notices = []
            other.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
            other.execute("CREATE EXTENSION eventeum")  # pg_restore does this too: it works, and warns
            assert any(severity == "WARNING" and "lp_elsewhere" in message for severity, message in notices), notices
            calls = [
                "SELECT eventeum.add_node('n', 'http://127.0.0.1:8545')",
                "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 x)')",
                "SELECT eventeum.add_transaction_monitor('{\"type\": \"HASH\", \"transactionIdentifierValue\": "
                "\"0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060\"}')",
                "SELECT eventeum.add_broadcaster('b', 'http', '{\"contractEventsUrl\": \"http://127.0.0.1:1\"}')",
                "SELECT eventeum.create_consumer_group('g')",
                "SELECT eventeum.publish('d', 'k', '{}')",
            ]
            for sql in calls:
                with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as refused:
                    other.execute(sql)
                assert "eventeum.database" in refused.value.diag.message_hint
                assert '"eventeum"' in refused.value.diag.message_hint, "it names the database served"
            # Reading works, and rows a restored dump brings are kept as they are.
            other.execute("INSERT INTO eventeum.nodes (name, url, options) VALUES ('restored', 'http://x:1', '{}')")
            assert other.execute("SELECT name FROM eventeum.nodes").fetchall() == [("restored",)]
            assert other.execute("SELECT count(*) FROM eventeum.list_filters()").fetchone() == (0,)
    finally:
        with cluster.connect("postgres") as conn:
            conn.execute("DROP DATABASE lp_elsewhere WITH (FORCE)")
