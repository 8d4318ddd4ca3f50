"""BRP accounts: every door through create_brp / update_brp, and the rule the database holds too."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from flexibility import services
from flexibility.error_codes import FlexibilityErrorCode as Code
from flexibility.models import Brp
from ocpi.models import hash_token


def test_an_edit_keeps_the_token_and_the_rules(brp):
    services.update_brp(brp.pk, "Renamed supplier", Brp.Policy.AUTO_AFTER, 45, is_active=True)
    edited = Brp.objects.get(pk=brp.pk)
    assert (edited.name, edited.policy, edited.auto_after_s) == ("Renamed supplier", "auto_after", 45)
    assert edited.token_hash == hash_token(brp.api_token)
    with pytest.raises(services.BrpRefused) as refused:
        services.update_brp(brp.pk, "Renamed supplier", Brp.Policy.AUTO_AFTER, None, is_active=True)
    assert refused.value.code == Code.AUTO_AFTER_NEEDS_SECONDS


def test_a_second_brp_of_the_same_name_is_refused_with_its_code(brp):
    with pytest.raises(services.BrpRefused) as refused:
        services.create_brp(brp.name)
    assert refused.value.code == Code.BRP_NAME_TAKEN
    assert Brp.objects.filter(name=brp.name).count() == 1


def test_the_database_refuses_auto_after_without_seconds(brp):
    with pytest.raises(IntegrityError), transaction.atomic():
        Brp.objects.filter(pk=brp.pk).update(policy=Brp.Policy.AUTO_AFTER, auto_after_s=None)


def test_the_admin_edits_through_the_service(brp, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root"))
    url = f"/admin/flexibility/brp/{brp.pk}/change/"
    refused = client.post(url, {"name": brp.name, "policy": "auto_after", "auto_after_s": "", "is_active": "on"})
    assert refused.status_code == 200
    codes = {e.code for errors in refused.context["adminform"].form.errors.as_data().values() for e in errors}
    assert codes == {Code.AUTO_AFTER_NEEDS_SECONDS}
    saved = client.post(url, {"name": brp.name, "policy": "auto_after", "auto_after_s": "30", "is_active": "on"})
    assert saved.status_code == 302
    edited = Brp.objects.get(pk=brp.pk)
    assert (edited.policy, edited.auto_after_s, edited.token_hash) == ("auto_after", 30, hash_token(brp.api_token))


def test_brp_create_refuses_a_bad_policy_and_stores_nothing(db):
    with pytest.raises(CommandError):  # the sentence is for people: BrpRefused's code is tested above
        call_command("brp_create", "Odd supplier", "--policy", "sometimes", stdout=StringIO(), stderr=StringIO())
    assert not Brp.objects.exists()
