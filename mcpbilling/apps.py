from django.apps import AppConfig


class McpBillingConfig(AppConfig):
    """The project package as an app: its management commands and templates."""

    name = "mcpbilling"
    verbose_name = "MCP Billing"
