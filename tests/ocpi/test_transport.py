"""Transport: auth header forms, envelope, request ids, status codes of every transport error; and the
outbound policy against real local servers (drip-feeding, oversized, loopback / private / link-local
targets, redirects, names resolving to loopback)."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from ocpi import services
from ocpi.client import CallFailed, call_json, client_for
from ocpi.models import ChargingProfileCall, OcpiParty, Session
from smatch import outbound

from ..raw_tcp import RawServer
from .conftest import TOKEN, session_payload
from .loopback import ok

SESSION_PATH = "2.2.1/sessions/NL/CPO/S1"


def test_envelope_and_request_ids_are_echoed(ocpi, party):
    response = ocpi("GET", "versions", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-1"
    assert response["X-Correlation-ID"] == "corr-1"
    body = response.envelope
    assert body["status_code"] == 1000
    assert body["timestamp"].endswith("Z")
    assert body["data"] == [{"version": "2.2.1", "url": "http://127.0.0.1:8000/ocpi/2.2.1/"}]


def test_missing_request_ids_get_fresh_ones(ocpi, party):
    response = ocpi("GET", "versions")
    assert len(response["X-Request-ID"]) == 36 and len(response["X-Correlation-ID"]) == 36


@pytest.mark.parametrize("encode", [True, False], ids=["base64", "raw"])
def test_right_token_in_both_forms(ocpi, party, encode):
    response = ocpi("PUT", SESSION_PATH, session_payload(), encode=encode)
    assert response.status_code == 201, response.envelope
    assert response.envelope["status_code"] == 1000
    assert response["OCPI-from-party-id"] == "SCS" and response["OCPI-to-party-id"] == "CPO"


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_missing_or_wrong_token_is_401_and_stores_nothing(ocpi, party, token):
    response = ocpi("PUT", SESSION_PATH, session_payload(), token=token)
    assert response.status_code == 401
    assert response.envelope["status_code"] == 2000
    assert "data" not in response.envelope
    assert not Session.objects.exists()


def test_other_auth_scheme_is_401(ocpi, party):
    response = ocpi("GET", "versions", token=None, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 401


def test_revoked_token_is_401(ocpi, party):
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REVOKED)
    assert ocpi("GET", "versions").status_code == 401
    assert ocpi("PUT", SESSION_PATH, session_payload()).status_code == 401


def test_pending_token_only_reaches_versions_and_credentials(ocpi, party):
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.PENDING)
    assert ocpi("GET", "versions").status_code == 200
    assert ocpi("GET", "2.2.1").status_code == 200
    assert ocpi("GET", "2.2.1/credentials").status_code == 200
    response = ocpi("PUT", SESSION_PATH, session_payload())
    assert response.status_code == 401
    assert not Session.objects.exists()


def test_malformed_json_is_400(ocpi, party):
    response = ocpi("PUT", SESSION_PATH, raw=b'{"id": "S1",')
    assert response.status_code == 400
    assert response.envelope["status_code"] == 2000
    assert "not valid JSON" in response.envelope["status_message"]
    assert not Session.objects.exists()


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"NaN", b'{"kwh": Infinity}'])
def test_non_json_bodies_are_400(ocpi, party, raw):
    assert ocpi("PUT", SESSION_PATH, raw=raw).status_code == 400


def test_oversized_body_is_413(ocpi, party, settings):
    settings.OCPI_MAX_BODY_BYTES = 1000
    response = ocpi("PUT", SESSION_PATH, session_payload(meter_id="x" * 2000))
    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in response.envelope["status_message"]
    assert not Session.objects.exists()


def test_wrong_method_is_405_with_allow(ocpi, party):
    response = ocpi("DELETE", SESSION_PATH)
    assert response.status_code == 405
    assert response["Allow"] == "PUT, PATCH, GET"
    assert response.envelope["status_code"] == 2000


def test_unknown_path_is_404_envelope(ocpi, party):
    response = ocpi("GET", "2.2.1/tariffs")
    assert response.status_code == 404
    assert response.envelope["status_code"] == 2000


def test_trailing_slash_is_accepted(ocpi, party):
    assert ocpi("GET", "versions/").status_code == 200
    assert ocpi("PUT", SESSION_PATH + "/", session_payload()).status_code == 201


def test_version_details_list_our_modules(ocpi, party):
    data = ocpi("GET", "2.2.1").envelope["data"]
    assert data["version"] == "2.2.1"
    modules = {(e["identifier"], e["role"]) for e in data["endpoints"]}
    assert ("sessions", "RECEIVER") in modules
    assert ("chargingprofiles", "SENDER") in modules
    assert ("credentials", "SENDER") in modules


# --- the outbound policy ---------------------------------------------------------------------------


@pytest.fixture
def raw_server():
    servers = []

    def make(serve):
        server = RawServer(serve)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """Headers, then one byte of body every 0.2 s, forever: each read is quick, the whole never ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    while not stop.wait(0.2):
        conn.sendall(b" ")


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10000:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


