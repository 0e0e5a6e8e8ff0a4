"""The customer's pages at the site's root: pricing or dashboard, usage, connect."""

from django.urls import path

from billing.views import connect, dashboard, usage

app_name = "site"

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("pricing/", dashboard.pricing, name="pricing"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_export, name="usage-export"),
    path("usage/<uuid:usage_id>/", usage.usage_detail, name="usage-detail"),
    path("connect/", connect.connect, name="connect"),
]
