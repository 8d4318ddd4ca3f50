"""The credentials handshake (credentials.asciidoc), both directions."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from simulator import ocpi
from simulator.peer import Peer

if TYPE_CHECKING:
    from simulator.server import SimulatorServer


class RegistrationError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


async def fetch_peer(server: SimulatorServer, versions_url: str, token: str, roles: list) -> Peer:
    """Read the other party's versions and 2.2.1 endpoints with `token` (3001/3002 on failure)."""
    try:
        versions = await server.get_json(versions_url, token)
        match = next((v for v in versions if v.get("version") == ocpi.VERSION), None)
        if match is None:
            raise RegistrationError(3002, f"no OCPI {ocpi.VERSION} at {versions_url}")
        details = await server.get_json(match["url"], token)
    except RegistrationError:
        raise
    except Exception as exc:
        raise RegistrationError(3001, f"cannot use the client's API: {exc}") from exc
    endpoints = {(e["identifier"], e.get("role", "")): e["url"] for e in details.get("endpoints", [])}
    if not any(i == "sessions" for i, _ in endpoints):
        raise RegistrationError(3003, "the other party offers no sessions endpoint to push to")
    parties = peer_parties(roles)
    cc, party = parties[0] if parties else ("", "")
    return Peer(token_theirs=token, versions_url=versions_url, endpoints=endpoints, country_code=cc, party_id=party,
                roles=parties)


def peer_parties(roles: Any) -> list[tuple[str, str]]:
    """(country_code, party_id) of every CredentialsRole the other party sent, in its order."""
    if not isinstance(roles, list):
        return []
    return [(str(r.get("country_code", "")), str(r.get("party_id", ""))) for r in roles if isinstance(r, dict)]


async def register_with(server: SimulatorServer, versions_url: str, token_a: str) -> Peer:
    """We initiate: read their endpoints with token A, POST our credentials with a fresh token B,
    keep the token C they answer with for all further calls to them."""
    probe = await fetch_peer(server, versions_url, token_a, [])
    cred_url = probe.endpoint("credentials", "RECEIVER")
    if not cred_url:
        raise RegistrationError(3003, "the other party has no credentials endpoint")
    token_b = secrets.token_urlsafe(32)
    server.peer = Peer(token_ours=token_b)  # they call our versions with B during the POST
    cfg = server.config
    body = ocpi.credentials_object(token_b, f"{server.base_url}/versions", cfg.country_code, cfg.party_id,
                                   server.business_name, server.our_roles())
    headers = {"Authorization": server.auth(token_a), "X-Request-ID": secrets.token_hex(8),
               "X-Correlation-ID": secrets.token_hex(8)}
    async with server._http.post(cred_url, json=body, headers=headers) as resp:
        answer = await resp.json(content_type=None)
    if resp.status != 200 or answer.get("status_code") != 1000:
        server.peer = Peer()
        raise RegistrationError(3001, f"registration refused: HTTP {resp.status}, {answer}")
    data = answer["data"]
    parties = peer_parties(data.get("roles"))
    cc, party = parties[0] if parties else ("", "")
    peer = Peer(token_ours=token_b, token_theirs=data["token"], versions_url=data.get("url", versions_url),
                endpoints=probe.endpoints, country_code=cc, party_id=party, roles=parties)
    server.peer = peer
    server.token_a = ""
    return peer
