"""Server-side request forgery through the credentials door (issue #11, finding 3), end to end.

The attack as it was shown: a holder of token A POSTs credentials whose `url` points into our
network; the web server fetched it and echoed the reply in the 3001 message. Here, under the
production policy (`OUTBOUND_ALLOW_PRIVATE=False`, the production default), every such target is
refused before a connection is made: a listening socket on the target counts zero accepted
connections, the answer says what failed in our words, and nothing of the target's reply (a
secret it would serve) reaches the caller. The same holds for a registered party's credentials PUT,
and for a public host that redirects to loopback (the redirect is not followed).

The transport policy itself (every address class, schemes, the resolver) is tested in
tests/ocpi/test_transport.py; this file is the door.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import pytest
import requests
from django.core.management import call_command

from ocpi.models import OcpiParty, OcpiPartyRole, hash_token
from smatch import outbound

from ..raw_tcp import RawServer

SECRET = b"INTERNAL-ONLY admin password=hunter2"
TOKEN_C = "registered-party-token-c"


class Listener(RawServer):
    """Counts accepted connections and answers each with `reply` (or a 200 + SECRET); with `hold`,
    only once it is set (a slow party)."""

    def __init__(self, host: str = "127.0.0.1", reply: bytes | None = None,
                 hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.reply = reply or (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                               + str(len(SECRET)).encode() + b"\r\nConnection: close\r\n\r\n" + SECRET)
        super().__init__(self._answer, host)

    def url(self, path: str = "/internal", host: str | None = None) -> str:
        return super().url(path, host)

    def _answer(self, conn: socket.socket, stop: threading.Event) -> None:
        if self.hold is not None:
            self.hold.wait(10)
        conn.sendall(self.reply)


@pytest.fixture
def listener():
    made: list[Listener] = []

    def make(**kwargs) -> Listener:
        made.append(Listener(**kwargs))
        return made[-1]

    yield make
    for one in made:
        if one.hold is not None:
            one.hold.set()
        one.close()


@pytest.fixture
def production(live_server, settings):
    """Our own server on loopback (it is the one being attacked), the production outbound policy."""
    settings.OCPI_BASE_URL = f"{live_server.url}/ocpi"
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OCPI_HTTP_TIMEOUT_S = 2.0
    return settings.OCPI_BASE_URL


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


def post_credentials(ours: str, token: str, url: str, http_status: int = 200) -> dict:
    body = {"token": "their-token-b", "url": url,
            "roles": [{"role": "CPO", "business_details": {"name": "Mallory"}, "party_id": "MAL",
                       "country_code": "NL"}]}
    answer = requests.post(f"{ours}/2.2.1/credentials", json=body,
                           headers={"Authorization": f"Token {b64(token)}"}, timeout=20)
    assert answer.status_code == http_status, answer.text
    return answer.json()


def token_a(name: str = "Mallory") -> str:
    out = io.StringIO()
    call_command("ocpi_issue_token", name, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


TARGETS = {
    "loopback": lambda s: s.url(),
    "name resolving to loopback": lambda s: s.url(host="localhost"),
    "IPv4-mapped loopback": lambda s: s.url(host="[::ffff:127.0.0.1]"),
    "private": lambda s: f"http://10.0.0.1:{s.port}/internal",
    "link-local (cloud metadata)": lambda s: "http://169.254.169.254/latest/meta-data/",
}


@pytest.mark.parametrize("kind", TARGETS)
def test_credentials_post_to_an_internal_target_is_refused_and_never_connects(production, listener, kind):
    inside = listener()
    answer = post_credentials(production, token_a(), TARGETS[kind](inside))
    assert answer["status_code"] == 3001
    assert answer["status_message"] == "could not fetch your versions: address not allowed", answer
    time.sleep(0.1)
    assert inside.accepted == 0
    assert "hunter2" not in str(answer) and "INTERNAL" not in str(answer)
    assert OcpiParty.objects.get(name="Mallory").status == OcpiParty.Status.PENDING


def test_a_closed_port_and_an_open_one_answer_alike(production, listener, settings):
    """No port scanner: with private targets allowed (development), a closed port and a listener that
    answers with something else than OCPI get the caller no detail of the target's reply."""
    settings.OUTBOUND_ALLOW_PRIVATE = True
    inside = listener()
    closed = post_credentials(production, token_a("Mallory 1"), "http://127.0.0.1:9/internal")
    opened = post_credentials(production, token_a("Mallory 2"), inside.url())
    assert closed["status_message"] == "could not fetch your versions: connection failed"
    assert inside.accepted == 1 and opened["status_code"] == 3001
    assert "hunter2" not in str(opened) and "INTERNAL" not in str(opened)


