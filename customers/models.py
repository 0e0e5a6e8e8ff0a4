from django.conf import settings
from django.db import models
from django.db.models import Q


class Customer(models.Model):
    """Someone who pays for tool calls: one plan, one credit account, many API keys."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due (payment failed)"
        SUSPENDED = "suspended", "Suspended by the operator"
        CANCELED = "canceled", "Canceled"

    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="billing_customer",
    )
    stripe_customer = models.ForeignKey(
        "djstripe.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # The column holds Stripe's id ("cus_..."), set before the mirror row may exist.
        to_field="id",
        db_constraint=False,  # the mirror row may arrive after ours
        help_text="The dj-stripe mirror of this customer's Stripe customer.",
    )
    plan = models.ForeignKey(
        "billing.Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="customers"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Stripe's status of the subscription behind a subscription or usage-based
    # plan ("active", "trialing", "past_due", "canceled"...; blank: none).
    subscription_status = models.CharField(max_length=32, blank=True)
    # A saved card that can be charged off-session (pay as you go, auto top-up).
    has_payment_method = models.BooleanField(default=False)
    # The billing period the usage counters belong to: [period_start, period_end).
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    # Spending cap per UTC day across all keys, in microcents (None: the plan's).
    daily_budget_microcents = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")), name="customer_period_ordered"
            ),
            models.CheckConstraint(
                condition=Q(daily_budget_microcents__isnull=True)
                | Q(daily_budget_microcents__gte=0),
                name="customer_daily_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class ApiKey(models.Model):
    """A customer's API key ``mcpb_<prefix>_<secret>``; only its SHA-256 is kept."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    # The public part, unique, used to find the row: "mcpb_" + 12 characters.
    prefix = models.CharField(max_length=32, unique=True)
    # Hex SHA-256 of the whole key; compared in constant time.
    secret_hash = models.CharField(max_length=64)
    # Tool names this key may call; ["*"] for every tool the plan offers.
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Spending cap for this key per UTC day, in microcents (None: no cap).
    daily_budget_microcents = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_budget_microcents__isnull=True)
                | Q(daily_budget_microcents__gte=0),
                name="apikey_daily_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def allows_tool(self, tool_name: str) -> bool:
        return "*" in self.scopes or tool_name in self.scopes
