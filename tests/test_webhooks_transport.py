"""One webhook POST over real sockets: HTTPS to the checked address with the certificate checked against the
URL's host name, and a total time limit that holds however the receiver stalls (fieldpipe/webhooks/transport.py).

Production webhooks must be HTTPS, so these run against a real TLS server on 127.0.0.1 with a certificate of
our own, trusted through SSL_CERT_FILE (which `ssl.create_default_context()` reads)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fieldpipe.webhooks import transport
from fieldpipe.webhooks.targets import Target

HOST = "hooks.example.test"


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def https_receiver(tmp_path, monkeypatch):
    """`start(certificate_name) -> (port, received)`: an HTTPS server answering 202; `received` records each
    request's Host header, body and the TLS server name (SNI) the client asked for."""
    servers = []

    def start(certificate_name: str):
        cert_file, key_file = _self_signed(tmp_path, certificate_name)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # our certificate is the one trusted authority
        received: list[dict] = []
        names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        context.sni_callback = lambda sock, name, ctx: names.append(name)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"host": self.headers["Host"], "body": body, "sni": names[-1]})
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # the handshake happens in the request thread: a client that never sends one cannot stall the server
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1], received

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _target(scheme: str, port: int, host: str = HOST) -> Target:
    return Target(url=f"{scheme}://{host}:{port}/hook", scheme=scheme, host=host, port=port, path="/hook",
                  address="127.0.0.1")


def test_https_goes_to_the_checked_address_and_speaks_to_the_urls_host(https_receiver):
    port, received = https_receiver(HOST)
    result = transport.post(_target("https", port), b'{"event": "flag.opened"}',
                            {"Content-Type": "application/json"}, timeout=10, max_body=1024)
    assert (result.status_code, result.error, result.body_excerpt) == (202, None, "ok")
    # the name was never resolved (it does not exist): the socket went to the checked address, while the
    # certificate, the server name and the Host header are the URL's
    assert received == [{"host": f"{HOST}:{port}", "body": b'{"event": "flag.opened"}', "sni": HOST}]


def test_https_refuses_a_certificate_for_another_name(https_receiver):
    port, received = https_receiver("someone-else.example.test")
    result = transport.post(_target("https", port), b"{}", {}, timeout=10, max_body=1024)
    assert result.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in result.error or "certificate" in result.error.lower()
    assert received == []


def _post_in_thread(target: Target, timeout: float) -> tuple[threading.Thread, list]:
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(
        transport.post(target, b"{}", {}, timeout=timeout, max_body=1024)), daemon=True)
    worker.start()
    return worker, outcome


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_receiver_that_never_takes_the_connection_costs_the_timeout_not_more(scheme):
    # A listening socket whose one-place queue is full: the kernel drops further handshakes, so connecting
    # hangs until the client's own timeout (the watchdog cannot help: no socket exists yet to shut).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        while True:  # fill the queue until a connection no longer completes
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(("127.0.0.1", port))
            except OSError:
                probe.close()
                break
            queued.append(probe)
        started = time.monotonic()
        worker, outcome = _post_in_thread(_target(scheme, port, host="127.0.0.1"), timeout=1.0)
        worker.join(30)
        assert not worker.is_alive(), "the POST outlived its timeout by far"
        [result] = outcome
        assert result.status_code is None and "timed out" in result.error
        assert time.monotonic() - started < 20
    finally:
        for probe in queued:
            probe.close()
        listener.close()


def test_an_https_receiver_that_never_answers_the_handshake_costs_the_timeout(tmp_path, monkeypatch):
    # The connection is taken (by the kernel) but no TLS server ever speaks: the handshake must time out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        worker, outcome = _post_in_thread(_target("https", listener.getsockname()[1]), timeout=1.0)
        worker.join(30)
        assert not worker.is_alive(), "the TLS handshake outlived the timeout by far"
        [result] = outcome
        assert result.status_code is None and "timed out" in result.error
    finally:
        listener.close()


def test_a_session_keeps_the_connection_and_resends_once_on_one_the_receiver_closed():
    from tests.fakes.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver, transport.Session() as session:
        target = Target(url=receiver.url(), scheme="http", host="127.0.0.1", port=receiver.port, path="/hooks",
                        address="127.0.0.1")
        for body in (b"1", b"2"):
            assert session.post(target, body, {}, timeout=5, max_body=1024).status_code == 200
        assert len({r.peer for r in receiver.requests}) == 1  # kept alive
        receiver.stop()
        receiver.start()  # the kept connection is dead now
        assert session.post(target, b"3", {}, timeout=5, max_body=1024).status_code == 200
        assert [r.body for r in receiver.requests] == [b"1", b"2", b"3"]
