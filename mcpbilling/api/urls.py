"""Every endpoint of the REST API under /api/v1/ (docs/decisions/0020).

Views live in their app's ``apis.py``; an app adds its endpoints by adding
their paths here. ``<id:...>`` is a database id as the API writes ids: a
string of digits (at most 18, so it always fits the column).
"""

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from customers import apis as customers
from mcpbilling.api.views import not_found


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(IdConverter, "id")

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    # customers
    path("customers/", customers.CustomerListApi.as_view(), name="customers"),
    path("customers/<id:customer_id>/", customers.CustomerDetailApi.as_view(), name="customer"),
    path(
        "customers/<id:customer_id>/api-keys/",
        customers.ApiKeyListApi.as_view(),
        name="api-keys",
    ),
    path(
        "customers/<id:customer_id>/api-keys/<id:key_id>/",
        customers.ApiKeyDetailApi.as_view(),
        name="api-key",
    ),
    path(
        "customers/<id:customer_id>/api-keys/<id:key_id>/rotate/",
        customers.ApiKeyRotateApi.as_view(),
        name="api-key-rotate",
    ),
    # Anything else under /api/v1/: a 404 in the one error shape.
    re_path(r"^(?P<path>.*)$", not_found),
]
