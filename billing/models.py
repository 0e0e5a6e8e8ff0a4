"""Plans, tools and their prices, the credit ledger, holds, usage and the Stripe outbox.

Money is an integer count of microcents: one millionth of the currency's
minor unit (docs/decisions/0001-money-unit.md). Credits are whole credits.
"""

import uuid

from django.db import models
from django.db.models import F, Q

from billing.ids import uuid7

MICROCENTS_PER_CENT = 1_000_000


class BillingModel(models.TextChoices):
    CREDITS = "credits", "Prepaid credits"
    PER_CALL = "per_call", "Pay as you go, per call"
    SUBSCRIPTION = "subscription", "Subscription with included calls"
    USAGE = "usage", "Usage-based (Stripe meter)"
    FREEMIUM = "freemium", "Freemium"


class Plan(models.Model):
    """What a customer is on: how calls are paid for, and the limits around them."""

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    class Overage(models.TextChoices):
        BLOCK = "block", "Refuse past the included calls (hard cap)"
        METERED = "metered", "Charge overage through the Stripe meter"

    class FreeTierAction(models.TextChoices):
        REFUSE = "refuse", "Refuse with an upgrade link"
        UPGRADE = "upgrade", "Move the customer to the upgrade plan"
        CHARGE = "charge", "Charge per call (pay as you go)"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    billing_model = models.CharField(max_length=16, choices=BillingModel.choices)
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    active = models.BooleanField(default=True)
    # Shown to customers choosing a plan.
    public = models.BooleanField(default=True)

    # Subscription: calls included per period, and what happens past them.
    included_calls = models.PositiveIntegerField(null=True, blank=True)
    overage = models.CharField(max_length=8, choices=Overage.choices, default=Overage.BLOCK)
    # Subscription fee per period, in cents (what Stripe charges), for display and Stripe.
    price_cents = models.PositiveIntegerField(null=True, blank=True)

    # Freemium: free calls per period per customer, then the action.
    free_calls = models.PositiveIntegerField(null=True, blank=True)
    free_tier_action = models.CharField(
        max_length=8, choices=FreeTierAction.choices, default=FreeTierAction.REFUSE
    )
    upgrade_plan = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    # Pay as you go: the most a customer may owe (accrued, uncollected and in
    # flight), and the unbilled amount at which a payment is collected; microcents.
    exposure_limit_microcents = models.BigIntegerField(null=True, blank=True)
    collection_threshold_microcents = models.BigIntegerField(null=True, blank=True)

    # Prepaid credits: top up with this pack when the balance falls below the threshold.
    auto_topup_threshold_credits = models.PositiveIntegerField(null=True, blank=True)
    auto_topup_pack = models.ForeignKey(
        "billing.CreditPack", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    # Spending cap per customer per UTC day, microcents (None: no cap).
    daily_budget_microcents = models.BigIntegerField(null=True, blank=True)
    # Calls per minute per API key, and per API key and tool (None: no limit).
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, default=600)
    tool_rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)

    # Stripe: the recurring Price of the subscription, and the meter's event name.
    stripe_price_id = models.CharField(max_length=255, blank=True)
    stripe_meter_event_name = models.CharField(max_length=100, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(exposure_limit_microcents__isnull=True)
                | Q(exposure_limit_microcents__gte=0),
                name="plan_exposure_limit_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(daily_budget_microcents__isnull=True)
                | Q(daily_budget_microcents__gte=0),
                name="plan_daily_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class CreditPack(models.Model):
    """A package of credits sold through Stripe Checkout."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    credits = models.PositiveIntegerField()
    # What the customer pays, in the currency's minor unit (cents).
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    # Credits from this pack expire this many days after the grant (None: never).
    expires_after_days = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    stripe_price_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["credits"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="creditpack_credits_positive")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits)"


class UpstreamServer(models.Model):
    """An MCP server whose tools are proxied (and billed) through our endpoint."""

    class Transport(models.TextChoices):
        HTTP = "http", "Streamable HTTP"
        STDIO = "stdio", "stdio (a command started by the gateway)"

    name = models.SlugField(unique=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    # Streamable HTTP: the endpoint and extra request headers. A header value
    # "${NAME}" is read from the environment variable NAME, so secrets stay out
    # of the database.
    url = models.URLField(max_length=500, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    # stdio: the command, its arguments and extra environment ("${NAME}" as above).
    command = models.CharField(max_length=500, blank=True)
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True)
    # Offered tool names are "<tool_prefix><upstream tool name>".
    tool_prefix = models.CharField(max_length=64, blank=True)
    # Upstream tool names to offer (empty: all) and to hide.
    include = models.JSONField(default=list, blank=True)
    exclude = models.JSONField(default=list, blank=True)
    timeout_s = models.FloatField(default=30.0)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def offers(self, upstream_tool_name: str) -> bool:
        """Whether the include and exclude lists let this upstream tool through."""
        if upstream_tool_name in self.exclude:
            return False
        return not self.include or upstream_tool_name in self.include


class Tool(models.Model):
    """A tool offered at the MCP endpoint; priced by its ToolPrice versions."""

    class Source(models.TextChoices):
        PYTHON = "python", "Python (registered in code)"
        UPSTREAM = "upstream", "Upstream MCP server"

    name = models.CharField(max_length=128, unique=True)
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PYTHON)
    upstream = models.ForeignKey(
        UpstreamServer, null=True, blank=True, on_delete=models.CASCADE, related_name="tools"
    )
    # The tool's name on the upstream server (ours may carry the server's prefix).
    upstream_name = models.CharField(max_length=128, blank=True)
    # The input JSON schema offered in tools/list (from type hints or the upstream).
    input_schema = models.JSONField(default=dict, blank=True)
    # Offered without a price, charging nothing.
    is_free = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    timeout_s = models.FloatField(default=30.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ToolPrice(models.Model):
    """One version of a tool's price. Never edited: a new price is a new version.

    ``tiers`` (optional) are volume tiers by the call's position among the
    customer's calls of this tool in the period, ascending:
    ``[{"up_to": 1000, "unit_amount_microcents": 1000000, "credits": 1},
    {"up_to": null, "unit_amount_microcents": 500000, "credits": 1}]``.
    """

    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="prices")
    version = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    # Per call, microcents (1 cent = 1,000,000).
    unit_amount_microcents = models.BigIntegerField()
    # Per call when paid in credits (None: not payable in credits).
    credits = models.PositiveIntegerField(null=True, blank=True)
    tiers = models.JSONField(default=list, blank=True)
    # Charge calls whose tool failed (isError, timeout) as if they succeeded.
    charge_failed_calls = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tool", "-version"]
        get_latest_by = "version"
        constraints = [
            models.UniqueConstraint(fields=["tool", "version"], name="toolprice_version_unique"),
            models.CheckConstraint(
                condition=Q(unit_amount_microcents__gte=0), name="toolprice_amount_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool_id} v{self.version}"


class CreditAccount(models.Model):
    """A customer's cached balances; each is recomputable from its source rows.

    Invariants (checked by the database): 0 <= held_credits <= balance_credits;
    balance_credits equals the sum of the account's ledger entries.
    """

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.PROTECT, related_name="credit_account"
    )
    # Sum of the ledger entries, in credits.
    balance_credits = models.BigIntegerField(default=0)
    # Credits reserved by open holds; available = balance - held.
    held_credits = models.BigIntegerField(default=0)
    # Money reserved by open holds (pay as you go, metered), microcents.
    held_microcents = models.BigIntegerField(default=0)
    # Pay-as-you-go usage captured but not yet collected, microcents.
    unbilled_microcents = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(held_credits__gte=0) & Q(balance_credits__gte=F("held_credits")),
                name="creditaccount_held_within_balance",
            ),
            models.CheckConstraint(
                condition=Q(held_microcents__gte=0) & Q(unbilled_microcents__gte=0),
                name="creditaccount_money_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.balance_credits} credits"

    @property
    def available_credits(self) -> int:
        return self.balance_credits - self.held_credits


class LedgerEntry(models.Model):
    """An append-only change of a credit balance. Corrections are new entries."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        DEBIT = "debit", "Debit (a captured call)"
        REFUND = "refund", "Refund of a call"
        EXPIRY = "expiry", "Expiry"
        REVERSAL = "reversal", "Reversal (payment refunded)"
        ADJUSTMENT = "adjustment", "Adjustment"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed credits: grants positive, debits negative.
    amount_credits = models.BigIntegerField()
    # The account balance right after this entry.
    balance_after_credits = models.BigIntegerField()
    # One entry per business event, e.g. "checkout:cs_123", "call:<hold id>".
    idempotency_key = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255, blank=True)
    # Not indexed: no query looks entries up by their call (one row a call).
    usage = models.ForeignKey(
        "billing.UsageRecord",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_after_credits__gte=0), name="ledgerentry_balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_credits:+d} ({self.idempotency_key})"


