from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Stripe webhooks"

    def ready(self) -> None:
        from djstripe import signals

        from webhooks.receivers import event_received

        # After dj-stripe has verified and stored an event (every type, known or not).
        signals.webhook_post_process.connect(event_received, dispatch_uid="webhooks.received")
