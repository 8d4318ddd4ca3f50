import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from localrun.demo import run_demo
from smatch.embedded import restart_on_fresh_database


class Command(BaseCommand):
    help = ("Run the whole loop on the embedded default: simulator, OCPI, a BRP signal, 8 A caps, restore. "
            "Each run starts on an empty database file of its own (--db), so a rerun gives the same figures.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--points", type=int, default=300, help="charge points in the simulator")
        parser.add_argument("--speed", type=float, default=20.0, help="simulated seconds per real second")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--db", type=Path, default=Path(settings.BASE_DIR) / "var" / "demo.sqlite3",
                            help="the demo's own SQLite file, deleted and created again at each run")
        parser.add_argument("--figures", type=Path, help="also write the figures a rerun must repeat (JSON)")

    def handle(self, *args, points: int, speed: float, seed: int, db: Path, figures: Path | None, **options) -> None:
        restart_on_fresh_database(db)
        call_command("migrate", verbosity=0, interactive=False)
        report = run_demo(points=points, speed=speed, seed=seed, say=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"\nSummary (seed {seed}, {points} charge points, time {speed:g}x)"))
        width = max(len(label) for label, _, _ in report.rows)
        for label, value, unit in report.rows:
            shown = "-" if value is None else f"{value} {unit}".strip()
            self.stdout.write(f"  {label:<{width}}  {shown:>10}")
        if figures:
            figures.write_text(json.dumps(report.same_every_run, indent=1, sort_keys=True))
        self.stdout.write("\nNext: start the local server with a simulated CPO and click through the same loop:\n"
                          "  .venv/bin/python manage.py serve --simulator\n"
                          "  then open http://127.0.0.1:8000/admin/console/ and log in as 'admin' with the one-time\n"
                          "  password it prints; it also prints a curl line with which a BRP posts a signal.\n"
                          "(make clean removes .venv, var/ and every local database.)")
