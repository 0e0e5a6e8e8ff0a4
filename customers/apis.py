"""REST API of customers and their API keys (wired in mcpbilling/api/urls.py)."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Plan
from billing.serializers import CentsDecimalField, SlugLookupField
from customers.models import ApiKey, Customer
from customers.selectors import customer_api_keys, customer_list
from customers.services import (
    OPERATOR_STATUSES,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    customer_create,
    customer_deactivate,
    customer_update,
)


def _valid(serializer_class, data, **options) -> dict:
    serializer = serializer_class(data=data, **options)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- customers ------------------------------------------------------------------------


class CustomerSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk", read_only=True)
    email = serializers.EmailField()
    name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Customer.Status.choices,
        help_text="active; past_due (a payment failed, set from Stripe); suspended by an "
        "operator; canceled (deactivated).",
    )
    plan = serializers.CharField(source="plan.slug", allow_null=True, help_text="The plan's slug.")
    subscription_status = serializers.CharField(
        help_text="Stripe's status of the customer's subscription; empty without one."
    )
    has_payment_method = serializers.BooleanField()
    stripe_customer_id = serializers.CharField(allow_null=True)
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    daily_budget_decimal = CentsDecimalField(
        source="daily_budget_microcents",
        allow_null=True,
        help_text="Spending cap per UTC day across all keys, cents (null: the plan's).",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(field_name="email", lookup_expr="iexact")
    plan = django_filters.CharFilter(field_name="plan__slug", help_text="A plan's slug.")
    status = django_filters.ChoiceFilter(choices=Customer.Status.choices)
    q = django_filters.CharFilter(method="search", help_text="Part of the email or the name.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = []

    def search(self, queryset, name, value):
        return queryset.filter(Q(email__icontains=value) | Q(name__icontains=value))


class CustomerListApi(generics.ListAPIView):
    """Customers, newest first."""

    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    ordering = ("-id",)

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        plan = SlugLookupField(
            slug_field="slug",
            queryset=Plan.objects.all(),
            required=False,
            allow_null=True,
            help_text="A plan's slug.",
        )

    def get_queryset(self):
        return customer_list()

    @extend_schema(
        summary="Create a customer",
        request=InputSerializer,
        responses={201: CustomerSerializer},
        examples=[
            OpenApiExample(
                "A customer on the credits plan",
                value={"email": "ada@example.com", "name": "Ada", "plan": "credits"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        customer = customer_create(**_valid(self.InputSerializer, request.data))
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(APIView):
    """One customer."""

    queryset = Customer.objects.all()

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        name = serializers.CharField(max_length=200, allow_blank=True)
        plan = SlugLookupField(slug_field="slug", queryset=Plan.objects.all())
        status = serializers.ChoiceField(
            choices=OPERATOR_STATUSES,
            help_text="suspended stops the customer's calls; active lets them go on.",
        )
        daily_budget_decimal = CentsDecimalField(source="daily_budget_microcents", allow_null=True)

    @extend_schema(responses=CustomerSerializer)
    def get(self, request, customer_id: int):
        return Response(CustomerSerializer(get_object_or_404(customer_list(), pk=customer_id)).data)

    @extend_schema(
        summary="Change a customer",
        request=InputSerializer,
        responses=CustomerSerializer,
    )
    def patch(self, request, customer_id: int):
        customer = get_object_or_404(customer_list(), pk=customer_id)
        changes = _valid(self.InputSerializer, request.data, partial=True)
        return Response(CustomerSerializer(customer_update(customer=customer, **changes)).data)

    @extend_schema(
        summary="Deactivate a customer",
        description="Cancels the customer and revokes every key; nothing is erased (the "
        "ledger and the usage stay). Refused while a Stripe subscription still bills them.",
        responses={200: CustomerSerializer},
    )
    def delete(self, request, customer_id: int):
        customer = get_object_or_404(customer_list(), pk=customer_id)
        return Response(CustomerSerializer(customer_deactivate(customer=customer)).data)


# --- API keys -------------------------------------------------------------------------


class ApiKeySerializer(serializers.Serializer):
    id = serializers.CharField(source="pk", read_only=True)
    customer = serializers.CharField(source="customer_id", help_text="The customer's id.")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's public start, e.g. mcpb_0123456789ab.")
    scopes = serializers.ListField(
        child=serializers.CharField(), help_text='Tool names it may call; ["*"]: every tool.'
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    daily_budget_decimal = CentsDecimalField(source="daily_budget_microcents", allow_null=True)
    created_at = serializers.DateTimeField()


class IssuedKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(
        help_text="The whole key (mcpb_...): shown in this answer only, stored hashed."
    )

    def to_representation(self, issued):
        return {**ApiKeySerializer(issued.api_key).data, "secret": issued.secret}


def _customer(customer_id: int) -> Customer:
    return get_object_or_404(Customer, pk=customer_id)


def _api_key(customer_id: int, key_id: int) -> ApiKey:
    return get_object_or_404(customer_api_keys(customer=_customer(customer_id)), pk=key_id)


class ApiKeyFilter(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(
        field_name="revoked_at", lookup_expr="isnull", exclude=True, help_text="true: revoked."
    )

    class Meta:
        model = ApiKey
        fields = []


class ApiKeyListApi(generics.ListAPIView):
    """A customer's API keys, newest first (the secrets are never shown again)."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    ordering = ("-id",)

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(
            child=serializers.CharField(max_length=128),
            max_length=200,
            min_length=1,
            required=False,
            help_text='Tool names the key may call; default ["*"], every tool of the plan.',
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True)
        daily_budget_decimal = CentsDecimalField(
            source="daily_budget_microcents",
            required=False,
            allow_null=True,
            help_text="Spending cap of this key per UTC day, cents (null: none).",
        )

        def validate_expires_at(self, value):
            if value is not None and value <= timezone.now():
                raise serializers.ValidationError("An expiry must be in the future.")
            return value

    def get_queryset(self):
        return customer_api_keys(customer=_customer(self.kwargs["customer_id"]))

    @extend_schema(
        summary="Issue an API key",
        request=InputSerializer,
        responses={201: IssuedKeySerializer},
        examples=[
            OpenApiExample(
                "A key for one tool, for 90 days",
                value={
                    "name": "ci",
                    "scopes": ["calculate"],
                    "expires_at": "2030-01-01T00:00:00Z",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, customer_id: int):
        customer = _customer(customer_id)
        issued = api_key_create(customer=customer, **_valid(self.InputSerializer, request.data))
        return Response(IssuedKeySerializer(issued).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    """One API key of a customer."""

    queryset = ApiKey.objects.all()

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request, customer_id: int, key_id: int):
        return Response(ApiKeySerializer(_api_key(customer_id, key_id)).data)

    @extend_schema(
        summary="Revoke an API key",
        description="The key stops working at once; the row stays as a record.",
        responses={200: ApiKeySerializer},
    )
    def delete(self, request, customer_id: int, key_id: int):
        revoked = api_key_revoke(api_key=_api_key(customer_id, key_id))
        return Response(ApiKeySerializer(revoked).data)


class ApiKeyRotateApi(APIView):
    """Replace a key: it is revoked and a new one with its name, scopes and limits issued."""

    queryset = ApiKey.objects.all()
    operator_permissions = {"POST": ("customers.add_apikey", "customers.change_apikey")}

    @extend_schema(summary="Rotate an API key", request=None, responses={201: IssuedKeySerializer})
    def post(self, request, customer_id: int, key_id: int):
        issued = api_key_rotate(api_key=_api_key(customer_id, key_id))
        return Response(IssuedKeySerializer(issued).data, status=status.HTTP_201_CREATED)
