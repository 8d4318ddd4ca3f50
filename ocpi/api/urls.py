"""Mounted at /ocpi/. A trailing slash is accepted everywhere (clients join URLs differently)."""

from django.urls import re_path

from . import views
from .http import not_found

_ID = r"[^/]+"

urlpatterns = [
    re_path(r"^versions/?$", views.versions, name="ocpi-versions"),
    re_path(r"^2\.2\.1/?$", views.version_details, name="ocpi-version-details"),
    re_path(r"^2\.2\.1/credentials/?$", views.credentials, name="ocpi-credentials"),
    re_path(rf"^2\.2\.1/sessions/(?P<country_code>{_ID})/(?P<party_id>{_ID})/(?P<session_id>{_ID})/?$",
            views.session, name="ocpi-session"),
    re_path(rf"^2\.2\.1/chargingprofiles/results/(?P<call_id>{_ID})/?$", views.profile_result,
            name="ocpi-profile-result"),
    re_path(rf"^2\.2\.1/chargingprofiles/(?P<session_id>{_ID})/?$", views.active_profile, name="ocpi-active-profile"),
    re_path(r"^.*$", not_found),  # OCPI envelope for unknown paths, and no APPEND_SLASH redirect of a PUT
]
