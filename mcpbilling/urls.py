from django.contrib import admin
from django.urls import include, path

from mcpbilling import health
from mcpbilling.gateway import views as gateway_views

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
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("billing/", include("billing.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
]