class CreditLot(models.Model):
    """What is left of one grant; calls spend the lot that expires first."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="lots")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="lot")
    granted_credits = models.BigIntegerField()
    # 0 <= remaining_credits <= granted_credits.
    remaining_credits = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = [F("expires_at").asc(nulls_last=True), "id"]
        indexes = [
            models.Index(
                fields=["account", "expires_at"],
                condition=Q(remaining_credits__gt=0),
                name="creditlot_open",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining_credits__gte=0)
                & Q(remaining_credits__lte=F("granted_credits")),
                name="creditlot_remaining_within_grant",
            ),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining_credits}/{self.granted_credits}"


class PaymentPath(models.TextChoices):
    """How an authorised call is paid for."""

    FREE_TOOL = "free_tool", "Free tool"
    CREDITS = "credits", "Prepaid credits"
    INCLUDED = "included", "Included in the subscription"
    FREE_TIER = "free_tier", "Free tier"
    PAYG = "payg", "Pay as you go"
    METERED = "metered", "Reported to the Stripe meter"


class Hold(models.Model):
    """An authorised call awaiting its outcome: what it reserved, until captured or released."""

    class Status(models.TextChoices):
        HELD = "held", "Held"
        CAPTURED = "captured", "Captured"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired (never settled)"
        RETURNED = "returned", "Returned (a spare no call used)"

    # Every call inserts a hold and settling changes its status, which every index of
    # the table then gets a new entry for: only the indexes queries use are kept (a
    # tool, price, plan or key is looked up here only when deleting one, which is rare).
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(
        "customers.ApiKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="+", db_index=False)
    price = models.ForeignKey(
        ToolPrice, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    path = models.CharField(max_length=16, choices=PaymentPath.choices)
    # Reserved: credits (credits path) and money (the call's list price), microcents.
    credits = models.BigIntegerField(default=0)
    amount_microcents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    # Money counted against the pay-as-you-go exposure limit, microcents.
    exposure_microcents = models.BigIntegerField(default=0)
    # Counters this hold incremented, so a release gives back exactly these.
    period_start = models.DateTimeField()
    counted_tool_period = models.BooleanField(default=False)
    # The UTC day whose budget counters hold this call's amount, and which of them.
    budget_day = models.DateField(null=True, blank=True)
    counted_customer_budget = models.BooleanField(default=False)
    counted_key_budget = models.BooleanField(default=False)
    # The client's key; NULL (not "") when absent, so the unique constraint skips it.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Authorised ahead, beside an earlier call's hold, for a later call of the same key
    # and tool (docs/decisions/0010); one no call was given is returned, with no usage.
    spare = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()  # indexed while held (hold_open)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One live call per idempotency key; a released call may be retried.
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=Q(status__in=["held", "captured"]) & Q(idempotency_key__isnull=False),
                name="hold_idempotency_unique_live",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="held"), name="hold_open")
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} ({self.status})"


class UsageRecord(models.Model):
    """One settled tool call, charged or not, with the price version it was charged at."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        ERROR = "error", "Tool error"
        TIMEOUT = "timeout", "Timed out"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Never settled"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="usage")
    # Customer and tool are indexed by the "recent" indexes below; key, price and plan
    # are not (one row a call: only indexes that queries use are kept).
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
    )
    api_key = models.ForeignKey(
        "customers.ApiKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    tool = models.ForeignKey(
        Tool, on_delete=models.PROTECT, related_name="usage_records", db_index=False
    )
    price = models.ForeignKey(
        ToolPrice, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    path = models.CharField(max_length=16, choices=PaymentPath.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    charged = models.BooleanField()
    # What was charged: money (pay as you go, metered), microcents; and credits.
    amount_microcents = models.BigIntegerField(default=0)
    credits = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    duration_ms = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # The tool's result of a charged call made with an idempotency key, so a repeat gets it back.
    response = models.JSONField(null=True, blank=True)
    period_start = models.DateTimeField()
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="usage_customer_recent"),
            models.Index(fields=["tool", "-created_at"], name="usage_tool_recent"),
            # A repeated idempotency key finds the call it charged (call_replay).
            models.Index(
                fields=["customer", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="usage_idempotency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool_id} {self.outcome} {self.id}"


class PeriodCounter(models.Model):
    """A customer's calls in one billing period, counted per customer (not per key)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    included_calls_used = models.PositiveIntegerField(default=0)
    free_calls_used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"], name="periodcounter_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} from {self.period_start:%Y-%m-%d}"


class ToolPeriodCounter(models.Model):
    """A customer's calls of one tool in one period: the position that picks a volume tier."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "tool", "period_start"], name="toolperiodcounter_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.tool_id}: {self.calls}"


class BudgetCounter(models.Model):
    """Money spent in one UTC day by a customer (api_key empty) or by one of its keys."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        "customers.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    # Reserved and captured, microcents; released calls give theirs back.
    spent_microcents = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "day"],
                condition=Q(api_key__isnull=True),
                name="budgetcounter_customer_day_unique",
            ),
            models.UniqueConstraint(
                fields=["api_key", "day"],
                condition=Q(api_key__isnull=False),
                name="budgetcounter_key_day_unique",
            ),
            models.CheckConstraint(
                condition=Q(spent_microcents__gte=0), name="budgetcounter_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}/{self.api_key_id or '*'} {self.day}: {self.spent_microcents}"


class OutboxMessage(models.Model):
    """Something that must reach Stripe, written in the transaction that caused it.

    ``identifier`` is deterministic (a meter event's identifier, an idempotency
    key), so a resend is recognised by Stripe. Sent rows are kept: they are the
    permanent record of what Stripe was told.
    """

    class Kind(models.TextChoices):
        METER_EVENT = "meter_event", "Meter event"
        CUSTOMER_SYNC = "customer_sync", "Create or update the Stripe customer"
        PAYMENT = "payment", "Collect a payment"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Dead (needs an operator)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    identifier = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    usage = models.ForeignKey(
        UsageRecord, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # What Stripe answered when the row was sent: the object's id (blank for a
    # meter event, which has none) and the answer itself, kept as the record.
    stripe_id = models.CharField(max_length=255, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["kind", "next_attempt_at"],
                condition=Q(status__in=["pending", "failed"]),
                name="outbox_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.identifier} ({self.status})"


class Payment(models.Model):
    """An off-session charge of the saved card: a pay-as-you-go collection or an auto top-up.

    A collection reserves ``covered_microcents`` from the account's unbilled
    amount when it is created and gives it back if the payment finally fails.
    """

    class Purpose(models.TextChoices):
        COLLECTION = "collection", "Collection of pay-as-you-go usage"
        TOPUP = "topup", "Automatic credit top-up"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payments"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # What the card is charged, in cents (Stripe's minimum: 50).
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    # Collection: the unbilled usage this payment pays for, microcents (= amount_cents * 10^6).
    covered_microcents = models.BigIntegerField(default=0)
    # Top-up: the pack whose credits are granted when the payment succeeds.
    pack = models.ForeignKey(
        CreditPack, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One payment in flight per customer and purpose.
            models.UniqueConstraint(
                fields=["customer", "purpose"],
                condition=Q(status="pending"),
                name="payment_one_pending_per_purpose",
            ),
            models.CheckConstraint(
                condition=Q(amount_cents__gt=0) & Q(covered_microcents__gte=0),
                name="payment_amounts_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.amount_cents}c ({self.status})"


class MeterReconciliation(models.Model):
    """One comparison of what we sent to a Stripe meter with Stripe's summary for a window.

    Totals are the meter's values (microcents); the window is [window_start, window_end).
    """

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    event_name = models.CharField(max_length=100)
    stripe_meter_id = models.CharField(max_length=255, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    local_total = models.BigIntegerField()
    stripe_total = models.BigIntegerField()
    # stripe_total - local_total: negative when Stripe is missing usage.
    difference = models.BigIntegerField()
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-window_start", "customer_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "event_name", "window_start", "window_end"],
                name="meterreconciliation_window_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["-window_start"],
                condition=~Q(difference=0),
                name="meterreconciliation_mismatch",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.event_name} {self.window_start:%Y-%m-%d %H:%M}"
