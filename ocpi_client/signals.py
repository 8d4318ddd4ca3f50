"""Signals other apps listen to (so ocpi_client never imports them)."""

from django.dispatch import Signal

# Sent after commit with `session_ids=[Session pk, ...]` when sessions are first seen ACTIVE.
session_started = Signal()
