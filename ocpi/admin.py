"""Admin of the OCPI link: parties (with the registration actions) and read-only audit records.

Issuing a token A, registering (which mints our token B and stores theirs) and setting the token we
send a party need CREDENTIALS_PERM, which neither staff group holds (smatch/roles.py creates it
and keeps it out of the groups). `token_theirs` commands every charger of a CPO: the form takes it
but never shows it, to anyone.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from smatch.admin import ReadOnlyAdmin
from smatch.roles import CREDENTIALS, CREDENTIALS_PERM

from . import services
from .errors import OcpiError
from .models import (
    ActiveProfileUpdate,
    ChargingProfileCall,
    Connector,
    OcpiParty,
    OcpiPartyRole,
    Session,
    SessionState,
)
from .services import clocks, identity, queueing

SECRET_FIELD = "token_theirs"


class PartyForm(forms.ModelForm):
    """`token_theirs` is write-only: an empty field keeps the stored token."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if SECRET_FIELD in self.fields:
            field = self.fields[SECRET_FIELD]
            field.widget, field.required = forms.PasswordInput(render_value=False), False
            field.help_text = "the token we send when calling them; never shown: leave empty to keep it"

    def clean_token_theirs(self) -> str:
        return self.cleaned_data.get(SECRET_FIELD) or self.instance.token_theirs

    @property
    def changed_data(self) -> list[str]:  # an empty secret field is "unchanged", not "set to empty"
        return [name for name in super().changed_data if name != SECRET_FIELD or self.data.get(self.add_prefix(name))]


@admin.register(OcpiParty)
class OcpiPartyAdmin(admin.ModelAdmin):
    form = PartyForm
    list_display = ("name", "country_code", "party_id", "role", "status", "token_encoding", "clock_warning",
                    "versions_url", "updated_at")
    list_filter = ("status", "role")
    search_fields = ("name", "party_id", "versions_url")
    readonly_fields = ("status", "endpoints", "version", "token_encoding", "sessions_pulled_until",
                       "locations_pulled_at", "clock_skew_s", "clock_skew_at", "clock_warning", "token_locked_at",
                       "created_at", "updated_at")
    fields = ("name", "versions_url", "token_theirs", "country_code", "party_id", "role", *readonly_fields)
    actions = ("issue_token", "register", "pull_sessions_now", "pull_locations_now", "update_credentials")

    @admin.display(description="clock")
    def clock_warning(self, obj: OcpiParty) -> str:
        return clocks.skew_warning(obj) or "ok"

    def has_manage_credentials_permission(self, request) -> bool:
        return request.user.has_perm(CREDENTIALS_PERM)

    def get_fields(self, request, obj=None):
        # Only a user who may set it gets the (write-only) field; a read-only view would print it.
        settable = self.has_manage_credentials_permission(request) and self.has_change_permission(request, obj)
        return [f for f in super().get_fields(request, obj) if settable or f != SECRET_FIELD]

    def has_add_permission(self, request) -> bool:
        # Adding a party mints its token A (the same service as the ocpi_issue_token command).
        return super().has_add_permission(request) and self.has_manage_credentials_permission(request)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        details = {name: value for name, value in form.cleaned_data.items() if name != "name"}
        party, token = services.issue_token(obj.name, **details)
        for field in OcpiParty._meta.concrete_fields:  # the admin logs and redirects to `obj`
            setattr(obj, field.attname, getattr(party, field.attname))
        obj._state.adding = False
        self.message_user(request, f"{party.name}: token A = {token} (copy it now, it is not stored)",
                          messages.WARNING)

    @admin.action(description="Issue a registration token A (pending parties; shown once)", permissions=[CREDENTIALS])
    def issue_token(self, request, queryset) -> None:
        for party in queryset:
            try:
                token = services.reissue_token(party)
            except OcpiError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{party.name}: token A = {token} (copy it now, it is not stored)",
                              messages.WARNING)

    @admin.action(description="Register with this party (its versions URL + token A in 'token theirs')",
                  permissions=[CREDENTIALS])
    def register(self, request, queryset) -> None:
        # The credentials handshake is outbound HTTP: it runs in a worker, not in this request.
        queued = queueing.queue_registration(queryset.values_list("pk", flat=True))
        self.message_user(request, f"registration queued for {len(queued)} parties")

    @admin.action(description="Pull locations now (parties offering the module)", permissions=["change"])
    def pull_locations_now(self, request, queryset) -> None:
        queueing.queue_pulls(queueing.LOCATIONS, queryset.values_list("pk", flat=True))
        self.message_user(request, "locations pull queued")

    @admin.action(description="Update credentials (new token for them, our current endpoints)",
                  permissions=[CREDENTIALS])
    def update_credentials(self, request, queryset) -> None:
        # Outbound HTTP: runs in a worker (the same service as the ocpi_update_credentials command).
        queueing.queue_credentials_update(queryset.values_list("pk", flat=True))
        self.message_user(request, "credentials update queued")

    @admin.action(description="Pull sessions now", permissions=["change"])
    def pull_sessions_now(self, request, queryset) -> None:
        queueing.queue_pulls(queueing.SESSIONS, queryset.values_list("pk", flat=True))
        self.message_user(request, "sessions pull queued")


