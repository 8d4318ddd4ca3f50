from django.core.management.base import BaseCommand, CommandError

from ocpi.errors import OcpiClientError
from ocpi.models import OcpiParty
from ocpi.services.locations import pull_locations


class Command(BaseCommand):
    help = "Pull a registered party's Locations now (connector power types and maxima)."

    def add_arguments(self, parser):
        parser.add_argument("party_pk", type=int)

    def handle(self, *args, party_pk: int, **options):
        party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
        if party is None:
            raise CommandError(f"no registered party #{party_pk}")
        try:
            report = pull_locations(party)
        except OcpiClientError as exc:
            raise CommandError(str(exc)) from None
        if not report.offered:
            raise CommandError(f"{party} offers no Locations Sender endpoint")
        self.stdout.write(f"{report.locations} locations, {report.connectors} connectors "
                          f"({report.unknown_power_types} of unknown power type), {report.invalid} invalid, "
                          f"{report.refused} refused, {report.sessions_updated} active sessions bounded")
