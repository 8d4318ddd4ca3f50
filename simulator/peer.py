"""The party the simulator is connected to (one per simulator): tokens, endpoints, roles."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Peer:
    """The SCSP we are connected to (one per simulator)."""

    token_ours: str = ""  # they send it to us
    token_theirs: str = ""  # we send it to them
    versions_url: str = ""
    endpoints: dict[tuple[str, str], str] = field(default_factory=dict)  # (identifier, role) -> url
    country_code: str = ""
    party_id: str = ""
    roles: list[tuple[str, str]] = field(default_factory=list)  # every (country_code, party_id) it holds

    def holds(self, country_code: str | None, party_id: str | None) -> bool:
        """CiString comparison: the peer's own spelling or any other case."""
        parties = self.roles or [(self.country_code, self.party_id)]
        return any((country_code or "").upper() == cc.upper() and (party_id or "").upper() == pid.upper()
                   for cc, pid in parties)

    @property
    def registered(self) -> bool:
        return bool(self.token_ours and self.token_theirs)

    def endpoint(self, identifier: str, role: str) -> str | None:
        return self.endpoints.get((identifier, role)) or next(
            (u for (i, _), u in self.endpoints.items() if i == identifier), None)
