"""An offline, stateful, Stripe-compatible HTTP server for development, demos and tests.

``create_app()`` builds the ASGI app; ``manage.py stripe_emulator`` serves it; ``testing``
runs it in a thread for the test suite. See docs/stripe-emulator.md.
"""
