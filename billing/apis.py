"""REST API of billing: credits and the ledger, usage, holds, plans, tools and their prices,
Stripe's mirror (subscriptions, invoices, payments), the outbox and meter reconciliations.

Wired in mcpbilling/api/urls.py (docs/decisions/0020).
"""

from __future__ import annotations

import uuid

import django_filters
from django.conf import settings
from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone
from djstripe import models as dj
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import (
    BillingModel,
    CreditPack,
    Hold,
    LedgerEntry,
    MeterReconciliation,
    OutboxMessage,
    PaymentPath,
    Plan,
    Tool,
    ToolPrice,
    UsageRecord,
)
from billing.selectors import (
    customer_balance,
    hold_list_open,
    ledger_entry_list,
    tool_list,
    tool_price_list,
    usage_records,
)
from billing.serializers import (
    CentsDecimalField,
    IdFilter,
    SignedCentsDecimalField,
    SlugLookupField,
    UnixTimeField,
)
from billing.services.calls import hold_release
from billing.services.catalog import plan_create, plan_update, tool_update
from billing.services.ledger import credit_adjust, credit_grant, usage_refund
from billing.services.outbox import outbox_message_requeue
from billing.services.pricing import tool_price_set
from billing.services.subscriptions import subscription_cancel
from customers.models import Customer

MAX_CREDITS = 10**12  # most credits one grant or adjustment moves


def _valid(serializer_class, data, **options) -> dict:
    serializer = serializer_class(data=data, **options)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _customer(customer_id: int) -> Customer:
    return get_object_or_404(Customer.objects.select_related("plan"), pk=customer_id)


def _future(value):
    if value is not None and value <= timezone.now():
        raise serializers.ValidationError("This must be in the future.")
    return value


# --- credits: grants, adjustments, the ledger, the balance ----------------------------


class LedgerEntrySerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    customer = serializers.CharField(source="account.customer_id")
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    credits = serializers.IntegerField(
        source="amount_credits", help_text="Signed: added credits are positive."
    )
    balance_after_credits = serializers.IntegerField()
    description = serializers.CharField()
    usage = serializers.CharField(source="usage_id", allow_null=True)
    expires_at = serializers.DateTimeField(
        source="lot.expires_at",
        allow_null=True,
        help_text="When the credits this entry added expire (null: never, or none added).",
    )
    remaining_credits = serializers.IntegerField(
        source="lot.remaining_credits",
        allow_null=True,
        help_text="What is left unspent of the credits this entry added.",
    )
    created_at = serializers.DateTimeField()


class LedgerEntryFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=LedgerEntry.Kind.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = []


class LedgerEntryListApi(generics.ListAPIView):
    """A customer's credit ledger, newest entry first: every grant, debit, refund, expiry,
    reversal and adjustment."""

    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerEntryFilter
    ordering = ("-id",)

    def get_queryset(self):
        return ledger_entry_list(customer=_customer(self.kwargs["customer_id"])).select_related(
            "account"
        )