def test_a_redirect_from_a_public_host_to_loopback_is_not_followed(production, listener, monkeypatch):
    """127.0.0.2 stands for a public host (the policy is told so); it redirects to a loopback service."""
    inside = listener()
    public_ok = outbound.address_allowed
    monkeypatch.setattr(outbound, "address_allowed",
                        lambda address, **kw: address == "127.0.0.2" or public_ok(address, **kw))
    redirect = (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {inside.url()}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n").encode()
    public = listener(host="127.0.0.2", reply=redirect)
    answer = post_credentials(production, token_a(), public.url("/versions"))
    assert answer["status_code"] == 3001
    assert answer["status_message"] == "could not fetch your versions: HTTP 307 (redirects are not followed)"
    time.sleep(0.1)
    assert (public.accepted, inside.accepted) == (1, 0)


def test_a_registered_partys_credentials_put_to_loopback_is_refused_and_never_connects(production, listener):
    party = OcpiParty.objects.create(
        name="Registered CPO", country_code="NL", party_id="REG", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token(TOKEN_C), token_theirs="scsp-token", versions_url="https://cpo.example/versions")
    OcpiPartyRole.objects.create(party=party, country_code="NL", ocpi_party_id="REG", role="CPO")
    inside = listener()
    body = {"token": "their-new-token", "url": inside.url(),
            "roles": [{"role": "CPO", "business_details": {"name": "R"}, "party_id": "REG", "country_code": "NL"}]}
    answer = requests.put(f"{production}/2.2.1/credentials", json=body,
                          headers={"Authorization": f"Token {b64(TOKEN_C)}"}, timeout=20).json()
    assert answer["status_code"] == 3001
    assert answer["status_message"] == "could not fetch your versions: address not allowed", answer
    time.sleep(0.1)
    assert inside.accepted == 0
    party.refresh_from_db()
    assert (party.token_theirs, party.versions_url) == ("scsp-token", "https://cpo.example/versions")


def test_repeated_attempts_lock_token_a(production, listener, settings):
    """The probe cannot be repeated without limit: past the setting, token A is locked (2000, no call)."""
    settings.OCPI_CREDENTIALS_MAX_FAILURES = 2
    settings.OUTBOUND_ALLOW_PRIVATE = True  # even where private targets are allowed (development)
    inside = listener()
    token = token_a()
    codes = [post_credentials(production, token, inside.url())["status_code"] for _ in range(2)]
    locked = post_credentials(production, token, inside.url(), http_status=401)
    assert codes == [3001, 3001] and locked["status_code"] == 2000
    assert "too many failed credentials attempts" in locked["status_message"]
    assert inside.accepted == 2
    assert OcpiParty.objects.get(name="Mallory").token_locked_at is not None


def test_one_exchange_at_a_time_per_token(production, listener, settings):
    """A slow target holds one web thread per token, not one per request: while a credentials
    exchange with a token is calling out, another one with the same token is refused at once
    (429 / 2000) without a call; once the first has been answered (3001 timeout, counted), it may go."""
    settings.OUTBOUND_ALLOW_PRIVATE = True  # the slow party is on loopback here
    hold = threading.Event()
    slow = listener(hold=hold)
    token = token_a()
    first: list[dict] = []
    worker = threading.Thread(target=lambda: first.append(post_credentials(production, token, slow.url())))
    worker.start()
    deadline = time.monotonic() + 5
    while slow.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.accepted == 1
    started = time.monotonic()
    busy = post_credentials(production, token, slow.url(), http_status=429)
    assert time.monotonic() - started < 1.0
    assert busy["status_code"] == 2000 and "already running" in busy["status_message"]
    worker.join(10)
    assert first[0]["status_message"] == "could not fetch your versions: timeout"
    assert slow.accepted == 1  # the refused attempt made no call
    hold.set()
    assert post_credentials(production, token, slow.url())["status_code"] == 3001  # free again
    assert slow.accepted == 2
