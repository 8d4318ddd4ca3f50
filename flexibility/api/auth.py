"""BRP authentication: `Authorization: Token <token>`; the token's hash identifies the BRP."""

from __future__ import annotations

import logging

from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from redis.exceptions import RedisError
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.settings import api_settings

from ..models import Brp, hash_token

log = logging.getLogger(__name__)


class BrpUser:
    """The authenticated caller of the BRP API: a BRP, not a Django user."""

    is_authenticated = True
    is_staff = False

    def __init__(self, brp: Brp) -> None:
        self.brp = brp
        self.pk = f"brp:{brp.pk}"

    def __str__(self) -> str:
        return f"BRP {self.brp.name}"


class BrpTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] not in (self.keyword, "Bearer"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Token <your BRP token>'")
        brp = Brp.objects.filter(token_hash=hash_token(header[1]), is_active=True).first()
        if brp is None:
            raise exceptions.AuthenticationFailed("unknown or revoked BRP token")
        return BrpUser(brp), brp

    def authenticate_header(self, request) -> str:
        return self.keyword


class BrpTokenScheme(OpenApiAuthenticationExtension):
    """Declares the BRP token in the OpenAPI schema (clients and fuzzers then know how to authenticate)."""

    target_class = BrpTokenAuthentication
    name = "brpToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix=self.target.keyword)


class IsBrp(permissions.BasePermission):
    message = "a BRP token is needed: Authorization: Token <your BRP token>"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, BrpUser)


class CallerRateThrottle(throttling.SimpleRateThrottle):
    """A per-caller request rate (BRP, staff user, or address), counted in the shared cache.

    A fixed window with an atomic increment: every web process adds to the same counter, so four
    gunicorn workers allow the limit once, not four times (DRF's sliding history is a read then a
    write, which two processes interleave). A window boundary may let up to twice the limit through
    in a short burst. If the cache does not answer, the request goes through and it is logged: the
    limit protects the service, it must not take it down.
    """

    scope = "brp"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # read per request: settings may change

    def get_cache_key(self, request, view) -> str:
        user = request.user
        if isinstance(user, BrpUser):
            ident = f"brp:{user.brp.pk}"
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
