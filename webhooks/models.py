"""What became of each Stripe event dj-stripe stored, and the checkouts that granted credits."""

from django.db import models
from django.db.models import Q


class EventProcessing(models.Model):
    """Our processing of one Stripe event (dj-stripe's ``Event`` holds its payload).

    Status moves pending -> processing -> succeeded, ignored (no handler or
    nothing to do) or failed (retried by beat until ``MAX_ATTEMPTS``, and from
    the admin at any time).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    # Stripe's event id ("evt_..."): one row per event however often it is delivered.
    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # When a failed or stuck row is next picked up by the sweep (None: not scheduled).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # What the handler did, or why the event was ignored.
    result = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "event processing"
        verbose_name_plural = "event processing"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "processing", "failed"]),
                name="eventprocessing_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"


class CheckoutGrant(models.Model):
    """A paid Checkout Session for a credit pack, kept so a refund of its charge finds the grant."""

    session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(
        "billing.CreditPack", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    credits = models.PositiveIntegerField()
    # The ledger entry's idempotency key: "checkout:<session id>".
    grant_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.credits} credits"
