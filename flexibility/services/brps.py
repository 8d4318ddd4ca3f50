"""BRP accounts: the policy rules and the API token (only its hash is stored).

Every door that makes or edits an account (the `brp_create` command, the admin) goes through
`create_brp` / `update_brp`. The rules are the model's constraints: the database holds them, the
admin form validates them, `check_brp` checks them for the other doors.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from smatch.errors import Refusal

from ..error_codes import FlexibilityErrorCode as Code
from ..models import Brp


class BrpRefused(Refusal):
    """A BRP account that breaks a rule: `code` says which."""


def parse_policy(text: str) -> tuple[str, int | None]:
    """`manual`, `auto` or `auto-after=SECONDS` (the brp_create command's syntax)."""
    if text in (Brp.Policy.MANUAL, Brp.Policy.AUTO):
        return text, None
    if text.startswith("auto-after="):
        seconds = text.split("=", 1)[1]
        if seconds.isdigit() and int(seconds) > 0:
            return Brp.Policy.AUTO_AFTER, int(seconds)
    raise BrpRefused(Code.POLICY_INVALID, f"bad policy {text!r}: use manual, auto or auto-after=SECONDS")


def check_brp(policy: str, auto_after_s: int | None) -> None:
    """The rules of a BRP account: the model's constraints (the database holds them too), checked
    before a save so a door gets the rule's code instead of a database error."""
    try:
        Brp(policy=policy, auto_after_s=auto_after_s).validate_constraints()
    except ValidationError as exc:
        first = next(error for errors in exc.error_dict.values() for error in errors)
        raise BrpRefused(Code(first.code), first.message) from None


def _save(brp: Brp, **kwargs) -> None:
    try:
        with transaction.atomic():
            brp.save(**kwargs)
    except IntegrityError as exc:
        raise BrpRefused(Code.BRP_NAME_TAKEN, f"a BRP named {brp.name!r} exists already") from exc


def create_brp(name: str, policy: str = Brp.Policy.MANUAL, auto_after_s: int | None = None) -> tuple[Brp, str]:
    """Create a BRP and return it with its API token (shown once: only the hash is stored)."""
    check_brp(policy, auto_after_s)
    brp = Brp(name=name, policy=policy, auto_after_s=auto_after_s)
    token = brp.rotate_token()
    _save(brp)
    return brp, token


def update_brp(brp_id: int, name: str, policy: str, auto_after_s: int | None, is_active: bool) -> Brp:
    """Edit an account (the token stays: `rotate_brp_token` changes it)."""
    check_brp(policy, auto_after_s)
    brp = Brp.objects.get(pk=brp_id)
    brp.name, brp.policy, brp.auto_after_s, brp.is_active = name, policy, auto_after_s, is_active
    _save(brp, update_fields=["name", "policy", "auto_after_s", "is_active"])
    return brp


def rotate_brp_token(brp_id: int) -> str:
    """A new API token for the BRP (the old one stops working); returned once."""
    brp = Brp.objects.get(pk=brp_id)
    token = brp.rotate_token()
    brp.save(update_fields=["token_hash", "token_prefix"])
    return token
