"""`manage.py settle`: settle activations from files (no database needed) or from the database."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from settlement import services
from settlement.core.baselines import BASELINES, DEFAULT_BASELINE


def _aware(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise CommandError(f"{text!r}: give a UTC offset, e.g. 2025-05-06T00:00:00Z")
    return when


class Command(BaseCommand):
    help = ("Settle demand-response activations: from files (--states S.csv --activations A.csv --out DIR) "
            "or from the database (--from ISO --to ISO).")
    requires_system_checks: list = []  # the file door works on a clean checkout: no database, no migrations

    def add_arguments(self, parser):
        parser.add_argument("--states", help="S.csv: session states")
        parser.add_argument("--activations", help="A.csv: activation_id,t_signal,t_clear")
        parser.add_argument("--prices", help="imbalance prices (plain CSV, NL CSV or TenneT XML)")
        parser.add_argument("--meters", help="M.csv: station_id,interval_start,energy_kwh")
        parser.add_argument("--out", help="output directory (file door)")
        parser.add_argument("--from", dest="period_from", type=_aware, help="database door: period start")
        parser.add_argument("--to", dest="period_to", type=_aware, help="database door: period end")
        parser.add_argument("--baseline", default=DEFAULT_BASELINE, choices=[*BASELINES, "all"])
        parser.add_argument("--grid-s", type=float, default=60.0, help="grid step in seconds (default 60)")
        parser.add_argument("--shape", default="step", choices=["step", "linear", "flat"])

    def handle(self, *args, **opts):
        if opts["period_from"] or opts["period_to"]:
            return self._database(opts)
        if not (opts["states"] and opts["activations"] and opts["out"]):
            raise CommandError("give --states, --activations and --out (files) or --from and --to (database)")
        with tqdm(desc="settle", unit="step", disable=opts["verbosity"] == 0) as bar:
            try:
                done = services.settle_files(
                    opts["states"], opts["activations"], opts["out"], prices_path=opts["prices"],
                    meters_path=opts["meters"], baseline=opts["baseline"], grid_s=opts["grid_s"],
                    shape=opts["shape"], progress=bar.update)
            except services.SettlementError as exc:
                raise CommandError(exc.message) from exc
        for warning in done.result.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(f"settled {len(done.result.activations)} activation(s) into {opts['out']} "
                          f"({len(done.written)} files, baseline {opts['baseline']})")

    def _database(self, opts):
        if not (opts["period_from"] and opts["period_to"]):
            raise CommandError("the database door needs both --from and --to")
        try:
            run = services.start_run(opts["period_from"], opts["period_to"], baseline=opts["baseline"],
                                     grid_s=opts["grid_s"], run_async=False)
        except services.SettlementError as exc:
            raise CommandError(exc.message) from exc
        if run.status != run.Status.DONE:
            raise CommandError(f"settlement run {run.pk} failed: {run.error}")
        self.stdout.write(f"settlement run {run.pk}: {run.summary.get('activations')} activation(s) "
                          f"into {run.output_dir} (baseline {run.baseline})")
