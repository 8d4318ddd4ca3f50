"""The operator console's URLs on the admin site, included by smatch/urls.py by name (the project's
URLconf names each app's routes and imports none: it sits in the bottom layer)."""

from django.contrib import admin

from . import console

urlpatterns = console.urls(admin.site)
