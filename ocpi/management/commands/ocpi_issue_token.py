from django.conf import settings
from django.core.management.base import BaseCommand

from ocpi import services


class Command(BaseCommand):
    help = "Create a PENDING OCPI party and print its registration token A (shown once; only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="a name for the party (e.g. the CPO's company)")

    def handle(self, *args, name: str, **options):
        party, token = services.issue_token(name)
        self.stderr.write(f"party #{party.pk} {party.name}: give the CPO this token and our versions URL, "
                          f"{settings.OCPI_BASE_URL.rstrip('/')}/versions")
        self.stdout.write(token)
