"""BRP accounts: the policy rules and the API token (only its hash is stored)."""

from __future__ import annotations

from django.db import IntegrityError

from ..models import Brp


def parse_policy(text: str) -> tuple[str, int | None]:
    """`manual`, `auto` or `auto-after=SECONDS` (the brp_create command's syntax)."""
    if text in (Brp.Policy.MANUAL, Brp.Policy.AUTO):
        return text, None
    if text.startswith("auto-after="):
        seconds = text.split("=", 1)[1]
        if seconds.isdigit() and int(seconds) > 0:
            return Brp.Policy.AUTO_AFTER, int(seconds)
    raise ValueError(f"bad policy {text!r}: use manual, auto or auto-after=SECONDS")


class BrpRefused(ValueError):
    """A BRP account that breaks a rule; `code` names the rule."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def check_brp(policy: str, auto_after_s: int | None) -> None:
    """The rules of a BRP account, for every door (command, admin)."""
    if policy == Brp.Policy.AUTO_AFTER and not auto_after_s:
        raise BrpRefused("auto_after needs a number of seconds", "auto_after_needs_seconds")


def create_brp(name: str, policy: str = Brp.Policy.MANUAL, auto_after_s: int | None = None) -> tuple[Brp, str]:
    """Create a BRP and return it with its API token (shown once: only the hash is stored)."""
    check_brp(policy, auto_after_s)
    brp = Brp(name=name, policy=policy, auto_after_s=auto_after_s)
    token = brp.rotate_token()
    try:
        brp.save()
    except IntegrityError as exc:
        raise ValueError(f"a BRP named {name!r} exists already") from exc
    return brp, token


def rotate_brp_token(brp_id: int) -> str:
    brp = Brp.objects.get(pk=brp_id)
    token = brp.rotate_token()
    brp.save(update_fields=["token_hash", "token_prefix"])
    return token
