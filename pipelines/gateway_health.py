"""Why the gateway's ``/health`` says ``degraded``, and the same causes on ``/metrics``.

The gateway keeps monitoring through each of these, so ``/health`` stays HTTP 200 (a
healthcheck that restarted it over them would stop the patients' alarms, and the cause would
still be there after the restart); ``status`` is ``degraded`` and ``degraded_because`` names
each cause going on, in the order of :data:`DEGRADED_CAUSES`:

- ``model_fallback``: a monitor serves an earlier champion, its own could not be loaded;
- ``state_write_failing``: the latest write to the state file failed (a full disk): what
  the ward takes now would be lost at a restart;
- ``alarm_forwarder_failing``: the latest tries to send an alarm to the interface engine got
  no acknowledgement (alarms wait, in order, and the ward's HL7 receivers do not get them);
- ``alarm_forwarder_refusing``: the latest alarm the interface engine answered was refused
  (``AE``/``AR``): it is not sent again, and a receiver that refuses every alarm (a wrong
  receiving application or facility, a message it cannot parse) pages no one;
- ``audit_write_failing``: the latest write to the access log failed: reads of patients'
  data are answered that the log does not hold;
- ``tick_failing``: the latest tick of the ward's clock failed (out of memory, a fault):
  the queued ECG is not scored, no alarm is raised from it and no sepsis hour closes until
  a tick succeeds.

A cause ends when what failed works again (a write that succeeds, an alarm acknowledged,
an alarm taken, a tick); the counts (``state_write_errors``, ``audit.write_errors``,
``alarm_forwarder.failures``, ``alarm_forwarder.refused``, ``tick_errors``)
keep what happened. ``vitalgru_degraded{cause=}`` is 1 for each cause going on, 0 for the
others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

__all__ = [
    "DEGRADED_CAUSES",
    "HealthCollector",
    "TickHealth",
    "degraded_because",
    "forwarder_health",
]

#: Every cause of a ``degraded`` status, in the order ``degraded_because`` lists them.
DEGRADED_CAUSES = (
    "model_fallback",
    "state_write_failing",
    "alarm_forwarder_failing",
    "alarm_forwarder_refusing",
    "audit_write_failing",
    "tick_failing",
)


class TickHealth:
    """Whether the latest tick of the ward's clock failed, and how many have: the clock
    goes on after a failed tick (logged), and a tick that failed every time (a memory
    limit) left ``/health`` saying ``ok`` while no ECG was scored."""

    def __init__(self) -> None:
        self.errors = 0
        self.failing = False

    def failed(self) -> None:
        self.errors += 1
        self.failing = True

    def succeeded(self) -> None:
        self.failing = False


def degraded_because(
    model_fallbacks: dict[str, dict] | None,
    ward: Any,
    forwarder: Any | None = None,
    audit: Any | None = None,
    ticks: TickHealth | None = None,
) -> list[str]:
    """The causes of :data:`DEGRADED_CAUSES` going on: ``model_fallbacks`` (the monitors
    served by an earlier champion), ``ward``'s ``state_write_failing``, the alarm
    ``forwarder``'s ``failing`` and ``refusing``, the access log's (``audit``) ``failing``
    and the clock's (``ticks``)."""
    going = {
        "model_fallback": bool(model_fallbacks),
        "state_write_failing": bool(ward.state_write_failing),
        "alarm_forwarder_failing": forwarder is not None and bool(forwarder.failing),
        "alarm_forwarder_refusing": forwarder is not None and bool(forwarder.refusing),
        "audit_write_failing": audit is not None and bool(audit.failing),
        "tick_failing": ticks is not None and ticks.failing,
    }
    return [c for c in DEGRADED_CAUSES if going[c]]


def forwarder_health(forwarder: Any) -> dict[str, Any]:
    """``/health``'s ``alarm_forwarder``: where it sends, what it sent and refused, its
    failed tries, ``behind`` (events not handled yet), ``lost`` (gone from the log before it
    handled them), ``unmatched``, ``failing`` (its latest tries got no acknowledgement) and ``refusing``
    (the latest alarm answered was refused)."""
    f = forwarder
    return {"target": f"{f.host}:{f.port}", "tls": f.tls is not None, "sent": f.sent,
            "refused": f.rejected, "failures": f.failures, "behind": f.lag, "lost": f.lost,
            "unmatched": f.unmatched, "failing": f.failing, "refusing": f.refusing}  # fmt: skip


class HealthCollector:
    """``vitalgru_degraded{cause=}``: 1 for each cause of a ``degraded`` ``/health``
    going on (``causes()``, read at each scrape), 0 for the others."""

    def __init__(self, causes: Callable[[], list[str]]) -> None:
        self.causes = causes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        going = set(self.causes())
        g = GaugeMetricFamily(
            "vitalgru_degraded",
            "1: /health says degraded for this cause (the gateway monitors all the same)",
            labels=["cause"],
        )
        for cause in DEGRADED_CAUSES:
            g.add_metric([cause], 1 if cause in going else 0)
        yield g
