"""Demand response: BRPs, their signals, the CPO's decisions, activations and per-session caps."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from ocpi.models import hash_token
from smatch import clock


class Brp(models.Model):
    """A Balance Responsible Party (energy supplier) that may post imbalance signals."""

    class Policy(models.TextChoices):
        MANUAL = "manual", "manual: an operator relays or vetoes"
        AUTO = "auto", "automatic: relayed on arrival"
        AUTO_AFTER = "auto_after", "automatic after N seconds unless vetoed"

    name = models.CharField(max_length=100, unique=True)
    policy = models.CharField(max_length=12, choices=Policy.choices, default=Policy.MANUAL)
    auto_after_s = models.PositiveIntegerField(null=True, blank=True, help_text="for auto_after only")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=8, editable=False, help_text="to recognise a token")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "BRP"
        verbose_name_plural = "BRPs"
        constraints = [
            # The one statement of the rule: the database holds it, model validation (the admin form)
            # and `services.brps.check_brp` (the command) check it before a save.
            models.CheckConstraint(
                condition=~models.Q(policy="auto_after") | models.Q(auto_after_s__isnull=False, auto_after_s__gt=0),
                name="auto_after_needs_seconds", violation_error_code="auto_after_needs_seconds",
                violation_error_message="auto_after needs a number of seconds"),
        ]

    def __str__(self) -> str:
        return self.name

    def rotate_token(self) -> str:
        """Set a new API token and return it; only its hash is kept, so show it once."""
        token = secrets.token_urlsafe(32)
        self.token_hash, self.token_prefix = hash_token(token), token[:8]
        return token


class Signal(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        RELAYED = "relayed"
        VETOED = "vetoed"
        EXPIRED = "expired"
        ACTIVE = "active"
        RESTORED = "restored"
        CANCELLED = "cancelled"

    class Direction(models.TextChoices):
        REDUCE = "reduce_consumption"

    brp = models.ForeignKey(Brp, on_delete=models.PROTECT, related_name="signals")
    external_id = models.CharField(max_length=100, help_text="the BRP's own id; a repeat is the same signal")
    direction = models.CharField(max_length=24, choices=Direction.choices)
    end_time = models.DateTimeField(null=True, blank=True)
    isp_start = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=clock.now, editable=False)
    auto_relay_at = models.DateTimeField(null=True, blank=True, help_text="policy deadline, if any")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    veto_reason = models.TextField(blank=True)
    target_kw = models.FloatField(null=True, blank=True, help_text="kW wanted; empty: every eligible session")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["brp", "external_id"], name="signal_unique_per_brp"),
            models.CheckConstraint(condition=~models.Q(status="vetoed") | ~models.Q(veto_reason=""),
                                   name="a_veto_has_a_reason"),
        ]
        permissions = [("decide_signal", "Can relay, veto or stop signals")]
        indexes = [models.Index(fields=["status", "received_at"])]
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.brp} #{self.external_id}"


class Decision(models.Model):
    """Audit trail: who did what to a signal, and when. Written once, never edited."""

    class Action(models.TextChoices):
        RELAY = "relay"
        VETO = "veto"
        STOP = "stop"
        CANCEL = "cancel"
        EXPIRE = "expire"

    signal = models.ForeignKey(Signal, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=8, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=100, help_text="user, BRP or policy that decided")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"


class Activation(models.Model):
    """One relayed signal being carried out: the window and its latency figures."""

    class Status(models.TextChoices):
        DISPATCHING = "dispatching"
        ACTIVE = "active"
        RESTORING = "restoring"
        RESTORED = "restored"

    signal = models.OneToOneField(Signal, on_delete=models.PROTECT, related_name="activation")
    relayed_at = models.DateTimeField()
    ends_at = models.DateTimeField(help_text="planned end: ISP boundary or the signal's end time")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DISPATCHING)
    stopped_early = models.BooleanField(default=False)
    eligible = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, help_text="sessions skipped, by reason")
    expected_kw = models.FloatField(default=0.0)
    # Target-kW activations (flexibility/targeting.py): the target, what the eligible fleet lacked to
    # reach it, and the shed measured from the states pushed during the activation.
    target_kw = models.FloatField(null=True, blank=True)
    shortfall_kw = models.FloatField(null=True, blank=True)
    measured_kw = models.FloatField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)
    # The figures counted from the caps and their PUTs (`summary.final_figures`): final once the
    # activation is restored, stored then so a list does not recount them per row. Null before.
    dispatched_kw = models.FloatField(default=0.0, help_text="expected shed of the sessions that accepted")
    sessions_by_outcome = models.JSONField(null=True, blank=True, help_text="caps by status")
    caps_by_state = models.JSONField(null=True, blank=True, help_text="caps by what the CSMS made of them")
    first_put_at = models.DateTimeField(null=True, blank=True, help_text="first PUT of the initial fan-out")
    puts_answered_at = models.DateTimeField(null=True, blank=True, help_text="every initial PUT answered")
    results_at = models.DateTimeField(null=True, blank=True, help_text="every async result of those PUTs in")

    class Meta:
        indexes = [models.Index(fields=["status", "ends_at"])]

    def __str__(self) -> str:
        return f"activation {self.pk} of {self.signal}"


class Curtailment(models.Model):
    """One session capped at 8 A within one activation: what the CPO answered, what the CSMS did.

    Its lifecycle (the table and every move, each a conditional UPDATE) is `flexibility.lifecycle`.
    The synchronous ACCEPTED only means the CPO can forward the profile
    (`pending`); the async result puts it in force or refuses it; without a result within the
    timeout the CPO gave it is `no_result` (still DELETEd at the end). A restored cap keeps in
    `restored_from` what it was, so the counts stay readable after the end.
    """

    class Status(models.TextChoices):
        PLANNED = "planned"
        SENT = "sent"  # PUT on its way
        PENDING = "pending", "pending at the CSMS"  # sync ACCEPTED: can be forwarded, not yet in force
        IN_FORCE = "in_force", "in force"  # async ACCEPTED
        REFUSED = "refused"  # sync or async refusal: recorded, never retried
        NO_RESULT = "no_result", "no result in time"  # no async result within the CPO's timeout
        FAILED = "failed"  # transport errors until the window closed
        RESTORED = "restored"

    class Delivery(models.TextChoices):
        UNJUDGED = "", "not judged yet"
        RESPONDED = "responded"
        NOT_RESPONDED = "not_responded", "did not respond"
        NO_DATA = "no_data", "no data"

    class Resumption(models.TextChoices):
        UNJUDGED = "", "not judged yet"
        RESUMED = "resumed"
        NOT_RESUMED = "not_resumed", "did not resume (driver at risk)"
        NO_DATA = "no_data", "no data"

    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="curtailments")
    session = models.ForeignKey("ocpi_client.Session", on_delete=models.PROTECT, related_name="curtailments")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(help_text="planned end, shortened by the cap budget if needed")
    restored_at = models.DateTimeField(null=True, blank=True)
    limit_a = models.FloatField()
    expected_kw = models.FloatField()
    # The per-phase current measured when the cap was planned (None: not measured): a cap on a draw
    # already at the cap's level proves nothing either way.
    before_a = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNED)
    restored_from = models.CharField(max_length=10, choices=Status.choices, blank=True, default="")
    response = models.CharField(max_length=16, blank=True, help_text="last synchronous OCPI answer")
    attempts = models.PositiveSmallIntegerField(default=0)
    result_due_at = models.DateTimeField(null=True, blank=True, help_text="sync answer + the CPO's timeout")
    # planned: when its send is due (a retry's countdown); sent: when a send still running would have
    # been killed by its time limit. Past it, the sweep knows the send was lost and queues it again.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    delivery = models.CharField(max_length=14, choices=Delivery.choices, blank=True, default="")
    resumption = models.CharField(max_length=12, choices=Resumption.choices, blank=True, default="")
    # A session's phases do not change, so its later caps are judged on this too (flexibility/delivery.py).
    flat_kw = models.FloatField(
        null=True, blank=True, verbose_name="flat draw (kW)",
        help_text="kWh only: the flat draw that proved the EV is not finishing its charge on some phase counts "
                  "(the cap's verdict, or an earlier cap's of this session, rests on it)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activation", "session"], name="one_cap_per_session_per_activation"),
            models.CheckConstraint(condition=models.Q(status="restored") | models.Q(restored_from=""),
                                   name="only_a_restored_cap_has_restored_from"),
        ]
        indexes = [models.Index(fields=["session", "starts_at"]), models.Index(fields=["activation", "status"])]

    def __str__(self) -> str:
        return f"cap {self.session_id} in activation {self.activation_id}"


class EvseResponsiveness(models.Model):
    """Per EVSE of a party: how its caps were delivered, judged by measurement, newest last.

    `flagged`: it did not respond in N of its last M judged activations (settings); it is still
    sent the profile but counted out of the expected shed, and listed in the CPO-facing report.
    """

    party = models.ForeignKey("ocpi_client.OcpiParty", on_delete=models.CASCADE, related_name="evse_records")
    evse_uid = models.CharField(max_length=36, help_text="as the CPO spells it")
    evse_key = models.CharField(max_length=36, editable=False, help_text="upper case: matched without case")
    recent = models.JSONField(default=list, help_text="the last verdicts, newest last: true = responded")
    judged = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    not_resumed = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False, db_index=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "EVSE responsiveness"
        verbose_name_plural = "EVSE responsiveness"
        constraints = [models.UniqueConstraint(fields=["party", "evse_key"], name="one_record_per_evse")]

    def __str__(self) -> str:
        return f"{self.evse_uid} ({'flagged' if self.flagged else 'ok'})"

    def save(self, *args, **kwargs) -> None:
        self.evse_key = self.evse_uid.upper()
        super().save(*args, **kwargs)


class SteeringRule(models.Model):
    """Location / EVSE opt-out: some municipalities require consent, some forbid steering."""

    location_id = models.CharField(max_length=36, blank=True, db_index=True)
    evse_uid = models.CharField(max_length=36, blank=True, db_index=True)
    reason = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(location_id="", evse_uid=""), name="rule_names_location_or_evse"
            )
        ]

    def __str__(self) -> str:
        return f"opt-out {self.location_id or '*'}/{self.evse_uid or '*'}: {self.reason}"
