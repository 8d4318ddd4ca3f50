from django.core.management.base import BaseCommand, CommandError

from ocpi import services
from ocpi.errors import OcpiClientError, OcpiError


class Command(BaseCommand):
    help = "Register with a party: its versions URL and the token A it gave us (credentials handshake)."

    def add_arguments(self, parser):
        parser.add_argument("versions_url")
        parser.add_argument("token_a")
        parser.add_argument("--name", default="")

    def handle(self, *args, versions_url: str, token_a: str, name: str, **options):
        try:
            party = services.register_with(versions_url, token_a, name=name)
        except (OcpiClientError, OcpiError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"registered party #{party.pk}: {party}")
