"""The customer's pages that show billing: pricing, dashboard, usage, connect, payments."""
