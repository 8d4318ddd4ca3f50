"""Per-caller request rates, one class per rate named in settings' REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]."""

from __future__ import annotations

import logging

from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.settings import api_settings

log = logging.getLogger(__name__)


class CallerRateThrottle(throttling.SimpleRateThrottle):
    """A per-caller request rate (a BRP, a staff user, or an address), counted in the shared cache.

    A fixed window with an atomic increment: every web process adds to the same counter, so four
    web worker processes allow the limit once, not four times (DRF's sliding history is a read then a
    write, which two processes interleave). A window boundary may let up to twice the limit through
    in a short burst. If the cache does not answer, the request goes through and it is logged: the
    limit protects the service, it must not take it down.
    """

    scope = "brp"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # read per request: settings may change

    def get_cache_key(self, request, view) -> str:
        user = request.user
        if getattr(user, "rate_ident", None):  # a caller that is not a Django user names itself
            ident = user.rate_ident
        elif getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.get_cache_key(request, view)}:{window}"
        self.wait_s = (window + 1) * self.duration - now
        try:
            return _count(key, self.duration + 1) <= self.num_requests
        except (RedisError, OSError):
            log.exception("rate limit cache unavailable: %s let through uncounted", key)
            return True

    def wait(self) -> float:
        return self.wait_s


def _count(key: str, timeout_s: int) -> int:
    cache.add(key, 0, timeout=timeout_s)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the window again
        cache.add(key, 1, timeout=timeout_s)
        return 1


class BrpRateThrottle(CallerRateThrottle):
    """Per-BRP request rate on the BRP API, so one abusive client cannot starve the others."""

    scope = "brp"


class SettlementRateThrottle(CallerRateThrottle):
    """Per-caller rate on the settlement API (analysts and BRPs)."""

    scope = "settlement"