class CreditGrantListApi(LedgerEntryListApi):
    """A customer's credit grants (bought, topped up or given by an operator), newest first."""

    filterset_class = None

    class InputSerializer(serializers.Serializer):
        credits = serializers.IntegerField(min_value=1, max_value=MAX_CREDITS)
        description = serializers.CharField(
            max_length=255, required=False, default="", allow_blank=True
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, validators=[_future]
        )

    def get_queryset(self):
        return super().get_queryset().filter(kind=LedgerEntry.Kind.GRANT)

    @extend_schema(
        summary="Grant credits",
        description="Adds credits as a lot of their own (expiring at `expires_at`, if given). "
        "Send an Idempotency-Key so a retry grants once.",
        request=InputSerializer,
        responses={201: LedgerEntrySerializer},
        examples=[
            OpenApiExample(
                "500 credits for a month",
                value={
                    "credits": 500,
                    "description": "Welcome credits",
                    "expires_at": "2030-01-31T00:00:00Z",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, customer_id: int):
        customer = _customer(customer_id)
        data = _valid(self.InputSerializer, request.data)
        entry = credit_grant(
            customer_id=customer.pk,
            idempotency_key=f"api-grant:{request.user.pk}:{uuid.uuid4()}",
            **data,
        )
        return Response(LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class CreditAdjustmentApi(APIView):
    """Correct a customer's credits by hand, with a reason."""

    queryset = LedgerEntry.objects.all()

    class InputSerializer(serializers.Serializer):
        credits = serializers.IntegerField(
            min_value=-MAX_CREDITS,
            max_value=MAX_CREDITS,
            help_text="Signed: positive adds a lot that never expires, negative removes credits "
            "(the ones expiring first; never those held by calls in flight).",
        )
        reason = serializers.CharField(max_length=255)

        def validate_credits(self, value):
            if value == 0:
                raise serializers.ValidationError("An adjustment adds or removes credits, not 0.")
            return value

    @extend_schema(
        summary="Adjust credits",
        request=InputSerializer,
        responses={201: LedgerEntrySerializer},
        examples=[
            OpenApiExample(
                "Take back a double grant",
                value={"credits": -100, "reason": "Granted twice by mistake (ticket 4521)"},
                request_only=True,
            )
        ],
    )
    def post(self, request, customer_id: int):
        customer = _customer(customer_id)
        data = _valid(self.InputSerializer, request.data)
        entry = credit_adjust(
            customer_id=customer.pk,
            idempotency_key=f"api-adjustment:{request.user.pk}:{uuid.uuid4()}",
            **data,
        )
        return Response(LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class BalanceSerializer(serializers.Serializer):
    customer = serializers.CharField(source="customer.pk")
    credits = serializers.IntegerField(
        source="balance.balance_credits", help_text="The balance: the sum of the ledger."
    )
    held_credits = serializers.IntegerField(
        source="balance.held_credits", help_text="Reserved by calls in flight."
    )
    available_credits = serializers.IntegerField(
        source="balance.available_credits", help_text="credits - held_credits."
    )
    uses_credits = serializers.BooleanField(
        source="balance.uses_credits", help_text="Whether the customer's plan uses credits."
    )
    held_decimal = CentsDecimalField(
        source="balance.held_microcents", help_text="Money reserved by calls in flight, cents."
    )
    unbilled_decimal = CentsDecimalField(
        source="balance.unbilled_microcents",
        help_text="Pay-as-you-go usage captured and not collected yet, cents.",
    )
    currency = serializers.SerializerMethodField()

    def get_currency(self, data) -> str:
        plan = data["customer"].plan
        return plan.currency if plan else settings.BILLING_DEFAULT_CURRENCY


class BalanceApi(APIView):
    """A customer's balance."""

    queryset = LedgerEntry.objects.all()

    @extend_schema(responses=BalanceSerializer)
    def get(self, request, customer_id: int):
        customer = _customer(customer_id)
        balance = customer_balance(customer=customer)
        return Response(BalanceSerializer({"customer": customer, "balance": balance}).data)


# --- usage and holds -------------------------------------------------------------------


class UsageRecordSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    customer = serializers.CharField(source="customer_id")
    api_key = serializers.CharField(source="api_key_id", allow_null=True)
    api_key_prefix = serializers.CharField(source="api_key.prefix", allow_null=True)
    tool = serializers.CharField(source="tool.name")
    price_version = serializers.IntegerField(source="price.version", allow_null=True)
    plan = serializers.CharField(source="plan.slug", allow_null=True)
    path = serializers.ChoiceField(choices=PaymentPath.choices, help_text="How it was paid.")
    outcome = serializers.ChoiceField(choices=UsageRecord.Outcome.choices)
    charged = serializers.BooleanField()
    amount_decimal = CentsDecimalField(source="amount_microcents")
    credits = serializers.IntegerField()
    currency = serializers.CharField()
    duration_ms = serializers.IntegerField()
    idempotency_key = serializers.CharField(allow_null=True)
    refunded_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class UsageFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id", help_text="A customer's id.")
    api_key = IdFilter(field_name="api_key_id", help_text="An API key's id.")
    tool = django_filters.CharFilter(field_name="tool__name", help_text="A tool's name.")
    outcome = django_filters.ChoiceFilter(choices=UsageRecord.Outcome.choices)
    path = django_filters.ChoiceFilter(choices=PaymentPath.choices)
    charged = django_filters.BooleanFilter()
    refunded = django_filters.BooleanFilter(
        field_name="refunded_at", lookup_expr="isnull", exclude=True
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = UsageRecord
        fields = []


class UsageListApi(generics.ListAPIView):
    """Settled tool calls, newest first."""

    queryset = UsageRecord.objects.all()
    serializer_class = UsageRecordSerializer
    filterset_class = UsageFilter
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return usage_records()


class UsageDetailApi(APIView):
    """One settled tool call."""

    queryset = UsageRecord.objects.all()

    @extend_schema(responses=UsageRecordSerializer)
    def get(self, request, usage_id):
        return Response(UsageRecordSerializer(get_object_or_404(usage_records(), pk=usage_id)).data)


class UsageRefundApi(APIView):
    """Give back what a call cost."""

    queryset = UsageRecord.objects.all()
    operator_permissions = {"POST": ("billing.change_usagerecord", "billing.add_ledgerentry")}

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=255, required=False, default="")

    @extend_schema(
        summary="Refund a call",
        description="Credits come back as a lot that never expires; a pay-as-you-go amount "
        "is taken off what will be collected; an included or free call is given back to "
        "the period. Once only: a repeat answers the refunded call. A call whose money "
        "already reached Stripe (collected, or reported to a meter) is refunded at Stripe "
        "instead (409).",
        request=InputSerializer,
        responses=UsageRecordSerializer,
    )
    def post(self, request, usage_id):
        usage = get_object_or_404(UsageRecord, pk=usage_id)
        data = _valid(self.InputSerializer, request.data or {})
        usage_refund(
            usage_id=usage.pk, reason=data["reason"] or f"Refunded by {request.user.get_username()}"
        )
        return Response(UsageRecordSerializer(get_object_or_404(usage_records(), pk=usage_id)).data)


class HoldSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    customer = serializers.CharField(source="customer_id")
    api_key = serializers.CharField(source="api_key_id", allow_null=True)
    tool = serializers.CharField(source="tool.name")
    path = serializers.ChoiceField(choices=PaymentPath.choices)
    status = serializers.ChoiceField(choices=Hold.Status.choices)
    spare = serializers.BooleanField(
        help_text="Reserved ahead for a next call of the same key and tool (ADR 0010)."
    )
    credits = serializers.IntegerField()
    amount_decimal = CentsDecimalField(source="amount_microcents")
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="Released by beat if not settled by then.")
    settled_at = serializers.DateTimeField(allow_null=True)


class HoldFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    tool = django_filters.CharFilter(field_name="tool__name")
    spare = django_filters.BooleanFilter()

    class Meta:
        model = Hold
        fields = []


class HoldListApi(generics.ListAPIView):
    """Open holds: what calls in flight have reserved, newest first."""

    queryset = Hold.objects.all()
    serializer_class = HoldSerializer
    filterset_class = HoldFilter
    ordering = ("-id",)

    def get_queryset(self):
        return hold_list_open()


class HoldReleaseApi(APIView):
    """Release an open hold whose call will never settle."""

    queryset = Hold.objects.all()
    operator_permissions = {"POST": ("billing.change_hold",)}

    @extend_schema(
        summary="Release a hold",
        description="Charges nothing and gives back what the hold reserved; the call is "
        "recorded as cancelled (a spare hold is returned, with no call).",
        request=None,
        responses=HoldSerializer,
    )
    def post(self, request, hold_id: int):
        hold = get_object_or_404(Hold, pk=hold_id)
        return Response(HoldSerializer(hold_release(hold_id=hold.pk)).data)


# --- plans -----------------------------------------------------------------------------

MAX_COUNT = 2**31 - 1  # the columns' limit for counts and per-minute limits


class PlanSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    billing_model = serializers.ChoiceField(choices=BillingModel.choices)
    currency = serializers.CharField()
    interval = serializers.ChoiceField(choices=Plan.Interval.choices)
    active = serializers.BooleanField()
    public = serializers.BooleanField()
    included_calls = serializers.IntegerField(allow_null=True)
    overage = serializers.ChoiceField(choices=Plan.Overage.choices)
    price_decimal = CentsDecimalField(
        source="price_cents", stored_in_cents=True, allow_null=True, help_text="Per period."
    )
    free_calls = serializers.IntegerField(allow_null=True)
    free_tier_action = serializers.ChoiceField(choices=Plan.FreeTierAction.choices)
    upgrade_plan = serializers.CharField(source="upgrade_plan.slug", allow_null=True)
    exposure_limit_decimal = CentsDecimalField(source="exposure_limit_microcents", allow_null=True)
    collection_threshold_decimal = CentsDecimalField(
        source="collection_threshold_microcents", allow_null=True
    )
    auto_topup_threshold_credits = serializers.IntegerField(allow_null=True)
    auto_topup_pack = serializers.CharField(source="auto_topup_pack.slug", allow_null=True)
    daily_budget_decimal = CentsDecimalField(source="daily_budget_microcents", allow_null=True)
    rate_limit_per_minute = serializers.IntegerField(allow_null=True)
    tool_rate_limit_per_minute = serializers.IntegerField(allow_null=True)
    stripe_price_id = serializers.CharField()
    stripe_meter_event_name = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PlanInputSerializer(serializers.Serializer):
    """A plan's settings as an operator writes them (slug only on creation)."""

    slug = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    billing_model = serializers.ChoiceField(choices=BillingModel.choices)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    interval = serializers.ChoiceField(choices=Plan.Interval.choices, required=False)
    active = serializers.BooleanField(required=False)
    public = serializers.BooleanField(required=False)
    included_calls = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, allow_null=True
    )
    overage = serializers.ChoiceField(choices=Plan.Overage.choices, required=False)
    price_decimal = CentsDecimalField(
        source="price_cents", stored_in_cents=True, required=False, allow_null=True
    )
    free_calls = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, allow_null=True
    )
    free_tier_action = serializers.ChoiceField(choices=Plan.FreeTierAction.choices, required=False)
    upgrade_plan = SlugLookupField(
        slug_field="slug", queryset=Plan.objects.all(), required=False, allow_null=True
    )
    exposure_limit_decimal = CentsDecimalField(
        source="exposure_limit_microcents", required=False, allow_null=True
    )
    collection_threshold_decimal = CentsDecimalField(
        source="collection_threshold_microcents", required=False, allow_null=True
    )
    auto_topup_threshold_credits = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, allow_null=True
    )
    auto_topup_pack = SlugLookupField(
        slug_field="slug", queryset=CreditPack.objects.all(), required=False, allow_null=True
    )
    daily_budget_decimal = CentsDecimalField(
        source="daily_budget_microcents", required=False, allow_null=True
    )
    rate_limit_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_COUNT, required=False, allow_null=True
    )
    tool_rate_limit_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_COUNT, required=False, allow_null=True
    )
    stripe_meter_event_name = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{0,100}$", required=False, allow_blank=True
    )


