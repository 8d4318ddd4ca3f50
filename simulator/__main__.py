"""Command line: `python -m simulator batch|serve|loadtest ...` (see docs/simulator.md)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from simulator.config import PROFILES, Behaviour, Faults, Outage, SimConfig


def _faults(args: argparse.Namespace) -> Faults:
    outages = ()
    if args.outage:  # FIRST:LAST:START_S:END_S[:mode]
        parts = args.outage.split(":")
        outages = (Outage(int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]),
                          parts[4] if len(parts) > 4 else "timeout"),)
    return Faults(non_responding_share=args.non_responding, rejected_share=args.rejected,
                  too_often_share=args.too_often, not_supported_share=args.not_supported,
                  unknown_session_share=args.unknown_session, slow_share=args.slow, slow_delay_s=args.slow_delay_s,
                  http_5xx_share=args.http_5xx, no_async_result_share=args.no_async_result,
                  drop_state_share=args.drop_states, duplicate_state_share=args.duplicates,
                  out_of_order_share=args.out_of_order, no_resume_share=args.no_resume, outages=outages)


def _behaviour(args: argparse.Namespace) -> Behaviour:
    return Behaviour(profile=args.profile, lowercase_ids=args.lowercase_ids, hub=args.hub,
                     token_encoding="raw" if args.raw_token else "base64", result_attempts=args.result_attempts,
                     check_routing=args.check_routing, active_profile_push=args.active_profile_push,
                     locations=not args.no_locations, too_often_first_n=args.too_often_first_n,
                     too_often_min_interval_s=args.too_often_min_interval_s)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", help="run start, ISO 8601 UTC (default: 2025-05-06T00:00Z or the clock's now)")
    p.add_argument("--duration-s", type=int, default=86_400)
    p.add_argument("--share-three-phase", type=float, default=0.6)
    p.add_argument("--share-single-phase-stations", type=float, default=0.0)
    for name in ("non-responding", "rejected", "too-often", "not-supported", "unknown-session", "slow", "http-5xx",
                 "no-async-result", "drop-states", "duplicates", "out-of-order", "no-resume"):
        p.add_argument(f"--{name}", type=float, default=0.0, help="share in [0, 1]")
    p.add_argument("--slow-delay-s", type=float, default=2.0)
    p.add_argument("--outage", help="FIRST_POINT:LAST_POINT:START_S:END_S[:timeout|unknown]")
    k = p.add_argument_group("behaviour (docs/simulator.md, 'Realism profiles and behaviours')")
    k.add_argument("--profile", choices=PROFILES, default="extension", help="what session data is sent")
    k.add_argument("--lowercase-ids", action="store_true", help="lower-case CiStrings in bodies")
    k.add_argument("--hub", action="store_true", help="a Hub holding two CPO roles")
    k.add_argument("--raw-token", action="store_true", help="Authorization: Token <raw>, both ways")
    k.add_argument("--result-attempts", type=int, default=1, help="async result POSTs per request (1: no retry)")
    k.add_argument("--check-routing", action="store_true", help="refuse wrong OCPI-to-*/OCPI-from-* headers")
    k.add_argument("--active-profile-push", action="store_true", help="PUT ActiveChargingProfile to {url}{id}")
    k.add_argument("--no-locations", action="store_true", help="do not offer the Locations module")
    k.add_argument("--too-often-first-n", type=int, default=0, help="first N requests per session: TOO_OFTEN")
    k.add_argument("--too-often-min-interval-s", type=float, default=0.0,
                   help="TOO_OFTEN when a session is asked again within this many real seconds")


def _config(args: argparse.Namespace, start: datetime | None = None) -> SimConfig:
    cfg = SimConfig(points=args.points, seed=args.seed, duration_s=args.duration_s,
                    share_three_phase=args.share_three_phase,
                    share_single_phase_stations=args.share_single_phase_stations,
                    faults=_faults(args), behaviour=_behaviour(args))
    if args.start:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(UTC)
    return replace(cfg, start=start) if start else cfg


def cmd_batch(args: argparse.Namespace) -> int:
    from simulator import batch

    cfg = _config(args)
    acts = batch.random_activations(cfg, args.activations) if args.activations else []
    t0 = time.perf_counter()
    result = batch.run(cfg, acts, response_delay_s=args.response_delay_s, counterfactual=args.counterfactual)
    paths = batch.write_csvs(result, Path(args.out))
    print(f"{len(result.sessions)} sessions, {len(result.states)} states, {len(acts)} activations, "
          f"{result.truth.energy_kwh(0, cfg.duration_s):.1f} kWh true energy, {time.perf_counter() - t0:.1f} s")
    for path in paths.values():
        print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from simulator.clock import ScaledClock, parse_clock
    from simulator.server import SimulatorServer

    if args.clock:
        clock = parse_clock(args.clock)
    else:
        sim_start = datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else SimConfig().start
        clock = ScaledClock(sim_start.astimezone(UTC), time.time(), args.speed)
    start = clock.now().replace(second=0, microsecond=0)
    cfg = _config(args, start=None if args.start else start)
    server = SimulatorServer(cfg, clock, token_a=args.token_a, result_delay_s=args.result_delay_s,
                             push_method=args.push_method)
    base = server.start_in_thread(args.port)
    print(f"versions URL: {base}/versions", flush=True)
    print(f"token A: {server.token_a}", flush=True)
    if hasattr(clock, "spec"):
        print(f"SMATCH_CLOCK={clock.spec()}", flush=True)
    if args.register_url:
        peer = server.register_with(args.register_url, args.register_token)
        print(f"registered with {peer.country_code}/{peer.party_id}", flush=True)
    server.serve_forever(args.port)
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    """Raw chargingprofile PUT capacity: simulator in its own process, load generator in this one."""
    import multiprocessing

    from simulator.loadgen import measure_put_capacity, serve_for_loadtest

    cfg = replace(_config(args), duration_s=3600)
    if args.no_results:  # raw synchronous capacity: no async result POSTs competing for the CPU
        cfg = replace(cfg, faults=replace(cfg.faults, no_async_result_share=1.0))
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=serve_for_loadtest, args=(cfg, child), daemon=True)
    proc.start()
    base, sids = parent.recv()
    sids = (sids * (args.requests // max(1, len(sids)) + 1))[: args.requests]
    res = measure_put_capacity(f"{base}/2.2.1/chargingprofiles", "loadtest-token", sids,
                               "http://127.0.0.1:9/results", args.concurrency)
    parent.send("stop")
    server_counts = parent.recv()
    proc.join(10)
    print(f"{res.requests} PUTs in {res.wall_s:.2f} s = {res.per_s:.0f}/s; p50 {res.latency_p50_ms:.1f} ms, "
          f"p99 {res.latency_p99_ms:.1f} ms; HTTP {dict(res.http_status)}; results {dict(res.results)}; "
          f"server counted {server_counts}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("batch", help="simulate a run without HTTP and write S.csv / A.csv / meters.csv")
    _common(b)
    b.add_argument("--activations", type=int, default=0)
    b.add_argument("--response-delay-s", type=int, default=20)
    b.add_argument("--counterfactual", action="store_true", help="also run without activations: true shed")
    b.add_argument("--out", required=True)
    s = sub.add_parser("serve", help="serve OCPI 2.2.1 as a CPO on loopback")
    _common(s)
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--clock", help="SMATCH_CLOCK spec shared with the product (default: scaled, --speed)")
    s.add_argument("--speed", type=float, default=60.0)
    s.add_argument("--token-a", help="token A the SCSP registers with (default: random, printed)")
    s.add_argument("--register-url", help="register with this SCSP versions URL instead of waiting")
    s.add_argument("--register-token", help="token A issued by the SCSP (with --register-url)")
    s.add_argument("--result-delay-s", type=float, default=0.5)
    s.add_argument("--push-method", choices=["PATCH", "PUT"], default="PATCH")
    lt = sub.add_parser("loadtest", help="measure raw chargingprofile PUT capacity on loopback")
    _common(lt)
    lt.add_argument("--requests", type=int, default=5000)
    lt.add_argument("--concurrency", type=int, default=64)
    lt.add_argument("--no-results", action="store_true", help="skip the async result POSTs")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return {"batch": cmd_batch, "serve": cmd_serve, "loadtest": cmd_loadtest}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
