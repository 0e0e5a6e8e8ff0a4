"""Every endpoint of the REST API under /api/v1/ (docs/decisions/0020).

Views live in their app's ``apis.py``; an app adds its endpoints by adding
their paths here. ``<id:...>`` is a database id as the API writes ids: a
string of digits (at most 18, so it always fits the column); ``<stripe_id:...>``
is Stripe's (``sub_...``, ``evt_...``).
"""

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from billing import apis as billing
from customers import apis as customers
from mcpbilling.api.views import not_found
from mcpbilling.gateway import apis as gateway
from webhooks import apis as webhooks


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


class StripeIdConverter:
    regex = "[A-Za-z0-9_]{1,255}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


register_converter(IdConverter, "id")
register_converter(StripeIdConverter, "stripe_id")

app_name = "api"

CUSTOMER = "customers/<id:customer_id>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    # customers and their keys
    path("customers/", customers.CustomerListApi.as_view(), name="customers"),
    path(CUSTOMER, customers.CustomerDetailApi.as_view(), name="customer"),
    path(f"{CUSTOMER}api-keys/", customers.ApiKeyListApi.as_view(), name="api-keys"),
    path(f"{CUSTOMER}api-keys/<id:key_id>/", customers.ApiKeyDetailApi.as_view(), name="api-key"),
    path(
        f"{CUSTOMER}api-keys/<id:key_id>/rotate/",
        customers.ApiKeyRotateApi.as_view(),
        name="api-key-rotate",
    ),
    # credits
    path(f"{CUSTOMER}credit-grants/", billing.CreditGrantListApi.as_view(), name="credit-grants"),
    path(f"{CUSTOMER}adjustments/", billing.CreditAdjustmentApi.as_view(), name="adjustments"),
    path(f"{CUSTOMER}ledger-entries/", billing.LedgerEntryListApi.as_view(), name="ledger-entries"),
    path(f"{CUSTOMER}balance/", billing.BalanceApi.as_view(), name="balance"),
    # usage and holds
    path("usage/", billing.UsageListApi.as_view(), name="usage"),
    path("usage/<uuid:usage_id>/", billing.UsageDetailApi.as_view(), name="usage-record"),
    path("usage/<uuid:usage_id>/refund/", billing.UsageRefundApi.as_view(), name="usage-refund"),
    path("holds/", billing.HoldListApi.as_view(), name="holds"),
    path("holds/<id:hold_id>/release/", billing.HoldReleaseApi.as_view(), name="hold-release"),
    # the catalogue
    path("plans/", billing.PlanListApi.as_view(), name="plans"),
    path("plans/<id:plan_id>/", billing.PlanDetailApi.as_view(), name="plan"),
    path("tools/", billing.ToolListApi.as_view(), name="tools"),
    path("tools/<id:tool_id>/", billing.ToolDetailApi.as_view(), name="tool"),
    path("tools/<id:tool_id>/prices/", billing.ToolPriceListApi.as_view(), name="tool-prices"),
    path("upstream-servers/", gateway.UpstreamServerListApi.as_view(), name="upstream-servers"),
    path(
        "upstream-servers/<id:server_id>/",
        gateway.UpstreamServerDetailApi.as_view(),
        name="upstream-server",
    ),
    path(
        "upstream-servers/<id:server_id>/refresh/",
        gateway.UpstreamServerRefreshApi.as_view(),
        name="upstream-server-refresh",
    ),
    # Stripe's mirror
    path("subscriptions/", billing.SubscriptionListApi.as_view(), name="subscriptions"),
    path(
        "subscriptions/<stripe_id:subscription_id>/",
        billing.SubscriptionDetailApi.as_view(),
        name="subscription",
    ),
    path(
        "subscriptions/<stripe_id:subscription_id>/cancel/",
        billing.SubscriptionCancelApi.as_view(),
        name="subscription-cancel",
    ),
    path("invoices/", billing.InvoiceListApi.as_view(), name="invoices"),
    path("payments/", billing.PaymentListApi.as_view(), name="payments"),
    # webhooks, the outbox, reconciliation
    path("webhook-events/", webhooks.WebhookEventListApi.as_view(), name="webhook-events"),
    path(
        "webhook-events/<stripe_id:event_id>/",
        webhooks.WebhookEventDetailApi.as_view(),
        name="webhook-event",
    ),
    path(
        "webhook-events/<stripe_id:event_id>/retry/",
        webhooks.WebhookEventRetryApi.as_view(),
        name="webhook-event-retry",
    ),
    path("outbox/", billing.OutboxListApi.as_view(), name="outbox"),
    path(
        "outbox/<uuid:message_id>/requeue/",
        billing.OutboxRequeueApi.as_view(),
        name="outbox-requeue",
    ),
    path(
        "meter-reconciliations/",
        billing.MeterReconciliationListApi.as_view(),
        name="meter-reconciliations",
    ),
    # Anything else under /api/v1/: a 404 in the one error shape.
    re_path(r"^(?P<path>[\s\S]*)$", not_found),
]
