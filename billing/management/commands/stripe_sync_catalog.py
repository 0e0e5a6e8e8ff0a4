from django.core.management.base import BaseCommand

from billing.services.stripe_catalog import catalog_stripe_sync


class Command(BaseCommand):
    help = "Create or update Stripe products, prices and meters for every plan and credit pack."

    def handle(self, *args, **options) -> None:
        for name, synced in catalog_stripe_sync().items():
            line = f"{name}: price={synced.price_id or '-'}"
            if synced.metered_price_id:
                line += f" metered_price={synced.metered_price_id}"
            self.stdout.write(line)
