from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from localrun import server as local
from smatch.embedded import restart_on_fresh_database


class Command(BaseCommand):
    help = ("The local server: web, Celery worker and beat sweep in one process on the embedded default; "
            "--simulator adds a CPO simulator in scaled time (on a database file of its own, started empty).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--simulator", action="store_true", help="attach a local simulated CPO")
        parser.add_argument("--points", type=int, default=300, help="simulated charge points")
        parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per real second")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--db", type=Path, default=Path(settings.BASE_DIR) / "var" / "simulated.sqlite3",
                            help="with --simulator: its own SQLite file, emptied at each start")

    def handle(self, *args, addrport: str, simulator: bool, points: int, speed: float, seed: int, db: Path,
               **options) -> None:
        if simulator:
            restart_on_fresh_database(db)
        host, _, port = addrport.rpartition(":")
        server = local.start(host or "127.0.0.1", int(port), points if simulator else 0, speed, seed)
        for line in local.banner(server):
            self.stdout.write(line)
        self.stdout.flush()
        call_command("runserver", addrport, use_reloader=False, skip_checks=True)
