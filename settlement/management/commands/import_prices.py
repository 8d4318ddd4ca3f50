"""`manage.py import_prices FILE`: store imbalance prices (plain CSV, NL CSV or TenneT XML)."""

from django.core.management.base import BaseCommand, CommandError

from settlement import services


class Command(BaseCommand):
    help = "Import imbalance prices into the database (format detected from the content)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, **opts):
        try:
            count = services.import_prices(opts["path"])
        except services.SettlementError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"imported {count} ISP price(s) from {opts['path']}")
