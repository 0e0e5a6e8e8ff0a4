"""The Python tools the gateway sells out of the box (listed in MCP_TOOL_MODULES)."""
