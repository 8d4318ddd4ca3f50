from rest_framework.routers import SimpleRouter

from .views import EvseResponsivenessViewSet, SignalViewSet

router = SimpleRouter()
router.register("signals", SignalViewSet, basename="signal")
router.register("evse-responsiveness", EvseResponsivenessViewSet, basename="evse-responsiveness")
urlpatterns = router.urls
