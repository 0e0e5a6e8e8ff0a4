"""The operators' REST API under /api/v1/: its framework and its wiring.

Each app keeps its API views in its own ``apis.py``; ``urls.py`` here wires them
under /api/v1/. Everything the views share comes from DRF's settings, so an
app's views import nothing from this package (docs/decisions/0020): operator
authentication and model permissions (``permissions``), the one error shape
(``errors``), cursor pagination (``pagination``), the OpenAPI schema
(``schema``) and ``Idempotency-Key`` on every POST (``idempotency``).
"""
