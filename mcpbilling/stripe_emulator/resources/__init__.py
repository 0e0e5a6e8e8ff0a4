"""The emulated API, one module per area; each exposes ``routes``."""

from . import billing, checkout, core, events, meters, payments, portal

MODULES = (core, payments, billing, checkout, portal, meters, events)
