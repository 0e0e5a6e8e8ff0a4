from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the staff user if needed and print its REST API token."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        username = username.strip()
        if not username:
            raise CommandError("The username cannot be empty.")
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True}
        )
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        token, _ = Token.objects.get_or_create(user=user)
        if created:
            self.stderr.write(
                f"Created staff user {username} (no password: set one to use /admin/)."
            )
        self.stdout.write(token.key)
