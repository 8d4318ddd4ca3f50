"""The two staff roles: `operators` decide on signals, `analysts` read and run settlement.

Groups are (re)built after every migrate, so new models' permissions reach them without a
hand-written data migration.

Minting or rotating a credential (a BRP token, an OCPI token A, the token we send a party) needs
`ocpi_client.manage_credentials`, which neither group holds: a superuser, or a user it is given to
one by one. It is created here rather than in a model's Meta so that no migration is needed.

The apps are named by their labels, never imported: this module sits below them (smatch). It runs
after every migrate (`post_migrate`, connected in `flexibility/apps.py`).
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q

OPERATORS, ANALYSTS = "operators", "analysts"
PRODUCT_APPS = ("flexibility", "ocpi_client", "settlement")
# The credentials permission hangs on the OCPI party model (app label, model name).
CREDENTIALS = "manage_credentials"
CREDENTIALS_PERM = f"ocpi_client.{CREDENTIALS}"
_CREDENTIALS_MODEL = ("ocpi_client", "ocpiparty")


def _perms(query: Q) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label__in=PRODUCT_APPS).filter(query))


def ensure_credentials_permission() -> Permission:
    # get_or_create: the first app's post_migrate may run before the OCPI app's content types exist.
    app_label, model = _CREDENTIALS_MODEL
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permission, _ = Permission.objects.get_or_create(
        codename=CREDENTIALS, content_type=content_type,
        defaults={"name": "Can mint or rotate credentials (BRP tokens, OCPI tokens)"})
    return permission


def ensure_groups(**kwargs) -> None:
    ensure_credentials_permission()
    views = Q(codename__startswith="view_")
    operator_extra = Q(codename="decide_signal") | Q(codename__endswith="_steeringrule") | Q(
        content_type__app_label="ocpi_client", codename__startswith="change_"
    )
    analyst_extra = Q(content_type__app_label="settlement") & ~Q(codename__startswith="delete_")
    for name, query in ((OPERATORS, views | operator_extra), (ANALYSTS, views | analyst_extra)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_perms(query & ~Q(codename=CREDENTIALS)))
