"""Staff accounts with one of the two roles (`smatch.roles`), for the `staff_create` command and the local server."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import connection, transaction

from smatch.roles import ANALYSTS, OPERATORS, ensure_groups

ROLES = {"operator": OPERATORS, "analyst": ANALYSTS}


class StaffRefused(ValueError):
    """The account cannot be created; `code` says why (`bad_role`, `exists`, `no_tables`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def create_staff(username: str, role: str) -> tuple[AbstractUser, str]:
    """A staff user in the role's group, with a random one-time password (returned, never stored in clear)."""
    if role not in ROLES:
        raise StaffRefused("bad_role", f"role {role!r} is unknown: use {' or '.join(ROLES)}")
    users = get_user_model()
    if users._meta.db_table not in connection.introspection.table_names():
        # A fresh clone's var/smatch.sqlite3 before the first `serve`: a sentence, not a traceback.
        raise StaffRefused("no_tables", f"the database {connection.settings_dict['NAME']} has no tables yet: "
                                        "start `.venv/bin/python manage.py serve` once, or run "
                                        "`.venv/bin/python manage.py migrate`")
    if users.objects.filter(username=username).exists():
        raise StaffRefused("exists", f"a user named {username!r} exists already")
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        ensure_groups()  # the groups exist after migrate; this covers a database migrated before them
        user = users.objects.create_user(username=username, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=ROLES[role]))
    return user, password


def any_staff() -> bool:
    return get_user_model().objects.filter(is_staff=True, is_active=True).exists()
