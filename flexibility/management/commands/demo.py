from django.core.management.base import BaseCommand

from smatch.demo import run_demo


class Command(BaseCommand):
    help = "Run the whole loop on the embedded default: simulator, OCPI, a BRP signal, 8 A caps, restore."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--points", type=int, default=300, help="charge points in the simulator")
        parser.add_argument("--speed", type=float, default=20.0, help="simulated seconds per real second")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, points: int, speed: float, seed: int, **options) -> None:
        report = run_demo(points=points, speed=speed, seed=seed, say=self.stdout.write)
        self.stdout.write(self.style.SUCCESS("\nSummary"))
        self.stdout.write(f"  sessions known to the SCSP:    {report.sessions_known}")
        self.stdout.write(f"  sessions throttled to 8 A:     {report.sessions_throttled}")
        self.stdout.write(f"  shed at the simulator meters:  {report.shed_kw_at_meters:.1f} kW")
        self.stdout.write(f"  expected / dispatched:         {report.summary['expected_kw']:.1f} / "
                          f"{report.summary['dispatched_kw']:.1f} kW")
        self.stdout.write(f"  skipped:                       {report.summary['sessions_skipped']}")
        self.stdout.write("  latency after the signal arrived (wall-clock ms; simulated time ran "
                          f"{speed:g}x faster):")
        for name, value in report.latency_ms.items():
            shown = "-" if value is None else round(value / speed)
            self.stdout.write(f"    {name + ':':<29}{shown}")
        self.stdout.write(f"  sessions still capped after restore: {report.still_capped}")
