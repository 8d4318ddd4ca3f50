from django.core.management.base import BaseCommand, CommandError

from flexibility import services


class Command(BaseCommand):
    help = "Create a BRP and print its API token once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--policy", default="manual", help="manual | auto | auto-after=SECONDS")

    def handle(self, *args, name: str, policy: str, **options) -> None:
        try:
            brp, token = services.create_brp(name, *services.parse_policy(policy))
        except services.BrpRefused as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"BRP {brp.name!r} created with policy {brp.policy}. Its API token (shown once):")
        self.stdout.write(token)