def huge(conn: socket.socket, stop: threading.Event) -> None:
    """A 300 MiB reply (no Content-Length, streamed as fast as the client reads)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(300 * 16):
        if stop.is_set():
            return
        conn.sendall(chunk)


def answer(status: str, body: bytes, extra: str = ""):
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
                     .encode() + body)
    return serve


@pytest.mark.parametrize("serve", [drip, drip_headers], ids=["body", "headers"])
def test_a_drip_feeding_party_is_cut_at_the_total_deadline(settings, raw_server, serve):
    settings.OCPI_HTTP_TIMEOUT_S = 1.5
    server = raw_server(serve)
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        call_json("GET", f"{server.url()}/versions", "t", what="could not fetch your versions")
    elapsed = time.monotonic() - started
    assert str(caught.value) == "could not fetch your versions: timeout" and caught.value.transient
    assert 1.4 < elapsed < 2.5, elapsed


def test_an_oversized_reply_is_cut_without_filling_memory(settings, raw_server):
    settings.OUTBOUND_MAX_BYTES = 1024 * 1024
    settings.OCPI_HTTP_TIMEOUT_S = 20
    server = raw_server(huge)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(CallFailed) as caught:
            call_json("GET", f"{server.url()}/versions", "t", what="GET versions")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "reply larger than 1048576 bytes"
    assert peak < 8 * 1024 * 1024, peak  # the cap plus buffers, not 300 MiB
    assert time.monotonic() - started < 5


def test_a_declared_oversized_reply_is_refused_before_reading(settings, raw_server):
    settings.OUTBOUND_MAX_BYTES = 1000
    settings.OCPI_HTTP_TIMEOUT_S = 10

    def declares_a_gigabyte(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n{}")
        stop.wait(10)

    server = raw_server(declares_a_gigabyte)
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        call_json("GET", f"{server.url()}/v", "t", what="GET versions")
    assert caught.value.reason == "reply larger than 1000 bytes"
    assert time.monotonic() - started < 2  # refused on the header, not after waiting for the body


def test_errors_name_the_failure_not_the_targets_reply(raw_server):
    server = raw_server(answer("500 Internal Server Error", b"SECRET internal page: db password=hunter2"))
    with pytest.raises(CallFailed) as caught:
        call_json("GET", f"{server.url()}/versions", "t", what="could not fetch your versions")
    assert str(caught.value) == "could not fetch your versions: HTTP 500"
    assert (caught.value.http_status, caught.value.transient) == (500, True)


def test_a_closed_port_reads_like_any_connection_failure():
    with pytest.raises(CallFailed) as caught:
        call_json("GET", "http://127.0.0.1:9/versions", "t", what="GET versions")
    assert str(caught.value) == "GET versions: connection failed"  # not "connection refused": no port scanner


def test_redirects_are_not_followed(raw_server):
    inside = raw_server(answer("200 OK", b'{"status_code": 1000, "data": []}'))
    outside = raw_server(answer("307 Temporary Redirect", b"", f"Location: {inside.url()}/internal\r\n"))
    with pytest.raises(CallFailed) as caught:
        call_json("GET", f"{outside.url()}/versions", "t", what="GET versions")
    assert caught.value.reason == "HTTP 307 (redirects are not followed)"
    time.sleep(0.1)
    assert inside.accepted == 0


@pytest.fixture
def production_policy(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/internal",  # loopback
    "http://localhost:{port}/internal",  # a name resolving to loopback
    "http://[::1]:{port}/internal",  # IPv6 loopback
    "http://[::ffff:127.0.0.1]:{port}/internal",  # IPv4-mapped loopback
    "http://10.1.2.3:{port}/internal",  # private
    "http://192.168.0.1:{port}/internal",  # private
    "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "http://224.0.0.1:{port}/",  # multicast
    "http://0.0.0.0:{port}/",  # unspecified
])
def test_private_targets_are_refused_in_production_and_never_contacted(production_policy, raw_server, target):
    server = raw_server(answer("200 OK", b'{"status_code": 1000, "data": []}'))
    with pytest.raises(CallFailed) as caught:
        call_json("GET", target.format(port=server.port), "t", what="could not fetch your versions")
    assert str(caught.value) == "could not fetch your versions: address not allowed"
    assert not caught.value.transient
    time.sleep(0.1)
    assert server.accepted == 0


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/", "http:///nohost"])
def test_other_schemes_are_refused(target):
    with pytest.raises(CallFailed) as caught:
        call_json("GET", target, "t", what="GET versions")
    assert not caught.value.transient


def test_the_policy_allows_public_addresses_only():
    for address in ("8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"):
        assert outbound.address_allowed(address, private_ok=False)
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.1.1", "fe80::1", "::1",
                    "fc00::1", "224.0.0.1", "0.0.0.0", "100.64.0.1", "::ffff:10.0.0.1"):
        assert not outbound.address_allowed(address, private_ok=False), address
    assert outbound.address_allowed("127.0.0.1", private_ok=True)


def test_profile_calls_to_a_private_endpoint_are_refused_in_production(production_policy, party, cpo_server):
    """The fan-out obeys the same policy: a refused target is a final answer, never retried."""
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E1",
        connector_id="1", status="ACTIVE", start_date_time=datetime(2025, 5, 6, tzinfo=UTC), kwh=1.0,
        last_updated=datetime(2025, 5, 6, tzinfo=UTC))
    target = services.ProfileTarget(1, session.pk, "S1", party.pk, "NL", "CPO", datetime(2025, 5, 6, 1, tzinfo=UTC), 8)
    [sent] = services.send_profiles([target], "SET", datetime(2025, 5, 6, tzinfo=UTC))
    assert sent.disposition == "refused"
    assert sent.outcome.error == "refused by policy: address not allowed"
    assert cpo_server.calls == []
    assert ChargingProfileCall.objects.get(id=sent.call_id).response_result == "ERROR"
    assert isinstance(sent.call_id, uuid.UUID)


@hyp_settings(max_examples=300, deadline=None)
@given(st.one_of(*(st.ip_addresses(network=net) for net in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "224.0.0.0/4",
    "100.64.0.0/10", "::1/128", "fe80::/10", "fc00::/7", "ff00::/8"))))
def test_no_private_loopback_link_local_or_multicast_address_is_allowed(address):
    assert not outbound.address_allowed(str(address), private_ok=False)
    mapped = f"::ffff:{address}" if address.version == 4 else None
    if mapped:
        assert not outbound.address_allowed(mapped, private_ok=False)


def test_pages_keep_their_envelope_time_for_the_clock_skew(party, cpo_server, clock):
    """The CPO's envelope `timestamp` of the last page read, with our clock at receipt."""
    cpo_server.route("GET", "/ocpi/2.2.1/sessions", lambda call: ok([]))  # loopback.ok stamps 2025-05-06T17:04:00Z
    client = client_for(party)
    assert list(client.iter_sessions(datetime(2025, 5, 6, tzinfo=UTC))) == []
    assert client.last_envelope == (datetime(2025, 5, 6, 17, 4, tzinfo=UTC), clock.now())
    assert cpo_server.calls[-1].query["date_from"] == "2025-05-06T00:00:00Z"
