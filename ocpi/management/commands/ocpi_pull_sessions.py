from django.core.management.base import BaseCommand, CommandError

from ocpi import services
from ocpi.errors import OcpiClientError
from ocpi.models import OcpiParty
from ocpi.schemas import ocpi_datetime


class Command(BaseCommand):
    help = "Pull sessions now from every registered party (or --party ID), following pagination."

    def add_arguments(self, parser):
        parser.add_argument("--party", type=int, help="party id (default: all registered)")
        parser.add_argument("--date-from", help="RFC 3339 UTC; default: the last pull's end less the overlap")
        parser.add_argument("--date-to", help="RFC 3339 UTC; default: now")

    def handle(self, *args, party: int | None, date_from: str | None, date_to: str | None, **options):
        parties = OcpiParty.objects.filter(status=OcpiParty.Status.REGISTERED)
        if party is not None:
            parties = parties.filter(pk=party)
        start = ocpi_datetime(date_from, "--date-from") if date_from else None
        end = ocpi_datetime(date_to, "--date-to") if date_to else None
        if not parties:
            which = f" with id {party}" if party is not None else ""
            self.stderr.write(f"no registered OCPI party to pull from{which}: register one first "
                              "(ocpi_register, or ocpi_issue_token for a party that registers with us)")
        for target in parties:
            try:
                report = services.pull_sessions(target, start, end)
            except OcpiClientError as exc:
                raise CommandError(f"{target}: {exc}") from None
            self.stdout.write(f"{target}: {report.received} received, {report.stored} stored, "
                              f"{report.invalid} invalid, {report.refused} refused (identity not held)")
