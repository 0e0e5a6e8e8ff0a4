from django.conf import settings
from django.core.management.base import BaseCommand

from webhooks.services import webhook_endpoint_ensure


class Command(BaseCommand):
    help = "Create the Stripe webhook endpoint for SITE_URL/stripe/webhook/<uuid>/ (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site-url", default=settings.SITE_URL, help="public base URL")

    def handle(self, *args, site_url: str, **options) -> None:
        endpoint = webhook_endpoint_ensure(site_url=site_url)
        self.stdout.write(f"webhook_endpoint={endpoint.id} url={endpoint.url}")
