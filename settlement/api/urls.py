from rest_framework.routers import SimpleRouter

from .views import ActivationResultViewSet, RunViewSet

router = SimpleRouter()
router.register("settlement/runs", RunViewSet, basename="settlement-run")
router.register("settlement/activations", ActivationResultViewSet, basename="settlement-activation")
urlpatterns = router.urls
