"""Our OCPI 2.2.1 endpoints. Each handler takes (request, party, body, **url) and calls one service."""

from __future__ import annotations

import uuid

from .. import services
from ..errors import UnknownObject
from .http import Reply, ocpi_view


def _versions(request, party, body) -> Reply:
    return Reply(services.versions())


def _version_details(request, party, body) -> Reply:
    return Reply(services.version_details())


def _credentials_get(request, party, body) -> Reply:
    # The token they use with us is the one in this request: we only keep its hash.
    return Reply(services.our_credentials(request.ocpi_token))


def _credentials_post(request, party, body) -> Reply:
    return Reply(services.accept_credentials(party, body, method="POST"))


def _credentials_put(request, party, body) -> Reply:
    return Reply(services.accept_credentials(party, body, method="PUT"))


def _credentials_delete(request, party, body) -> Reply:
    services.unregister(party)
    return Reply()


def _session_put(request, party, body, country_code, party_id, session_id) -> Reply:
    _, created = services.receive_session(party, country_code, party_id, session_id, body, partial=False)
    return Reply(http_status=201 if created else 200)


def _session_patch(request, party, body, country_code, party_id, session_id) -> Reply:
    services.receive_session(party, country_code, party_id, session_id, body, partial=True)
    return Reply()


def _session_get(request, party, body, country_code, party_id, session_id) -> Reply:
    return Reply(services.session_object(party, country_code, party_id, session_id))


def _profile_result_post(request, party, body, call_id) -> Reply:
    try:
        parsed_id = uuid.UUID(call_id)
    except ValueError:
        raise UnknownObject(f"{call_id} is not one of our call ids") from None
    services.record_profile_result(party, parsed_id, body)
    return Reply()


def _active_profile_put(request, party, body, session_id) -> Reply:
    services.record_active_profile(party, session_id, body)
    return Reply()


versions = ocpi_view({"GET": _versions}, allow_pending=True, functional=False)
version_details = ocpi_view({"GET": _version_details}, allow_pending=True, functional=False)
credentials = ocpi_view(
    {"GET": _credentials_get, "POST": _credentials_post, "PUT": _credentials_put, "DELETE": _credentials_delete},
    allow_pending=True, functional=False,
)
session = ocpi_view({"PUT": _session_put, "PATCH": _session_patch, "GET": _session_get})
profile_result = ocpi_view({"POST": _profile_result_post})
active_profile = ocpi_view({"PUT": _active_profile_put})
