"""An ECG feed off the rate it was admitted at: how soon the gateway's ``feed_rate`` alarm
is raised, and whether feeds at their rate raise it under the ways real networks deliver.

One command::

    python benchmarks/feed_rate.py [--minutes 30] [--seed 0]

Each scenario is a device sending one lead in chunks on its own clock, for ``--minutes``,
through a network that delays each chunk (in order, as one connection does), stalls and
drops. The arrivals go through what the ward keeps of a feed
(:meth:`~vitalgru.scoring.ward_ecg_bed.EcgBed.arrived`, with the ward's feed timeout) and the
ward's rule is applied once a second, as its tick does
(:meth:`~vitalgru.scoring.ward_ecg_bed.EcgBed.rate_verdict` over
:data:`~vitalgru.scoring.ward_ecg_bed.RATE_WINDOW_S`, at the gateway's default 15 %), on a
simulated clock: a half-hour stay takes milliseconds.
The scenarios with the device at the admitted rate count false alarms and the widest the
measured rate strayed; those with another rate, when the alarm was raised. The network
delays, stalls and losses are chosen, not recorded from a hospital network.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results

from vitalgru.scoring.ward import FEED_RATE_TOLERANCE, FEED_TIMEOUT_S
from vitalgru.scoring.ward_ecg_bed import RATE_MIN_SPAN_S, RATE_WINDOW_S, EcgBed, off_rate


@dataclass(frozen=True)
class Scenario:
    name: str
    admitted_hz: float
    sent_hz: float
    chunk_s: float = 1.0
    delay_s: float = 0.3  # each chunk's delay: uniform in [0, delay_s]
    lost: float = 0.0  # share of chunks lost on the way
    indexed: bool = True  # chunks carry their index: a lost one is a break (counted)
    stall_every_s: float | None = None  # the network stalls this often ...
    stall_s: float = 0.0  # ... for this long; what was sent meanwhile arrives at its end
    stall_at_s: float = 0.0  # ... beginning this far into each period
    outage_every_s: float | None = None  # the device's link is down this often ...
    outage_s: float = 0.0  # ... for this long; what it sent meanwhile is lost
    drift_ppm: float = 0.0  # the device's clock runs fast by this much
    fixed_at_s: float | None = None  # the device is set to the admitted rate at this time


SCENARIOS = [
    Scenario("1 s chunks, delays up to 0.3 s", 250, 250),
    Scenario("0.1 s chunks, delays up to 0.1 s", 250, 250, chunk_s=0.1, delay_s=0.1),
    Scenario("5 s chunks, delays up to 2 s", 250, 250, chunk_s=5.0, delay_s=2.0),
    Scenario("8 s stall every 3 min, backlog at once", 250, 250, stall_every_s=180, stall_s=8),
    Scenario("20 s stall every 5 min, backlog at once", 250, 250, stall_every_s=300, stall_s=20),
    Scenario(
        "30 s outage every 5 min (no index)",
        250,
        250,
        indexed=False,
        outage_every_s=300,
        outage_s=30,
    ),  # fmt: skip
    Scenario("30 s outage every 5 min (indexed)", 250, 250, outage_every_s=300, outage_s=30),
    Scenario(
        "9.5 s stall as each 30 s outage ends (the worst case)",
        250,
        250,
        outage_every_s=300,
        outage_s=30,
        stall_every_s=300,
        stall_at_s=29.5,
        stall_s=9.5,
        delay_s=0.0,
    ),  # fmt: skip
    Scenario("2 % of chunks lost (no index)", 250, 250, lost=0.02, indexed=False),
    Scenario("10 % of chunks lost (no index)", 250, 250, lost=0.10, indexed=False),
    Scenario("device clock 200 ppm fast", 250, 250, drift_ppm=200),
    Scenario("sends 360 Hz, admitted 250", 250, 360),
    Scenario("sends 250 Hz, admitted 360", 360, 250),
    Scenario("sends 500 Hz, admitted 250", 250, 500),
    Scenario("sends 250 Hz, admitted 500", 500, 250),
    Scenario("sends 300 Hz, admitted 250 (+20 %)", 250, 300),
    Scenario("sends 280 Hz, admitted 250 (+12 %)", 250, 280),
    Scenario("sends 256 Hz, admitted 250 (+2.4 %)", 250, 256),
    Scenario(
        "sends 360 Hz, admitted 250, with 8 s stalls", 250, 360, stall_every_s=180, stall_s=8
    ),  # fmt: skip
    Scenario(
        "sends 360 Hz, admitted 250, with 20 s stalls", 250, 360, stall_every_s=300, stall_s=20
    ),  # fmt: skip
    Scenario("sends 500 Hz, admitted 250, set right at 10 min", 250, 500, fixed_at_s=600),
]


#: Shares of chunks lost at random swept for a feed without an index, and seeds per share.
LOSS_SWEEP = (0.03, 0.05, 0.07, 0.10, 0.12)
SWEEP_SEEDS = 5


def arrivals(sc: Scenario, seconds: float, rng: np.random.Generator) -> list[tuple[float, int]]:
    """``(wall time it arrived, samples of the stream it brings)`` of each chunk taken."""
    out: list[tuple[float, int]] = []
    last_arrival, sent, lost_since = 0.0, 0, 0
    k = 0
    while True:
        k += 1
        t_send = k * sc.chunk_s / (1 + sc.drift_ppm * 1e-6)  # on the wall clock
        if t_send > seconds:
            return out
        hz = sc.sent_hz if sc.fixed_at_s is None or t_send < sc.fixed_at_s else sc.admitted_hz
        n = int(round(hz * sc.chunk_s))
        sent += n
        down = sc.outage_every_s and (t_send % sc.outage_every_s) < sc.outage_s
        if down or rng.random() < sc.lost:
            lost_since += n  # with the index, the next chunk's start says they are missing
            continue
        at = t_send + rng.uniform(0, sc.delay_s)
        into = ((t_send - sc.stall_at_s) % sc.stall_every_s) if sc.stall_every_s else math.inf
        if into < sc.stall_s:
            at = t_send - into + sc.stall_s + rng.uniform(0, sc.delay_s)
        at = max(at, last_arrival)  # one connection: in order
        out.append((at, n + (lost_since if sc.indexed else 0)))
        last_arrival, lost_since = at, 0


def run(sc: Scenario, seconds: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    bed = EcgBed(sc.admitted_hz, now, now)
    events = arrivals(sc, seconds, rng)
    i, alarm, raised_at, ended_at, raises = 0, False, None, None, 0
    lo, hi, open_s = math.inf, -math.inf, 0
    for tick in range(1, int(seconds) + 1):
        while i < len(events) and events[i][0] <= tick:
            bed.arrived(events[i][1], events[i][0], FEED_TIMEOUT_S, RATE_WINDOW_S)
            i += 1
        verdict = bed.rate_verdict(FEED_RATE_TOLERANCE, FEED_TIMEOUT_S, alarm)
        if verdict is None:
            continue
        off, rate = verdict
        lo, hi = min(lo, rate), max(hi, rate)
        if off and not alarm:
            raises += 1
            raised_at = tick if raised_at is None else raised_at
        elif alarm and not off and sc.fixed_at_s is not None and ended_at is None:
            ended_at = tick
        alarm = off
        open_s += alarm
    ratio = sc.sent_hz / sc.admitted_hz
    return {
        "scenario": sc.name,
        "admitted_hz": sc.admitted_hz,
        "sent_hz": sc.sent_hz,
        "off_pct": round(100 * (ratio - 1), 1),
        "should_alarm": off_rate(sc.sent_hz, sc.sent_hz, sc.admitted_hz, FEED_RATE_TOLERANCE, False),
        "measured_hz_min": round(lo, 1) if lo < math.inf else None,
        "measured_hz_max": round(hi, 1) if hi > -math.inf else None,
        "alarms_raised": raises,
        "first_alarm_s": raised_at,
        "alarm_open_pct": round(100 * open_s / seconds, 1),
        "ended_s_after_fix": None if ended_at is None or sc.fixed_at_s is None
        else round(ended_at - sc.fixed_at_s),
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | off by | measured rate (Hz), min-max | alarms raised | first after (s) "
        "| open (% of the stay) |\n|---|---:|---|---:|---:|---:|\n"
    )
    body = ""
    for r in rows:
        first = "-" if r["first_alarm_s"] is None else str(r["first_alarm_s"])
        if r["ended_s_after_fix"] is not None:
            first += f" (ended {r['ended_s_after_fix']} s after the fix)"
        body += (
            f"| {r['scenario']} | {r['off_pct']:+.1f} % | {r['measured_hz_min']}-"
            f"{r['measured_hz_max']} | {r['alarms_raised']} | {first} | {r['alarm_open_pct']} |\n"
        )
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    env = environment()
    seconds = 60.0 * args.minutes
    rows = [run(sc, seconds, args.seed) for sc in SCENARIOS]
    false = [r["scenario"] for r in rows if r["alarms_raised"] and not r["should_alarm"]]
    missed = [r["scenario"] for r in rows if r["should_alarm"] and not r["alarms_raised"]]
    md = (
        "# An ECG feed off its admitted rate (`feed_rate`)\n\n"
        f"Command: `python benchmarks/feed_rate.py --minutes {args.minutes:g} --seed {args.seed}`"
        f"  \nDate {env['date_utc']}; a simulated clock (no timing measured).\n\n"
        f"Each scenario is a {args.minutes:g}-minute stay; the rule: the rate over the feed's last "
        f"{RATE_WINDOW_S:g} s of arrivals once they span {RATE_MIN_SPAN_S:g} s (since it last "
        f"paused for more than the {FEED_TIMEOUT_S:g} s feed timeout), checked every second, "
        f"raised beyond {100 * FEED_RATE_TOLERANCE:g} % when the rate from each of the first "
        f"arrivals reads fast (or up to each of the last, slow) by more than a delay under "
        f"the feed timeout could explain, ended when the rate is within half that "
        f"(`EcgBed.rate_verdict`). The measured rate column is that rate (`sent_hz`).\n\n"
        + table(rows)
        + f"\nRaised for a feed at its admitted rate: {len(false)}"
        + (f" ({'; '.join(false)})" if false else "")
        + f". Not raised for a feed more than {100 * FEED_RATE_TOLERANCE:g} % off: {len(missed)}"
        + (f" ({'; '.join(missed)})" if missed else "")
        + ".\n"
    )
    # how much random loss a feed without an index takes before the rule sees a slow device:
    # losses bunch, so a 120 s window passes 15 % well below that share on average
    sweep = [
        {"lost": lost, "seed": seed, **run(Scenario(f"{lost:.0%} lost", 250, 250, lost=lost,
                                                    indexed=False), seconds, seed)}
        for lost in LOSS_SWEEP for seed in range(SWEEP_SEEDS)
    ]  # fmt: skip
    md += (
        f"\n## Chunks lost at random, no index ({SWEEP_SEEDS} seeds each)\n\n"
        "| share of 1 s chunks lost | feeds that raised it | open (% of the stay), each seed |\n"
        "|---:|---:|---|\n"
        + "".join(
            f"| {100 * lost:g} % | {sum(r['alarms_raised'] > 0 for r in got)} of {len(got)} | "
            + ", ".join(f"{r['alarm_open_pct']:.1f}" for r in got)
            + " |\n"
            for lost in LOSS_SWEEP
            for got in [[r for r in sweep if r["lost"] == lost]]
        )
    )
    js, path = write_results(
        "feed_rate", {"environment": env, "minutes": args.minutes, "seed": args.seed,
                      "rows": rows, "loss_sweep": sweep}, md)  # fmt: skip
    print(md)
    print(f"wrote {js} and {path}")


if __name__ == "__main__":
    main()
