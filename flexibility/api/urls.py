from django.urls import path
from rest_framework.routers import SimpleRouter

from .forecast_views import FlexibilityForecastView
from .views import EvseResponsivenessViewSet, SignalViewSet

router = SimpleRouter()
router.register("signals", SignalViewSet, basename="signal")
router.register("evse-responsiveness", EvseResponsivenessViewSet, basename="evse-responsiveness")
urlpatterns = [*router.urls, path("flexibility/", FlexibilityForecastView.as_view(), name="flexibility-forecast")]