@admin.register(OcpiPartyRole)
class OcpiPartyRoleAdmin(ReadOnlyAdmin):
    """Who holds which (country_code, party_id). Releasing one lets another registration claim it."""

    list_display = ("country_code", "ocpi_party_id", "role", "party", "business_name", "active", "created_at")
    list_filter = ("active", "role")
    list_select_related = ("party",)
    search_fields = ("country_code", "ocpi_party_id", "party__name", "business_name")
    actions = ("release",)

    def has_release_permission(self, request) -> bool:
        return request.user.has_perm("ocpi_client.change_ocpiparty")

    @admin.action(description="Release the identity (another party may then claim it)", permissions=["release"])
    def release(self, request, queryset) -> None:
        for role in queryset.filter(active=True):
            try:
                identity.release_identity(role.pk)
            except OcpiError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"released {role.country_code}/{role.ocpi_party_id} of {role.party}")


@admin.register(Connector)
class ConnectorAdmin(ReadOnlyAdmin):
    list_display = ("location_id", "evse_uid", "connector_id", "party", "power_type", "power_type_raw",
                    "max_amperage_a", "max_electric_power_w", "pulled_at")
    list_filter = ("power_type",)
    list_select_related = ("party",)
    search_fields = ("location_id", "evse_uid")
    show_full_result_count = False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = ("session_id", "party", "evse_uid", "status", "kwh", "last_current_a", "current_source",
                    "last_power_kw", "phases", "phases_source", "seen_at", "last_updated")
    list_filter = ("status", "current_source", "phases_source")
    list_select_related = ("party",)
    search_fields = ("session_id", "evse_uid", "location_id")
    date_hierarchy = "last_updated"
    show_full_result_count = False


@admin.register(SessionState)
class SessionStateAdmin(ReadOnlyAdmin):
    list_display = ("session", "timestamp", "kwh", "current_l1_a", "current_l2_a", "current_l3_a", "power_kw",
                    "current_source", "status")
    list_select_related = ("session",)
    raw_id_fields = ("session",)
    search_fields = ("session__session_id",)
    show_full_result_count = False


@admin.register(ChargingProfileCall)
class ChargingProfileCallAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "session", "created_at", "response_result", "http_status", "result", "result_at",
                    "purpose_id")
    list_filter = ("kind", "response_result", "result")
    list_select_related = ("session",)
    raw_id_fields = ("session",)
    search_fields = ("=id", "session__session_id")
    show_full_result_count = False


@admin.register(ActiveProfileUpdate)
class ActiveProfileUpdateAdmin(ReadOnlyAdmin):
    list_display = ("session", "start_date_time", "received_at")
    list_select_related = ("session",)
    raw_id_fields = ("session",)
    show_full_result_count = False


