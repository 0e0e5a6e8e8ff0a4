from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from mcpbilling.api.operators import OPERATORS, VIEWERS, operator_enrol


class Command(BaseCommand):
    help = (
        "Create the staff user if needed, put it in the Operators group (or, with --view-only, "
        "Operators (view only)) and print its REST API token."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--view-only",
            action="store_true",
            help="The operator may read everything through the API and change nothing.",
        )

    def handle(self, *args, username, view_only=False, **options):
        username = username.strip()
        if not username:
            raise CommandError("The username cannot be empty.")
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True}
        )
        operator_enrol(user=user, view_only=view_only)
        token, _ = Token.objects.get_or_create(user=user)
        if created:
            self.stderr.write(
                f"Created staff user {username} (no password: set one to use /admin/)."
            )
        group = VIEWERS if view_only else OPERATORS
        if user.is_superuser:
            self.stderr.write(f"{username} is a superuser: it may do everything anyway.")
        else:
            self.stderr.write(f"{username} is in the group {group}.")
        self.stdout.write(token.key)
