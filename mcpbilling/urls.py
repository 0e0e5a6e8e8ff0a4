from django.contrib import admin
from django.urls import include, path

from mcpbilling import health
from mcpbilling.gateway import views as gateway_views
from webhooks.views import stripe_webhook

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path(
        ".well-known/oauth-protected-resource",
        gateway_views.protected_resource_metadata,
        name="oauth-protected-resource",
    ),
    path(
        ".well-known/oauth-protected-resource/mcp",
        gateway_views.protected_resource_metadata,
        name="oauth-protected-resource-mcp",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("mcpbilling.api.urls", namespace="api")),
    # dj-stripe's webhook view behind our checks (webhooks/views.py); same path and name.
    path("stripe/webhook/<uuid:uuid>/", stripe_webhook, name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("billing/", include("billing.urls")),
    path("accounts/", include("allauth.urls")),
    # The customer's pages: pricing (signed out) or dashboard, usage, keys, connect.
    path("", include("billing.site_urls")),
    path("", include("customers.urls")),
]

handler404 = "mcpbilling.error_pages.not_found"
handler403 = "mcpbilling.error_pages.forbidden"
handler500 = "mcpbilling.error_pages.server_error"
