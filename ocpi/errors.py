"""OCPI errors: each carries its OCPI status code (status_codes.asciidoc) and the HTTP status to send."""

from __future__ import annotations


class OcpiError(Exception):
    """An error that becomes an OCPI response envelope: `status_code`, `status_message`, HTTP status."""

    status_code = 2000
    http_status = 400

    def __init__(self, message: str, *, status_code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if http_status is not None:
            self.http_status = http_status


class OcpiValidationError(OcpiError):
    """Invalid or missing parameters (2001). Valid JSON that reached the OCPI layer, so HTTP 200
    (status_codes.asciidoc: such a request MUST NOT get an HTTP error status)."""

    status_code = 2001
    http_status = 200


class MalformedRequest(OcpiError):
    """Not JSON at all: HTTP 400 per status_codes.asciidoc."""

    status_code = 2000
    http_status = 400


class Unauthorized(OcpiError):
    status_code = 2000
    http_status = 401


class UnknownObject(OcpiError):
    """Unknown session / call id, or an object of another party: HTTP 404 with a 2000-range code
    (2003 means "unknown location": UnknownLocation)."""

    status_code = 2000
    http_status = 404


class UnknownLocation(UnknownObject):
    status_code = 2003


class TokenLocked(OcpiError):
    """Too many failed credentials attempts with one token: refused until an operator issues a new one."""

    status_code = 2000
    http_status = 401


class CredentialsBusy(OcpiError):
    """A credentials exchange with this token is already calling the caller's API: one at a time per
    token, so a slow target holds at most one web thread per token, not all of them."""

    status_code = 2000
    http_status = 429


class MethodNotAllowed(OcpiError):
    status_code = 2000
    http_status = 405


class BodyTooLarge(OcpiError):
    status_code = 2000
    http_status = 413


class UnableToUseClientApi(OcpiError):
    """3001: we could not use the other party's API during a credentials exchange."""

    status_code = 3001
    http_status = 200


class UnsupportedVersion(OcpiError):
    status_code = 3002
    http_status = 200


class NoMatchingEndpoints(OcpiError):
    status_code = 3003
    http_status = 200


class OcpiClientError(Exception):
    """An outbound call failed (transport, HTTP or OCPI status); `transient` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