class PlanFilter(django_filters.FilterSet):
    billing_model = django_filters.ChoiceFilter(choices=BillingModel.choices)
    active = django_filters.BooleanFilter()
    public = django_filters.BooleanFilter()

    class Meta:
        model = Plan
        fields = []


def _plans():
    return Plan.objects.select_related("upgrade_plan", "auto_topup_pack")


class PlanListApi(generics.ListAPIView):
    """Plans, by slug."""

    queryset = Plan.objects.all()
    serializer_class = PlanSerializer
    filterset_class = PlanFilter
    ordering = ("slug",)

    def get_queryset(self):
        return _plans()

    @extend_schema(
        summary="Create a plan",
        description="Sold at Stripe once its catalogue is synced "
        "(`manage.py stripe_sync_catalog` or the admin's action).",
        request=PlanInputSerializer,
        responses={201: PlanSerializer},
        examples=[
            OpenApiExample(
                "Prepaid credits",
                value={"slug": "team", "name": "Team", "billing_model": "credits"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        plan = plan_create(**_valid(PlanInputSerializer, request.data))
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class PlanDetailApi(APIView):
    """One plan."""

    queryset = Plan.objects.all()

    class InputSerializer(PlanInputSerializer):
        slug = None  # a plan's slug names it at Stripe and in links: it stays

    @extend_schema(responses=PlanSerializer)
    def get(self, request, plan_id: int):
        return Response(PlanSerializer(get_object_or_404(_plans(), pk=plan_id)).data)

    @extend_schema(
        summary="Change a plan",
        description="Customers on it are billed by the new settings from their next call.",
        request=InputSerializer,
        responses=PlanSerializer,
    )
    def patch(self, request, plan_id: int):
        plan = get_object_or_404(Plan, pk=plan_id)
        changes = _valid(self.InputSerializer, request.data, partial=True)
        plan_update(plan=plan, **changes)
        return Response(PlanSerializer(get_object_or_404(_plans(), pk=plan_id)).data)


# --- tools and their prices ------------------------------------------------------------


class TierSerializer(serializers.Serializer):
    up_to = serializers.IntegerField(
        min_value=1,
        max_value=MAX_COUNT,
        allow_null=True,
        help_text="The last call of the period this tier prices (null: the open last tier).",
    )
    unit_amount_decimal = CentsDecimalField(source="unit_amount_microcents")
    credits = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, allow_null=True, required=False
    )


class ToolPriceSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    tool = serializers.CharField(source="tool.name")
    version = serializers.IntegerField()
    currency = serializers.CharField()
    unit_amount_decimal = CentsDecimalField(source="unit_amount_microcents")
    credits = serializers.IntegerField(allow_null=True, help_text="Per call, when payable so.")
    tiers = TierSerializer(many=True, help_text="Volume tiers by the call's place in the period.")
    charge_failed_calls = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ToolSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    source = serializers.ChoiceField(choices=Tool.Source.choices)
    upstream = serializers.CharField(source="upstream_id", allow_null=True)
    upstream_name = serializers.CharField()
    input_schema = serializers.DictField()
    is_free = serializers.BooleanField()
    enabled = serializers.BooleanField()
    timeout_s = serializers.FloatField()
    price = serializers.SerializerMethodField(help_text="The active price (its newest version).")
    created_at = serializers.DateTimeField()

    @extend_schema_field(ToolPriceSerializer(allow_null=True))
    def get_price(self, tool):
        versions = list(tool.prices.all())  # newest first (tool_list)
        return ToolPriceSerializer(versions[0]).data if versions else None


class ToolFilter(django_filters.FilterSet):
    source = django_filters.ChoiceFilter(choices=Tool.Source.choices)
    enabled = django_filters.BooleanFilter()
    upstream = IdFilter(field_name="upstream_id")
    q = django_filters.CharFilter(method="search", help_text="Part of the name or the title.")

    class Meta:
        model = Tool
        fields = []

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(title__icontains=value))


class ToolListApi(generics.ListAPIView):
    """Tools offered (or not yet) at the MCP endpoint, by name, each with its active price.

    Python tools come from the code, upstream tools from refreshing their server."""

    queryset = Tool.objects.all()
    serializer_class = ToolSerializer
    filterset_class = ToolFilter
    ordering = ("name",)

    def get_queryset(self):
        return tool_list()


class ToolDetailApi(APIView):
    """One tool."""

    queryset = Tool.objects.all()

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200, allow_blank=True)
        description = serializers.CharField(max_length=10_000, allow_blank=True)
        enabled = serializers.BooleanField()
        is_free = serializers.BooleanField(help_text="Offered without a price, charging nothing.")
        timeout_s = serializers.FloatField(min_value=0.1, max_value=600)

    @extend_schema(responses=ToolSerializer)
    def get(self, request, tool_id: int):
        return Response(ToolSerializer(get_object_or_404(tool_list(), pk=tool_id)).data)

    @extend_schema(summary="Change a tool", request=InputSerializer, responses=ToolSerializer)
    def patch(self, request, tool_id: int):
        tool = get_object_or_404(Tool, pk=tool_id)
        tool_update(tool=tool, **_valid(self.InputSerializer, request.data, partial=True))
        return Response(ToolSerializer(get_object_or_404(tool_list(), pk=tool_id)).data)


class ToolPriceListApi(generics.ListAPIView):
    """A tool's price versions, newest first; the newest is the active one."""

    queryset = ToolPrice.objects.all()
    serializer_class = ToolPriceSerializer
    ordering = ("-version",)

    class InputSerializer(serializers.Serializer):
        unit_amount_decimal = CentsDecimalField(source="unit_amount_microcents")
        credits = serializers.IntegerField(
            min_value=0, max_value=MAX_COUNT, required=False, allow_null=True, default=None
        )
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, default="usd")
        tiers = TierSerializer(many=True, required=False, default=list, max_length=100)
        charge_failed_calls = serializers.BooleanField(required=False, default=False)

    def get_queryset(self):
        tool = get_object_or_404(Tool, pk=self.kwargs["tool_id"])
        return tool_price_list(tool=tool).select_related("tool")

    @extend_schema(
        summary="Set a new price",
        description="A new version: calls from now on are charged at it; earlier versions "
        "stay as they were (usage keeps the version it was charged at).",
        request=InputSerializer,
        responses={201: ToolPriceSerializer},
        examples=[
            OpenApiExample(
                "A quarter cent or one credit per call",
                value={"unit_amount_decimal": "0.25", "credits": 1},
                request_only=True,
            ),
            OpenApiExample(
                "Cheaper past 1,000 calls a period",
                value={
                    "unit_amount_decimal": "1",
                    "tiers": [
                        {"up_to": 1000, "unit_amount_decimal": "1", "credits": 1},
                        {"up_to": None, "unit_amount_decimal": "0.5", "credits": 1},
                    ],
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request, tool_id: int):
        tool = get_object_or_404(Tool, pk=tool_id)
        price = tool_price_set(tool=tool, **_valid(self.InputSerializer, request.data))
        return Response(ToolPriceSerializer(price).data, status=status.HTTP_201_CREATED)


# --- Stripe's mirror: subscriptions, invoices, payments --------------------------------


def _with_customer(queryset):
    """Mirror rows with the id of our customer behind their Stripe customer."""
    ours = Customer.objects.filter(stripe_customer_id=OuterRef("customer_id")).values("pk")[:1]
    return queryset.annotate(our_customer=Subquery(ours))


class StripeMirrorFilter(django_filters.FilterSet):
    customer = IdFilter(method="of_customer", help_text="Our customer's id.")
    status = django_filters.CharFilter(field_name="stripe_data__status", help_text="Stripe's.")

    def of_customer(self, queryset, name, value):
        return queryset.filter(our_customer=value)


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stripe's id (sub_...).")
    customer = serializers.CharField(source="our_customer", allow_null=True)
    stripe_customer_id = serializers.CharField(source="customer_id", allow_null=True)
    status = serializers.CharField(source="stripe_data.status")
    price = serializers.SerializerMethodField(help_text="Stripe's price of the first item.")
    current_period_start = serializers.SerializerMethodField()
    current_period_end = serializers.SerializerMethodField()
    cancel_at_period_end = serializers.BooleanField(source="stripe_data.cancel_at_period_end")
    canceled_at = UnixTimeField(source="stripe_data.canceled_at", allow_null=True)
    created = UnixTimeField(source="stripe_data.created", allow_null=True)

    @staticmethod
    def _item(subscription) -> dict:
        items = (subscription.stripe_data.get("items") or {}).get("data") or [{}]
        return items[0]

    def get_price(self, subscription) -> str | None:
        price = self._item(subscription).get("price") or {}
        return price.get("id") if isinstance(price, dict) else price

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_current_period_start(self, subscription):
        return UnixTimeField().to_representation(
            self._item(subscription).get("current_period_start")
        )

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_current_period_end(self, subscription):
        return UnixTimeField().to_representation(self._item(subscription).get("current_period_end"))


class SubscriptionFilter(StripeMirrorFilter):
    class Meta:
        model = dj.Subscription
        fields = []


class SubscriptionListApi(generics.ListAPIView):
    """Stripe subscriptions as dj-stripe mirrors them, newest first."""

    queryset = dj.Subscription.objects.all()
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    ordering = ("-djstripe_id",)

    def get_queryset(self):
        return _with_customer(dj.Subscription.objects.all())


class SubscriptionDetailApi(APIView):
    """One Stripe subscription."""

    queryset = dj.Subscription.objects.all()

    @extend_schema(responses=SubscriptionSerializer)
    def get(self, request, subscription_id: str):
        found = _with_customer(dj.Subscription.objects.all())
        return Response(SubscriptionSerializer(get_object_or_404(found, id=subscription_id)).data)


class SubscriptionCancelApi(APIView):
    """Cancel a subscription through Stripe."""

    queryset = dj.Subscription.objects.all()
    operator_permissions = {"POST": ("djstripe.change_subscription",)}

    class InputSerializer(serializers.Serializer):
        at_period_end = serializers.BooleanField(
            required=False,
            default=False,
            help_text="false: now, invoicing usage so far; true: when the period ends.",
        )

    @extend_schema(
        summary="Cancel a subscription",
        description="Through Stripe; the customer returns to the fallback plan when "
        "Stripe's webhook confirms the end.",
        request=InputSerializer,
        responses=SubscriptionSerializer,
    )
    def post(self, request, subscription_id: str):
        subscription = get_object_or_404(dj.Subscription, id=subscription_id)
        data = _valid(self.InputSerializer, request.data or {})
        subscription_cancel(subscription=subscription, **data)
        found = _with_customer(dj.Subscription.objects.all())
        return Response(SubscriptionSerializer(found.get(id=subscription_id)).data)


class InvoiceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stripe's id (in_...).")
    customer = serializers.CharField(source="our_customer", allow_null=True)
    stripe_customer_id = serializers.CharField(source="customer_id", allow_null=True)
    number = serializers.CharField(source="stripe_data.number", allow_null=True, default=None)
    status = serializers.CharField(source="stripe_data.status", allow_null=True)
    currency = serializers.CharField(source="stripe_data.currency")
    amount_due_decimal = serializers.CharField(source="stripe_data.amount_due")
    amount_paid_decimal = serializers.CharField(source="stripe_data.amount_paid")
    amount_remaining_decimal = serializers.CharField(source="stripe_data.amount_remaining")
    total_decimal = serializers.CharField(source="stripe_data.total")
    subscription = serializers.CharField(source="subscription_id", allow_null=True)
    hosted_invoice_url = serializers.CharField(
        source="stripe_data.hosted_invoice_url", allow_null=True, default=None
    )
    period_start = UnixTimeField(source="stripe_data.period_start", allow_null=True)
    period_end = UnixTimeField(source="stripe_data.period_end", allow_null=True)
    created = UnixTimeField(source="stripe_data.created", allow_null=True)


class InvoiceFilter(StripeMirrorFilter):
    class Meta:
        model = dj.Invoice
        fields = []


class InvoiceListApi(generics.ListAPIView):
    """Stripe invoices as dj-stripe mirrors them, newest first (amounts in cents)."""

    queryset = dj.Invoice.objects.all()
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    ordering = ("-djstripe_id",)

    def get_queryset(self):
        return _with_customer(dj.Invoice.objects.all())


class PaymentSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stripe's PaymentIntent id (pi_...).")
    customer = serializers.CharField(source="our_customer", allow_null=True)
    stripe_customer_id = serializers.CharField(source="customer_id", allow_null=True)
    status = serializers.CharField(source="stripe_data.status")
    currency = serializers.CharField(source="stripe_data.currency")
    amount_decimal = serializers.CharField(source="stripe_data.amount")
    amount_received_decimal = serializers.CharField(
        source="stripe_data.amount_received", allow_null=True, default=None
    )
    description = serializers.CharField(
        source="stripe_data.description", allow_null=True, default=None
    )
    failure_message = serializers.SerializerMethodField()
    created = UnixTimeField(source="stripe_data.created", allow_null=True)

    def get_failure_message(self, payment) -> str | None:
        error = payment.stripe_data.get("last_payment_error") or {}
        return error.get("message")


class PaymentFilter(StripeMirrorFilter):
    class Meta:
        model = dj.PaymentIntent
        fields = []


class PaymentListApi(generics.ListAPIView):
    """Payments (Stripe PaymentIntents: checkouts, collections, top-ups) as dj-stripe mirrors
    them, newest first (amounts in cents)."""

    queryset = dj.PaymentIntent.objects.all()
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    ordering = ("-djstripe_id",)

    def get_queryset(self):
        return _with_customer(dj.PaymentIntent.objects.all())


# --- the outbox and meter reconciliations ----------------------------------------------


class OutboxMessageSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    kind = serializers.ChoiceField(choices=OutboxMessage.Kind.choices)
    identifier = serializers.CharField(help_text="What Stripe dedupes a resend by.")
    customer = serializers.CharField(source="customer_id", allow_null=True)
    usage = serializers.CharField(source="usage_id", allow_null=True)
    state = serializers.ChoiceField(source="status", choices=OutboxMessage.Status.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    stripe_id = serializers.CharField()
    payload = serializers.DictField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class OutboxFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(field_name="status", choices=OutboxMessage.Status.choices)
    kind = django_filters.ChoiceFilter(choices=OutboxMessage.Kind.choices)
    customer = IdFilter(field_name="customer_id")

    class Meta:
        model = OutboxMessage
        fields = []


class OutboxListApi(generics.ListAPIView):
    """What must reach (or reached) Stripe, newest first; `?state=dead` needs an operator."""

    queryset = OutboxMessage.objects.all()
    serializer_class = OutboxMessageSerializer
    filterset_class = OutboxFilter
    ordering = ("-created_at", "-id")


class OutboxRequeueApi(APIView):
    """Send a dead or failed row again."""

    queryset = OutboxMessage.objects.all()
    operator_permissions = {"POST": ("billing.change_outboxmessage",)}

    @extend_schema(
        summary="Send an outbox row again",
        description="A dead or failed row is sent at once, with a fresh count of attempts.",
        request=None,
        responses=OutboxMessageSerializer,
    )
    def post(self, request, message_id):
        message = get_object_or_404(OutboxMessage, pk=message_id)
        return Response(OutboxMessageSerializer(outbox_message_requeue(message=message)).data)


class MeterReconciliationSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    customer = serializers.CharField(source="customer_id")
    event_name = serializers.CharField()
    stripe_meter_id = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    local_total_decimal = CentsDecimalField(source="local_total", help_text="What we sent.")
    stripe_total_decimal = CentsDecimalField(source="stripe_total", help_text="Stripe's sum.")
    difference_decimal = SignedCentsDecimalField(
        source="difference", help_text="Stripe's minus ours: negative when Stripe misses usage."
    )
    checked_at = serializers.DateTimeField()


class MeterReconciliationFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    event_name = django_filters.CharFilter()
    mismatch = django_filters.BooleanFilter(
        method="of_mismatch", help_text="true: only windows where Stripe differs."
    )
    window_after = django_filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="gte")
    window_before = django_filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="lt")

    class Meta:
        model = MeterReconciliation
        fields = []

    def of_mismatch(self, queryset, name, value):
        return queryset.exclude(difference=0) if value else queryset.filter(difference=0)


class MeterReconciliationListApi(generics.ListAPIView):
    """Comparisons of what we sent to Stripe's meters with Stripe's summaries, newest first."""

    queryset = MeterReconciliation.objects.all()
    serializer_class = MeterReconciliationSerializer
    filterset_class = MeterReconciliationFilter
    ordering = ("-id",)
