"""One party, one identity: the (country_code, party_id) pairs a party holds, matched without case.

A party holds the identities of the CredentialsRoles it sent (a hub: its own and those of the CPOs
it forwards). An identity held by a party not revoked cannot be claimed by another one; an operator
releases it (admin) when a CPO legitimately moves to a new registration.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models.functions import Upper

from smatch import clock

from ..errors import OcpiError, UnableToUseClientApi, UnknownObject
from ..models import OcpiParty, OcpiPartyRole


class IdentityTaken(UnableToUseClientApi):
    """3001: a role in the credentials names an identity another registered party holds."""


def identity_key(country_code: str, party_id: str) -> tuple[str, str]:
    return country_code.upper(), party_id.upper()


# party pk -> (its updated_at when read, its identities). Every change of a party's identities bumps
# OcpiParty.updated_at, and each request reads the party row afresh, so an entry is never stale.
_held: dict[int, tuple[object, dict[tuple[str, str], tuple[str, str]]]] = {}


def held_identities(party: OcpiParty) -> dict[tuple[str, str], tuple[str, str]]:
    """{(CC, PID) upper: (cc, pid) as the party spelled them} of the party's active roles.

    Kept per process against the party's `updated_at`: a push costs no query for it.
    """
    entry = _held.get(party.pk)
    if entry is not None and entry[0] == party.updated_at:
        return entry[1]
    identities = _load_identities(party)
    _held[party.pk] = (party.updated_at, identities)
    return identities


def _changed(party: OcpiParty) -> None:
    """Record that the party's identities changed (and forget them here)."""
    # Strictly later even under a frozen or coarse clock: other processes compare it for equality.
    party.updated_at = max(clock.now(), party.updated_at + timedelta(microseconds=1))
    OcpiParty.objects.filter(pk=party.pk).update(updated_at=party.updated_at)
    _held.pop(party.pk, None)


# A party we register with may push as soon as it has answered our credentials POST, before we have
# stored the roles its answer carries: a request from a party holding no role yet waits this long.
ROLES_SETTLE_S = 2.0


def own_identity(party: OcpiParty, country_code: str, party_id: str) -> tuple[str, str]:
    """The party's own spelling of an identity it holds; UnknownObject (404) when it holds none such."""
    key = identity_key(country_code, party_id)
    known = held_identities(party)
    deadline = time.monotonic() + ROLES_SETTLE_S
    while not known and time.monotonic() < deadline:
        time.sleep(0.05)  # its registration is being completed by another thread: see ROLES_SETTLE_S
        known = _load_identities(party)
    held = known.get(key)
    if held is None:
        raise UnknownObject(f"{country_code}/{party_id} is not an identity of the party of this token")
    return held


def _load_identities(party: OcpiParty) -> dict[tuple[str, str], tuple[str, str]]:
    rows = OcpiPartyRole.objects.filter(party=party, active=True).values_list("country_code", "ocpi_party_id")
    return {identity_key(cc, pid): (cc, pid) for cc, pid in rows}


def claim_roles(party: OcpiParty, roles: list[dict]) -> None:
    """Make `roles` (validated CredentialsRoles) the party's identities, in the caller's transaction.

    Refused (3001) when another party not revoked holds one of them. Roles sharing an identity share
    one row (its `role` lists them).
    """
    merged: dict[tuple[str, str], dict] = {}
    for role in roles:
        key = identity_key(role["country_code"], role["party_id"])
        entry = merged.setdefault(key, {**role, "roles": []})
        entry["roles"].append(role["role"])
    check_identities_free(party, roles)
    OcpiPartyRole.objects.filter(party=party, active=True).update(active=False)
    try:
        with transaction.atomic():  # a concurrent claim of the same identity loses on the unique key
            OcpiPartyRole.objects.bulk_create([
                OcpiPartyRole(party=party, country_code=r["country_code"], ocpi_party_id=r["party_id"],
                              role=",".join(sorted(set(r["roles"]))), business_name=r.get("name", "")[:100])
                for r in merged.values()
            ])
    except IntegrityError:
        raise IdentityTaken("one of your roles was claimed by another party at the same moment") from None
    _changed(party)


def check_identities_free(party: OcpiParty, roles: list[dict]) -> None:
    """Refuse (3001) when a party other than `party`, not revoked, holds one of the roles' identities."""
    wanted = {identity_key(r["country_code"], r["party_id"]) for r in roles}
    taken = (OcpiPartyRole.objects.filter(active=True).exclude(party=party)
             .annotate(cc=Upper("country_code"), pid=Upper("ocpi_party_id"))
             .filter(cc__in=[k[0] for k in wanted], pid__in=[k[1] for k in wanted]))
    for other in taken:
        if (other.cc, other.pid) in wanted:
            raise IdentityTaken(f"{other.country_code}/{other.ocpi_party_id} is held by another registered party; "
                                "ask the SCSP's operator to release it if it is yours")


def retire_identities(party: OcpiParty) -> int:
    """A revoked party holds nothing any more: another registration may claim its identities."""
    retired = OcpiPartyRole.objects.filter(party=party, active=True).update(active=False)
    _changed(party)
    return retired


def release_identity(role_pk: int) -> OcpiPartyRole:
    """Operator action: the identity is free for another party; its holder keeps its data but not the id."""
    role = OcpiPartyRole.objects.filter(pk=role_pk).first()
    if role is None or not role.active:
        raise OcpiError("that identity is not held by anyone")
    OcpiPartyRole.objects.filter(pk=role.pk, active=True).update(active=False)
    _changed(role.party)
    role.active = False
    return role
