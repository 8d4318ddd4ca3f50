"""Sessions pull from the CPO's Sender interface, with OCPI pagination, over a real loopback server."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from ocpi import services, tasks
from ocpi.client import client_for
from ocpi.errors import OcpiClientError
from ocpi.models import OcpiParty, Session, SessionState

from .conftest import THEIR_TOKEN, b64, session_payload
from .loopback import ok

FROM = datetime(2025, 5, 6, 16, 0, tzinfo=UTC)
TO = datetime(2025, 5, 6, 18, 0, tzinfo=UTC)


def serve_sessions(server, sessions: list, server_limit: int = 2) -> None:
    """A Sender that caps pages at `server_limit` and links the next page with all filters."""

    def handler(call):
        offset, limit = int(call.query.get("offset", 0)), min(int(call.query.get("limit", 50)), server_limit)
        page = sessions[offset:offset + limit]
        headers = {"X-Total-Count": str(len(sessions)), "X-Limit": str(server_limit)}
        if offset + limit < len(sessions):
            query = f"offset={offset + limit}&limit={limit}&date_from={call.query['date_from']}"
            headers["Link"] = f'<{server.url}{call.path}?{query}>; rel="next"'
        return ok(page, headers=headers)

    server.route("GET", "/ocpi/2.2.1/sessions", handler)


def five_sessions() -> list:
    return [session_payload(id=f"S{i}", evse_uid=f"E{i}", kwh=float(i)) for i in range(5)]


def test_iter_sessions_follows_links(party, cpo_server):
    serve_sessions(cpo_server, five_sessions())
    items = list(client_for(party).iter_sessions(FROM, TO, page_limit=10))
    assert [s["id"] for s in items] == ["S0", "S1", "S2", "S3", "S4"]
    gets = [c for c in cpo_server.calls if c.method == "GET"]
    assert len(gets) == 3
    assert gets[0].query == {"date_from": "2025-05-06T16:00:00Z", "date_to": "2025-05-06T18:00:00Z",
                             "offset": "0", "limit": "10"}
    assert [g.query["offset"] for g in gets] == ["0", "2", "4"]
    assert all(g.headers["Authorization"] == f"Token {b64(THEIR_TOKEN)}" for g in gets)
    assert len({g.headers["X-Request-ID"] for g in gets}) == 3


def test_a_session_leaving_the_window_mid_pull_does_not_make_the_pull_skip_another(party, cpo_server):
    """S0 is updated after date_to while we page (it leaves [date_from, date_to)): S2 moves from
    offset 2 to 1, and the next link (offset 2) alone would skip it. The total fell by one, so the
    page is asked again one place earlier; what is read twice is yielded once."""
    sessions = [session_payload(id=f"S{i}", evse_uid=f"E{i}", kwh=float(i)) for i in range(6)]
    serve_sessions(cpo_server, sessions)
    first = cpo_server.routes[("GET", "/ocpi/2.2.1/sessions")]

    def leaving(call):
        reply = first(call)
        if call.query.get("offset", "0") == "0" and sessions[0]["id"] == "S0":
            sessions.pop(0)
        return reply

    cpo_server.route("GET", "/ocpi/2.2.1/sessions", leaving)
    items = [s["id"] for s in client_for(party).iter_sessions(FROM, TO, page_limit=10)]
    assert sorted(items) == ["S0", "S1", "S2", "S3", "S4", "S5"]
    assert len(items) == 6
    gets = [c.query["offset"] for c in cpo_server.calls if c.method == "GET"]
    assert gets == ["0", "2", "1", "3"]


def test_pages_overlap_so_a_leaver_hidden_by_a_joiner_skips_nothing(party, cpo_server):
    """After page one, S00 leaves and S25 joins (at the end): the total stays 25 while S10 moves to
    offset 9. Each page is asked from a tenth of a page before its link (10 -> 9, 19 -> 18)."""
    sessions = [session_payload(id=f"S{i:02}", evse_uid=f"E{i}", kwh=float(i)) for i in range(25)]
    serve_sessions(cpo_server, sessions, server_limit=10)
    plain = cpo_server.routes[("GET", "/ocpi/2.2.1/sessions")]

    def churn(call):
        reply = plain(call)
        if call.query.get("offset", "0") == "0" and sessions[0]["id"] == "S00":
            sessions.pop(0)
            sessions.append(session_payload(id="S25", evse_uid="E25"))
        return reply

    cpo_server.route("GET", "/ocpi/2.2.1/sessions", churn)
    items = [s["id"] for s in client_for(party).iter_sessions(FROM, TO, page_limit=10)]
    assert sorted(items) == [f"S{i:02}" for i in range(26)]
    assert [c.query["offset"] for c in cpo_server.calls if c.method == "GET"] == ["0", "9", "18"]


def test_a_sender_without_a_total_count_is_paged_by_its_links_alone(party, cpo_server):
    serve_sessions(cpo_server, five_sessions())
    plain = cpo_server.routes[("GET", "/ocpi/2.2.1/sessions")]

    def no_total(call):
        http, body, headers = plain(call)
        headers.pop("X-Total-Count")
        return http, body, headers

    cpo_server.route("GET", "/ocpi/2.2.1/sessions", no_total)
    assert [s["id"] for s in client_for(party).iter_sessions(FROM, TO)] == ["S0", "S1", "S2", "S3", "S4"]


def test_pull_stores_valid_sessions_and_skips_invalid(party, cpo_server):
    sessions = five_sessions()
    sessions[2]["kwh"] = -1  # invalid: skipped, the rest still stored
    sessions.append(session_payload(id="OTHER", party_id="XYZ"))  # not this party's: skipped
    serve_sessions(cpo_server, sessions)
    report = services.pull_sessions(party, FROM, TO)
    assert (report.received, report.stored, report.invalid, report.refused) == (6, 4, 1, 1)
    assert sorted(Session.objects.values_list("session_id", flat=True)) == ["S0", "S1", "S3", "S4"]
    party.refresh_from_db()
    assert party.sessions_pulled_until == TO
    again = services.pull_sessions(party, FROM, TO)
    assert again.stored == 4 and SessionState.objects.count() == 4  # idempotent


def test_pull_errors_are_transient_for_5xx(party, cpo_server):
    cpo_server.route("GET", "/ocpi/2.2.1/sessions", lambda c: ok(None, 3000, 503))
    with pytest.raises(OcpiClientError) as err:
        services.pull_sessions(party, FROM, TO)
    assert err.value.transient
    party.refresh_from_db()
    assert party.sessions_pulled_until is None


def test_periodic_task_pulls_every_registered_party(party, cpo_server, clock, django_capture_on_commit_callbacks):
    serve_sessions(cpo_server, five_sessions())
    OcpiParty.objects.create(name="pending", token_ours_hash="x" * 64)  # not registered: not pulled
    with django_capture_on_commit_callbacks(execute=True):  # one pull per party, queued on commit
        tasks.pull_sessions.delay()
    assert Session.objects.count() == 5
    first = next(c for c in cpo_server.calls if c.method == "GET")
    assert first.query["date_to"] == "2025-05-06T17:04:00Z"  # now, from the product clock
    assert first.query["date_from"] == "2025-05-05T17:04:00Z"  # first pull: a day back


def test_beat_schedule_has_the_pull():
    from smatch.celery import app

    entry = app.conf.beat_schedule["ocpi-pull-sessions"]
    assert entry["task"] == "ocpi_client.pull_sessions" and entry["schedule"] == 300.0


def test_pull_command(party, cpo_server):
    serve_sessions(cpo_server, five_sessions())
    out = io.StringIO()
    call_command("ocpi_pull_sessions", "--date-from", "2025-05-06T16:00:00Z", stdout=out)
    assert "5 received, 5 stored, 0 invalid" in out.getvalue()


def test_each_pull_reaches_back_the_overlap_to_absorb_clock_skew(party, cpo_server, clock, settings):
    settings.OCPI_PULL_OVERLAP_S = 300
    serve_sessions(cpo_server, five_sessions())
    party.sessions_pulled_until = datetime(2025, 5, 6, 17, 0, tzinfo=UTC)
    party.save()
    services.pull_sessions(party)
    first = next(c for c in cpo_server.calls if c.method == "GET")
    assert first.query["date_from"] == "2025-05-06T16:55:00Z"  # 17:00 less 300 s
    services.pull_sessions(party)  # the overlap stores nothing twice
    assert Session.objects.count() == 5 and SessionState.objects.count() == 5


def test_pull_copes_with_a_falling_total_count(party, cpo_server):
    """Sessions drop out of the window while we page: the total falls, the last link leads to a short page."""
    sessions = five_sessions()

    def handler(call):
        offset = int(call.query.get("offset", 0))
        remaining = sessions[:3] if offset else sessions  # two sessions left the window after page one
        page = remaining[offset:offset + 2]
        headers = {"X-Total-Count": str(len(remaining)), "X-Limit": "2"}
        if offset + 2 < 5:
            headers["Link"] = f'<{cpo_server.url}{call.path}?offset={offset + 2}&limit=2>; rel="next"'
        return ok(page, headers=headers)

    cpo_server.route("GET", "/ocpi/2.2.1/sessions", handler)
    report = services.pull_sessions(party, FROM, TO)
    assert (report.received, report.stored) == (3, 3)  # S0, S1 and S2; the rest comes with the next pull
    # The total fell by two after page one: page two is asked again one place earlier (half its length;
    # which places the two left from is unknown), then the empty page ends it.
    assert [c.query["offset"] for c in cpo_server.calls if c.method == "GET"] == ["0", "2", "1", "3"]


def test_a_pulled_session_far_in_the_future_is_refused(party, cpo_server, clock):
    serve_sessions(cpo_server, [session_payload(id="F1", last_updated="2030-01-01T00:00:00Z")])
    report = services.pull_sessions(party, FROM, TO)
    assert (report.received, report.stored, report.invalid) == (1, 0, 1)
    assert not Session.objects.exists()


def test_the_pull_keeps_the_cpos_clock_skew(party, cpo_server, clock):
    """Its envelopes say 17:04:45 when our clock says 17:04:00: its clock is 45 s ahead."""
    def handler(call):
        status, body, headers = ok([session_payload()])
        return status, {**body, "timestamp": "2025-05-06T17:04:45Z"}, headers

    cpo_server.route("GET", "/ocpi/2.2.1/sessions", handler)
    services.pull_sessions(party, FROM, TO)
    party.refresh_from_db()
    assert party.clock_skew_s == 45.0


def big_sessions(n: int, periods: int) -> list:
    """Sessions with long charging_periods (~120 bytes a period: a day of 5-minute periods is ~35 kB)."""
    out = []
    for i in range(n):
        session = session_payload(id=f"S{i}", evse_uid=f"E{i}", kwh=float(i))
        session["charging_periods"] = [
            {"start_date_time": f"2025-05-06T{16 + m // 60:02d}:{m % 60:02d}:00Z",
             "dimensions": [{"type": "ENERGY", "volume": 0.5}, {"type": "TIME", "volume": 0.0167}]}
            for m in range(periods)]
        out.append(session)
    return out


def test_a_page_over_the_reply_cap_is_asked_again_with_a_smaller_limit(party, cpo_server, settings):
    sessions = big_sessions(5, periods=40)  # ~5.7 kB each
    settings.OUTBOUND_MAX_BYTES = 12_000  # two sessions fit (with the envelope), three do not
    serve_sessions(cpo_server, sessions, server_limit=50)
    report = services.pull_sessions(party, FROM, TO, page_limit=10)
    assert (report.received, report.stored) == (5, 5)
    assert Session.objects.get(session_id="S4").charging_periods[-1]["start_date_time"] == "2025-05-06T16:39:00Z"
    gets = [(c.query["offset"], c.query["limit"]) for c in cpo_server.calls if c.method == "GET"]
    # 10 and 5 were refused by size (never stored); 2 fits, and the next links keep it.
    assert gets == [("0", "10"), ("0", "5"), ("0", "2"), ("2", "2"), ("4", "2")]


def test_one_object_over_the_reply_cap_fails_the_pull_without_a_loop(party, cpo_server, settings):
    settings.OUTBOUND_MAX_BYTES = 3_000  # one session of ~5.7 kB never fits
    serve_sessions(cpo_server, big_sessions(3, periods=40), server_limit=50)
    with pytest.raises(OcpiClientError, match="reply larger than"):
        services.pull_sessions(party, FROM, TO, page_limit=4)
    assert [c.query["limit"] for c in cpo_server.calls if c.method == "GET"] == ["4", "2", "1"]
    party.refresh_from_db()
    assert party.sessions_pulled_until is None  # nothing half-pulled is taken as done
