from django.conf import settings
from django.db import models
from django.utils import timezone


class IdempotencyKey(models.Model):
    """A POST to the API sent with an ``Idempotency-Key``, and the answer it got.

    One row per operator and key, written in the transaction of the request it
    answers, so it exists exactly when that request's changes do. Kept
    ``API_IDEMPOTENCY_TTL_H`` hours (at least 24), then removed by beat.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 (hex) of the method, path, query and body: the same key with
    # another request is refused instead of replayed.
    request_fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=100, blank=True)
    # The response body, encrypted with a key derived from SECRET_KEY: it may hold
    # an API key's secret, which is stored nowhere else.
    response_body = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotencykey_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.status_code})"
