"""`manage.py settle`: settle activations from files (no database needed)."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from settlement import services
from settlement.core.baselines import BASELINES


class Command(BaseCommand):
    help = "Settle demand-response activations from S.csv / A.csv into CSV, XLSX and PNG files."
    requires_system_checks: list = []  # works on a clean checkout: no database, no migrations

    def add_arguments(self, parser):
        parser.add_argument("--states", required=True, help="S.csv: session states")
        parser.add_argument("--activations", required=True, help="A.csv: activation_id,t_signal,t_clear")
        parser.add_argument("--prices", help="imbalance prices (plain CSV, NL CSV or TenneT XML)")
        parser.add_argument("--meters", help="M.csv: station_id,interval_start,energy_kwh")
        parser.add_argument("--out", required=True, help="output directory")
        parser.add_argument("--baseline", default="trapezoid", choices=[*BASELINES, "all"])
        parser.add_argument("--grid-s", type=float, default=60.0, help="grid step in seconds (default 60)")
        parser.add_argument("--shape", default="step", choices=["step", "linear", "flat"])

    def handle(self, *args, **opts):
        with tqdm(desc="settle", unit="step", disable=opts["verbosity"] == 0) as bar:
            try:
                done = services.settle_files(
                    opts["states"], opts["activations"], opts["out"], prices_path=opts["prices"],
                    meters_path=opts["meters"], baseline=opts["baseline"], grid_s=opts["grid_s"],
                    shape=opts["shape"], progress=bar.update)
            except services.SettlementError as exc:
                raise CommandError(str(exc)) from exc
        for warning in done.result.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(f"settled {len(done.result.activations)} activation(s) into {opts['out']} "
                          f"({len(done.written)} files)")
