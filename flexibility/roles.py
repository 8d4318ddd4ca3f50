"""The two staff roles: `operators` decide on signals, `analysts` read and run settlement.

Groups are (re)built after every migrate, so new models' permissions reach them without a
hand-written data migration.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

OPERATORS, ANALYSTS = "operators", "analysts"
PRODUCT_APPS = ("flexibility", "ocpi_client", "settlement")


def _perms(query: Q) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label__in=PRODUCT_APPS).filter(query))


def ensure_groups(**kwargs) -> None:
    views = Q(codename__startswith="view_")
    operator_extra = Q(codename="decide_signal") | Q(codename__endswith="_steeringrule") | Q(
        content_type__app_label="ocpi_client", codename__startswith="change_"
    )
    analyst_extra = Q(content_type__app_label="settlement") & ~Q(codename__startswith="delete_")
    for name, query in ((OPERATORS, views | operator_extra), (ANALYSTS, views | analyst_extra)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_perms(query))
