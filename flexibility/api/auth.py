"""BRP authentication: `Authorization: Token <token>`; the token's hash identifies the BRP."""

from __future__ import annotations

import logging

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions, permissions

from ..models import Brp, hash_token

log = logging.getLogger(__name__)


class BrpUser:
    """The authenticated caller of the BRP API: a BRP, not a Django user."""

    is_authenticated = True
    is_staff = False

    def __init__(self, brp: Brp) -> None:
        self.brp = brp
        self.pk = f"brp:{brp.pk}"
        self.rate_ident = f"brp:{brp.pk}"  # its key in the request rates (smatch.rest.throttles)

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
