from django.urls import path

from billing.views import payments

app_name = "billing"

urlpatterns = [
    path("credits/", payments.credits, name="credits"),
    path("plans/", payments.plans, name="plans"),
    path("payment-method/", payments.payment_method, name="payment-method"),
    path("portal/", payments.portal, name="portal"),
    path("invoices/", payments.invoices, name="invoices"),
    path(
        "invoices/<str:document_id>/",
        payments.document,
        {"kind": "invoice"},
        name="invoice",
    ),
    path(
        "invoices/<str:document_id>/pdf/",
        payments.document,
        {"kind": "invoice", "pdf": True},
        name="invoice-pdf",
    ),
    path(
        "receipts/<str:document_id>/",
        payments.document,
        {"kind": "payment"},
        name="receipt",
    ),
]
