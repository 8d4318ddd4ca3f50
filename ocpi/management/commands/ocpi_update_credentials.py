from django.core.management.base import BaseCommand, CommandError

from ocpi import services
from ocpi.errors import OcpiClientError, OcpiError
from ocpi.models import OcpiParty


class Command(BaseCommand):
    help = "Credentials PUT to a registered party: a new token for them to use and our current endpoints."

    def add_arguments(self, parser):
        parser.add_argument("party_pk", type=int)

    def handle(self, *args, party_pk: int, **options):
        party = OcpiParty.objects.filter(pk=party_pk).first()
        if party is None:
            raise CommandError(f"no party #{party_pk}")
        try:
            party = services.update_credentials(party)
        except (OcpiClientError, OcpiError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"credentials updated with party #{party.pk}: {party}")
