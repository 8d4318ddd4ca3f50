"""`manage.py flexibility_forecast --from 2026-12-02T18:00Z --to 2026-12-02T20:00Z`: the forecast per ISP."""

from django.core.management.base import BaseCommand, CommandError

from flexibility import forecast, forecast_service


class Command(BaseCommand):
    help = "Sheddable power now and the P10/P50/P90 forecast per ISP of a window (ISP boundaries, at most 7 days)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="start", required=True)
        parser.add_argument("--to", dest="end", required=True)

    def handle(self, *args, start: str, end: str, **options) -> None:
        try:
            rows = forecast_service.forecast_rows(start, end)
        except forecast.ForecastRefused as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        self.stdout.write("isp_start                  horizon_min  now_kw    p10_kw    p50_kw    p90_kw")
        for r in rows:
            cells = [r["sheddable_now_kw"], r["p10_kw"], r["p50_kw"], r["p90_kw"]]
            self.stdout.write(f"{r['isp_start'].isoformat():26} {r['horizon_min']:11.0f} "
                              + " ".join(f"{'-' if c is None else c:>9}" for c in cells))
