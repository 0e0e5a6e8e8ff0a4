from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API's own state: the answers kept for Idempotency-Key."""

    name = "mcpbilling.api"
    label = "api"
    verbose_name = "REST API"
