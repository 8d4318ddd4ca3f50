from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

admin.site.site_header = "SMATCH open SCSP"
admin.site.site_title = "SMATCH open SCSP"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", TemplateView.as_view(template_name="smatch/landing.html"), name="landing"),
    # Before admin.site.urls, whose catch-all would answer 404 for these.
    path("admin/console/", include("flexibility.console_urls")),
    path("admin/", admin.site.urls),
    path("ocpi/", include("ocpi.api.urls")),
    path("api/v1/", include("flexibility.api.urls")),
    path("api/v1/", include("settlement.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
