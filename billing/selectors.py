"""Reads of billing state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.urls import reverse
from django.utils import timezone
from djstripe import models as dj

from billing.models import (
    BillingModel,
    CreditAccount,
    CreditPack,
    Hold,
    LedgerEntry,
    Payment,
    PaymentPath,
    PeriodCounter,
    Plan,
    Tool,
    ToolPrice,
    UsageRecord,
)
from billing.periods import period_containing
from customers.models import ApiKey, Customer


def plan_uses_credits(plan: Plan | None) -> bool:
    """Whether customers on ``plan`` pay with credits (and so have a balance to show)."""
    return plan is not None and plan.billing_model == BillingModel.CREDITS


def plan_charges_money(plan: Plan | None) -> bool:
    """Whether calls on ``plan`` may be charged in money (and so something may be owed)."""
    if plan is None:
        return False
    return (
        plan.billing_model in (BillingModel.PER_CALL, BillingModel.USAGE)
        or (
            plan.billing_model == BillingModel.SUBSCRIPTION and plan.overage == Plan.Overage.METERED
        )
        or (
            plan.billing_model == BillingModel.FREEMIUM
            and plan.free_tier_action == Plan.FreeTierAction.CHARGE
        )
    )


def credit_balance(*, customer_id: int, plan: Plan | None) -> int | None:
    """The customer's credit balance, or None when its plan does not use credits."""
    if not plan_uses_credits(plan):
        return None
    return (
        CreditAccount.objects.filter(customer_id=customer_id)
        .values_list("balance_credits", flat=True)
        .first()
    )


def credit_balance_recompute(*, customer_id: int) -> int:
    """The balance as the ledger says it is: the sum of the account's entries."""
    total = LedgerEntry.objects.filter(account__customer_id=customer_id).aggregate(
        total=Sum("amount_credits")
    )["total"]
    return total or 0


# --- the customer's pages ---------------------------------------------------------------
# Each figure a page shows comes from one of these. The dashboard's figures are in
# the selectors named customer_* below, one per card, so another source (the
# analytics rollups) can replace any one of them.

LOW_BALANCE_CREDITS = 100  # below this many available credits the dashboard warns
OWING = ("past_due", "unpaid")  # Stripe subscription statuses with an unpaid invoice


@dataclass(frozen=True)
class Balance:
    """What the customer has and owes right now."""

    uses_credits: bool
    owes_money: bool  # the plan charges calls in money (pay as you go, metered, overage)
    balance_credits: int
    held_credits: int  # reserved by calls in flight
    available_credits: int
    unbilled_microcents: int  # pay as you go: captured, not yet collected
    held_microcents: int  # pay as you go and metered: reserved by calls in flight


def customer_balance(*, customer: Customer) -> Balance:
    """The customer's credit balance and money owed, from its account row."""
    account = CreditAccount.objects.filter(customer=customer).first() or CreditAccount()
    return Balance(
        uses_credits=plan_uses_credits(customer.plan),
        owes_money=plan_charges_money(customer.plan),
        balance_credits=account.balance_credits,
        held_credits=account.held_credits,
        available_credits=account.available_credits,
        unbilled_microcents=account.unbilled_microcents,
        held_microcents=account.held_microcents,
    )


@dataclass(frozen=True)
class PeriodUsage:
    """The current billing period: its calls, what the plan includes of them, and the spend."""

    start: datetime
    end: datetime
    calls: int
    included_calls: int | None
    included_used: int
    free_calls: int | None
    free_used: int
    spent_microcents: int  # money charged (pay as you go, metered)
    spent_credits: int
    currency: str

    @property
    def included_left(self) -> int | None:
        return (
            None
            if self.included_calls is None
            else max(self.included_calls - self.included_used, 0)
        )

    @property
    def free_left(self) -> int | None:
        return None if self.free_calls is None else max(self.free_calls - self.free_used, 0)


def customer_period(
    *, customer: Customer, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The billing period holding ``now`` (the stored one may have ended since the last call)."""
    now = now or timezone.now()
    if customer.period_start <= now < customer.period_end:
        return customer.period_start, customer.period_end
    months = 12 if customer.plan and customer.plan.interval == Plan.Interval.YEAR else 1
    return period_containing(customer.period_start, now, months=months)


def customer_period_usage(*, customer: Customer, now: datetime | None = None) -> PeriodUsage:
    """Calls, included and free calls used, and spend in the current period."""
    start, end = customer_period(customer=customer, now=now)
    plan = customer.plan
    counter = PeriodCounter.objects.filter(customer=customer, period_start=start).first()
    totals = UsageRecord.objects.filter(customer=customer, created_at__gte=start).aggregate(
        calls=Count("id"),
        money=Sum(
            "amount_microcents",
            filter=Q(charged=True, refunded_at=None, path__in=MONEY_PATHS),
        ),
        credits=Sum("credits", filter=Q(charged=True, refunded_at=None)),
    )
    return PeriodUsage(
        start=start,
        end=end,
        calls=totals["calls"],
        included_calls=plan.included_calls
        if plan and plan.billing_model == BillingModel.SUBSCRIPTION
        else None,
        included_used=counter.included_calls_used if counter else 0,
        free_calls=plan.free_calls
        if plan and plan.billing_model == BillingModel.FREEMIUM
        else None,
        free_used=counter.free_calls_used if counter else 0,
        spent_microcents=totals["money"] or 0,
        spent_credits=totals["credits"] or 0,
        currency=plan.currency if plan else settings.BILLING_DEFAULT_CURRENCY,
    )


MONEY_PATHS = (PaymentPath.PAYG, PaymentPath.METERED)


def customer_recent_calls(*, customer: Customer, limit: int = 8) -> list[UsageRecord]:
    """The customer's latest calls, newest first, with their tool, key and price version."""
    return list(usage_list(customer=customer)[:limit])


@dataclass(frozen=True)
class Alert:
    """Something the customer should act on, and where to act."""

    code: str
    level: str  # danger, warning, info
    title: str
    text: str
    action_url: str = ""
    action_label: str = ""


def customer_alerts(*, customer: Customer, balance: Balance, period: PeriodUsage) -> list[Alert]:
    """What stops or will soon stop the customer's calls, most urgent first."""
    alerts: list[Alert] = []
    plan = customer.plan
    credits_url, plans_url = reverse("billing:credits"), reverse("billing:plans")
    card_url, invoices_url = reverse("billing:payment-method"), reverse("billing:invoices")
    if customer.status in (Customer.Status.SUSPENDED, Customer.Status.CANCELED):
        alerts.append(
            Alert(
                "account_inactive",
                "danger",
                "Your account is not active.",
                "Tool calls are refused. Contact the operator to reopen it.",
            )
        )
    if customer.status == Customer.Status.PAST_DUE or _last_payment_failed(customer):
        alerts.append(
            Alert(
                "payment_failed",
                "danger",
                "Your last payment failed.",
                "Update your card so that calls go on and the amount owed is collected.",
                card_url,
                "Update card",
            )
        )
    if customer.subscription_status in OWING:
        alerts.append(
            Alert(
                "past_due",
                "danger",
                "Your subscription is past due.",
                "An invoice is unpaid. Pay it, or change the card it is charged to.",
                invoices_url,
                "See invoices",
            )
        )
    if plan is None or not plan.active:
        alerts.append(
            Alert(
                "no_plan",
                "warning",
                "You have no plan.",
                "Choose one to start calling tools.",
                plans_url,
                "Choose a plan",
            )
        )
        return alerts
    model = plan.billing_model
    if model == BillingModel.CREDITS:
        low = max(LOW_BALANCE_CREDITS, plan.auto_topup_threshold_credits or 0)
        if balance.available_credits <= 0:
            alerts.append(
                Alert(
                    "no_credits",
                    "danger",
                    "You have no credits left.",
                    "Calls that cost credits are refused until you buy more.",
                    credits_url,
                    "Buy credits",
                )
            )
        elif balance.available_credits < low:
            alerts.append(
                Alert(
                    "low_balance",
                    "warning",
                    "Your credit balance is low.",
                    f"{balance.available_credits} credits left.",
                    credits_url,
                    "Buy credits",
                )
            )
    if model in (BillingModel.SUBSCRIPTION, BillingModel.USAGE) and (
        customer.subscription_status not in ("active", "trialing", *OWING)
    ):
        alerts.append(
            Alert(
                "subscription_required",
                "warning",
                f"The {plan.name} plan needs a subscription.",
                "Subscribe to start calling tools.",
                f"{plans_url}?plan={plan.slug}",
                "Subscribe",
            )
        )
    needs_card = model == BillingModel.PER_CALL or (
        model == BillingModel.FREEMIUM and plan.free_tier_action == Plan.FreeTierAction.CHARGE
    )
    if needs_card and not customer.has_payment_method:
        alerts.append(
            Alert(
                "payment_method_required",
                "warning",
                "Add a card to pay per call.",
                "Calls past what your plan includes are refused without one.",
                card_url,
                "Add a card",
            )
        )
    if period.free_left == 0:
        alerts.append(
            Alert(
                "free_tier_exhausted",
                "warning",
                "You have used this period's free calls.",
                f"They renew on {period.end:%d %b %Y}. Upgrade to go on now.",
                plans_url,
                "Upgrade",
            )
        )
    if period.included_left == 0 and plan.overage == Plan.Overage.BLOCK:
        alerts.append(
            Alert(
                "quota_exceeded",
                "warning",
                "You have used the calls your plan includes.",
                f"They renew on {period.end:%d %b %Y}. Upgrade to go on now.",
                plans_url,
                "Upgrade",
            )
        )
    return alerts


def _last_payment_failed(customer: Customer) -> bool:
    last = Payment.objects.filter(customer=customer).order_by("-created_at").first()
    return last is not None and last.status == Payment.Status.FAILED


@dataclass(frozen=True)
class Dashboard:
    balance: Balance
    period: PeriodUsage
    recent_calls: list[UsageRecord]
    alerts: list[Alert]


def customer_dashboard(*, customer: Customer, now: datetime | None = None) -> Dashboard:
    """Everything the dashboard shows, one selector per figure."""
    balance = customer_balance(customer=customer)
    period = customer_period_usage(customer=customer, now=now)
    return Dashboard(
        balance=balance,
        period=period,
        recent_calls=customer_recent_calls(customer=customer),
        alerts=customer_alerts(customer=customer, balance=balance, period=period),
    )


# --- usage ---------------------------------------------------------------------------


def usage_list(
    *,
    customer: Customer,
    tool: Tool | None = None,
    api_key: ApiKey | None = None,
    outcome: str = "",
    created_after: date | None = None,
    created_before: date | None = None,
):
    """The customer's calls, newest first, filtered; the other filters only narrow it.

    Dates are whole UTC days, both included.
    """
    rows = UsageRecord.objects.filter(customer=customer)
    if tool is not None:
        rows = rows.filter(tool=tool)
    if api_key is not None:
        rows = rows.filter(api_key=api_key)
    if outcome:
        rows = rows.filter(outcome=outcome)
    if created_after is not None:
        rows = rows.filter(created_at__gte=_day_start(created_after))
    if created_before is not None:
        rows = rows.filter(created_at__lt=_day_start(created_before + timedelta(days=1)))
    return rows.select_related("tool", "api_key", "price").order_by("-created_at", "-id")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def usage_get(*, customer: Customer, usage_id) -> UsageRecord | None:
    """One of the customer's calls, with its ledger entry's balance; None when not theirs."""
    return (
        UsageRecord.objects.filter(customer=customer, pk=usage_id)
        .select_related("tool", "api_key", "price", "plan")
        .first()
    )


def usage_ledger_entry(*, usage: UsageRecord) -> LedgerEntry | None:
    """The credits debit of a call paid in credits."""
    return LedgerEntry.objects.filter(usage=usage).order_by("id").first()


def usage_filter_tools() -> list[Tool]:
    """The tools the usage list can be filtered by: every tool, offered now or before."""
    return list(Tool.objects.order_by("name"))


# --- the public catalogue ---------------------------------------------------------------


@dataclass(frozen=True)
class ToolOffer:
    """A tool as the pricing page lists it, at its current price version."""

    tool: Tool
    price: ToolPrice | None

    @property
    def free(self) -> bool:
        return self.tool.is_free or self.price is None


def plans_public() -> list[Plan]:
    """The plans a visitor can sign up for or move to."""
    plans = Plan.objects.filter(active=True, public=True)
    # Free first, then pay-per-use plans, then subscriptions by their fee.
    return sorted(
        plans, key=lambda p: (p.billing_model != BillingModel.FREEMIUM, p.price_cents or 0, p.slug)
    )


def credit_packs_on_sale() -> list[CreditPack]:
    """The credit packs a customer can buy, smallest first."""
    return list(CreditPack.objects.filter(active=True).order_by("credits"))


def tools_offered() -> list[ToolOffer]:
    """Every tool the endpoint offers, with its current price version (None: free)."""
    tools = Tool.objects.filter(enabled=True).filter(
        Q(upstream__isnull=True) | Q(upstream__enabled=True)
    )
    newest = ToolPrice.objects.filter(tool=OuterRef("pk")).order_by("-version").values("pk")[:1]
    tools = tools.annotate(price_id=Subquery(newest)).order_by("name")
    prices = ToolPrice.objects.in_bulk([t.price_id for t in tools if t.price_id])
    return [ToolOffer(tool=t, price=None if t.is_free else prices.get(t.price_id)) for t in tools]


# --- invoices and payments (dj-stripe's mirror of Stripe) ---------------------------------


@dataclass(frozen=True)
class BillingDocument:
    """An invoice or a payment receipt, as the invoices page lists it."""

    kind: str  # "invoice" or "payment"
    id: str  # Stripe's id: in_... or ch_...
    created: datetime
    description: str
    number: str
    status: str
    amount_cents: int
    currency: str
    has_page: bool  # a Stripe-hosted page (invoice) or receipt (payment)
    has_pdf: bool


def _invoice_document(invoice: dj.Invoice) -> BillingDocument:
    data = invoice.stripe_data or {}
    lines = (data.get("lines") or {}).get("data") or []
    description = data.get("description") or (lines[0].get("description") if lines else "")
    return BillingDocument(
        kind="invoice",
        id=invoice.id,
        created=invoice.created,
        description=description or "Subscription",
        number=data.get("number") or "",
        status=data.get("status") or "",
        amount_cents=int(data.get("total") or 0),
        currency=data.get("currency") or settings.BILLING_DEFAULT_CURRENCY,
        has_page=bool(data.get("hosted_invoice_url")),
        has_pdf=bool(data.get("invoice_pdf")),
    )


def _payment_document(charge: dj.Charge) -> BillingDocument:
    data = charge.stripe_data or {}
    status = data.get("status") or ""
    if data.get("refunded"):
        status = "refunded"
    elif data.get("amount_refunded"):
        status = "partially refunded"
    return BillingDocument(
        kind="payment",
        id=charge.id,
        created=charge.created,
        description=data.get("description") or _payment_description(data.get("metadata") or {}),
        number=data.get("receipt_number") or "",
        status=status,
        amount_cents=int(data.get("amount") or 0),
        currency=data.get("currency") or settings.BILLING_DEFAULT_CURRENCY,
        has_page=bool(data.get("receipt_url")),
        has_pdf=False,
    )


def _payment_description(metadata: dict) -> str:
    if metadata.get("mcpb_pack"):
        pack = CreditPack.objects.filter(slug=metadata["mcpb_pack"]).first()
        return f"{pack.name} credit pack ({pack.credits:,} credits)" if pack else "Credit pack"
    return {
        "collection": "Pay-as-you-go usage",
        "topup": "Automatic credit top-up",
    }.get(metadata.get("mcpb_purpose", ""), "Payment")


def customer_invoices(*, customer: Customer) -> list[dj.Invoice]:
    """The customer's finalised Stripe invoices (subscriptions, metered usage), newest first."""
    if not customer.stripe_customer_id:
        return []
    return list(
        dj.Invoice.objects.filter(customer_id=customer.stripe_customer_id)
        .exclude(stripe_data__status="draft")
        .order_by("-created")
    )


def customer_payments(*, customer: Customer) -> list[dj.Charge]:
    """The customer's payments made outside invoices: credit packs, collections, top-ups.

    Our Checkout sessions and PaymentIntents carry ``mcpb_customer_id`` in their
    metadata, which Stripe copies to the charge; an invoice's charges do not.
    """
    if not customer.stripe_customer_id:
        return []
    return list(
        dj.Charge.objects.filter(
            customer_id=customer.stripe_customer_id, metadata__has_key="mcpb_customer_id"
        ).order_by("-created")
    )


def billing_documents(*, customer: Customer) -> list[BillingDocument]:
    """Invoices and payment receipts together, newest first."""
    documents = [_invoice_document(i) for i in customer_invoices(customer=customer)]
    documents += [_payment_document(c) for c in customer_payments(customer=customer)]
    return sorted(documents, key=lambda d: d.created, reverse=True)


def billing_document_url(
    *, customer: Customer, kind: str, document_id: str, pdf: bool = False
) -> str | None:
    """The Stripe page (or PDF) of one of the customer's documents; None when not theirs."""
    if not customer.stripe_customer_id:
        return None
    if kind == "invoice":
        invoice = dj.Invoice.objects.filter(
            customer_id=customer.stripe_customer_id, id=document_id
        ).first()
        data = invoice.stripe_data if invoice else {}
        return (data or {}).get("invoice_pdf" if pdf else "hosted_invoice_url") or None
    charge = dj.Charge.objects.filter(
        customer_id=customer.stripe_customer_id,
        id=document_id,
        metadata__has_key="mcpb_customer_id",
    ).first()
    return ((charge.stripe_data or {}).get("receipt_url") or None) if charge and not pdf else None


def credit_history(*, customer: Customer, limit: int = 20) -> list[LedgerEntry]:
    """Changes of the credit balance other than calls: grants, refunds, expiries, reversals."""
    return list(
        LedgerEntry.objects.filter(account__customer=customer)
        .exclude(kind=LedgerEntry.Kind.DEBIT)
        .order_by("-id")[:limit]
    )


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None


def customer_card(*, customer: Customer) -> Card | None:
    """The customer's newest saved card, from dj-stripe's mirror; None when none is known."""
    if not customer.stripe_customer_id:
        return None
    method = (
        dj.PaymentMethod.objects.filter(
            customer_id=customer.stripe_customer_id, stripe_data__type="card"
        )
        .order_by("-created")
        .first()
    )
    card = ((method.stripe_data or {}).get("card") or {}) if method else {}
    if not card:
        return None
    return Card(
        brand=str(card.get("brand") or "card").title(),
        last4=str(card.get("last4") or ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def usage_batch(rows, *, after: tuple[datetime, object] | None, size: int) -> list[UsageRecord]:
    """The next ``size`` rows of a ``usage_list`` after the (created_at, id) of the last one.

    Keyset paging: every batch is one short indexed query, however far the export has gone.
    """
    if after is not None:
        created_at, usage_id = after
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=usage_id))
    return list(rows[:size])


# --- the operators' API -----------------------------------------------------------------


def ledger_entry_list(*, customer: Customer) -> QuerySet[LedgerEntry]:
    """The customer's ledger, each entry with the lot it opened (grants, refunds)."""
    return LedgerEntry.objects.filter(account__customer=customer).select_related("lot")


def usage_records() -> QuerySet[UsageRecord]:
    """Settled calls with the names a listing shows; filtered and paged by the caller.

    Only the columns a listing shows are read: not the stored tool result, nor the
    related rows' JSON (a tool's schema, a price's tiers), which cost more to decode
    than the query costs to run.
    """
    return UsageRecord.objects.select_related("tool", "price", "plan", "api_key").only(
        *(f.name for f in UsageRecord._meta.concrete_fields if f.name != "response"),
        "tool__name",
        "price__version",
        "plan__slug",
        "api_key__prefix",
    )


def hold_list_open() -> QuerySet[Hold]:
    """Holds of calls in flight (and spares reserved for the next calls)."""
    return Hold.objects.filter(status=Hold.Status.HELD).select_related("tool")


def tool_list() -> QuerySet[Tool]:
    """Tools, each with its price versions newest first (the first is the active one)."""
    return Tool.objects.prefetch_related(
        Prefetch("prices", queryset=ToolPrice.objects.order_by("-version"))
    )


def tool_price_list(*, tool: Tool) -> QuerySet[ToolPrice]:
    return ToolPrice.objects.filter(tool=tool)
