"""The bedside gateway's ``GET /metrics``: a :class:`~vitalgru.scoring.ward.Ward`'s
:meth:`~vitalgru.scoring.ward.Ward.telemetry` as Prometheus metric families, read at each
scrape. Counts and timings only: no patient identifier reaches a label."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.utils import floatToGoString

from pipelines.access import TokenFile
from vitalgru import __version__
from vitalgru.scoring.ward import Ward

__all__ = ["CdsCollector", "IntakeCollector", "TokenFileCollector", "WardCollector"]


class WardCollector:
    """The ward's :meth:`~vitalgru.scoring.ward.Ward.telemetry` as Prometheus metric
    families, read at each scrape."""

    def __init__(
        self, ward: Ward, models: dict[str, str], fallbacks: dict[str, dict] | None = None
    ) -> None:
        self.ward, self.models, self.fallbacks = ward, models, fallbacks or {}

    def collect(self) -> Any:
        t = self.ward.telemetry()
        yield InfoMetricFamily(
            "vitalgru_gateway", "the gateway's version and the models it serves",
            value={"version": __version__,
                   **{k.replace(" ", "_").replace("-", "_"): v for k, v in self.models.items()}},
        )  # fmt: skip
        fb = GaugeMetricFamily(
            "vitalgru_model_fallback",
            "1: the monitor serves an earlier champion, its own could not be loaded",
            labels=["model", "wanted_version", "serving_version"],
        )
        for task in self.models:
            f = self.fallbacks.get(task)
            fb.add_metric([task, f["wanted"] if f else "", f["serving"] if f else ""],
                          1 if f else 0)  # fmt: skip
        yield fb
        g = GaugeMetricFamily("vitalgru_patients", "patients on each monitor", labels=["monitor"])
        for monitor, n in t["patients"].items():
            g.add_metric([monitor], n)
        yield g
        for name, doc, value in (
            ("vitalgru_ecg_feeds_lost", "ECG feeds that have sent nothing lately", t["feeds_lost"]),
            ("vitalgru_ecg_feeds_off_rate", "ECG feeds sending off the rate they were admitted at",
             t["feeds_off_rate"]),
            ("vitalgru_ecg_queued_seconds", "ECG waiting for the next tick, all feeds",
             t["queued_s"]),
            ("vitalgru_ecg_queued_seconds_max", "ECG waiting for the next tick, fullest feed",
             t["queued_s_max"]),
            ("vitalgru_sepsis_patients_in_alarm", "sepsis patients in an alarm episode",
             t["sepsis_in_alarm"]),
            ("vitalgru_events_last_seq", "number of the newest event logged", t["last_seq"]),
            ("vitalgru_events_escalated_unacknowledged",
             "escalated alarms still not acknowledged", t["escalated_unacknowledged"]),
            ("vitalgru_ecg_strips_kept", "ECG alarm strips kept for review", t["strips_kept"]),
            ("vitalgru_sepsis_hours_assembling",
             "ICU hours being assembled from observations, not yet scored",
             t["sepsis_hours_assembling"]),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, doc, value=value)
        if t["last_tick_age_s"] is not None:
            yield GaugeMetricFamily(
                "vitalgru_ecg_last_tick_age_seconds",
                "seconds since the last tick ended (grows when the clock has stopped)",
                value=t["last_tick_age_s"],
            )
        g = GaugeMetricFamily("vitalgru_events_unacknowledged",
                              "events in the log no one has acknowledged", labels=["source"])  # fmt: skip
        for source, n in sorted(t["unacknowledged"].items()):
            g.add_metric([source], n)
        yield g
        c = CounterMetricFamily("vitalgru_ecg_beats", "beats labelled, by AAMI class",
                                labels=["aami_class"])  # fmt: skip
        for label, n in sorted(t["beats"].items()):
            c.add_metric([label], n)
        yield c
        c = CounterMetricFamily("vitalgru_events", "events logged (alarms, feed and monitor "
                                "changes, acknowledgements)", labels=["source", "kind"])  # fmt: skip
        for (source, kind), n in sorted(t["events"].items()):
            c.add_metric([source, kind], n)
        yield c
        for name, doc in (
            ("vitalgru_sepsis_hours", "patient-hours of vital signs scored"),
            ("vitalgru_state_write_errors", "writes to the state file that failed"),
            ("vitalgru_shadow_errors", "failures of a shadow model"),
            ("vitalgru_clock_steps", "steps of the wall clock (NTP, a resume, a date set)"),
        ):
            key = name.removeprefix("vitalgru_")
            yield CounterMetricFamily(name, doc, value=t[key])
        for name, doc, key in (
            ("vitalgru_ecg_tick_seconds", "one tick: the ward's queued ECG through the "
             "network in one batch", "tick_seconds"),
            ("vitalgru_sepsis_hour_seconds", "one patient-hour scored (with its alarm "
             "explanation and shadow)", "sepsis_hour_seconds"),
        ):  # fmt: skip
            d = t[key]
            yield HistogramMetricFamily(
                name, doc, sum_value=d["sum"],
                buckets=[(floatToGoString(b), n) for b, n in d["buckets"]],
            )  # fmt: skip


class TokenFileCollector:
    """The gateway's token file (:class:`pipelines.access.TokenFile`): tokens in force and
    how its re-reads went, so a bad edit (the old tokens kept in force) can raise an alert."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    def collect(self) -> Any:
        table = self.tokens.current()
        yield GaugeMetricFamily("vitalgru_access_tokens", "named access tokens in force",
                                value=len(table.credentials))  # fmt: skip
        yield CounterMetricFamily("vitalgru_token_file_reloads",
                                  "times the changed token file was read again",
                                  value=self.tokens.reloads)  # fmt: skip
        yield CounterMetricFamily("vitalgru_token_file_errors",
                                  "times the changed token file could not be taken "
                                  "(the tokens read before stayed in force)",
                                  value=self.tokens.errors)  # fmt: skip


class AuditCollector:
    """The access log's failed writes (:class:`pipelines.audit.AuditLog` ``errors``): reads
    answered while their rows could not be kept, for an alert."""

    def __init__(self, log: Any) -> None:
        self.log = log

    def collect(self) -> Any:
        yield CounterMetricFamily("vitalgru_audit_write_errors",
                                  "access-log rows that could not be written (the requests "
                                  "were answered)", value=self.log.errors)  # fmt: skip


class IntakeCollector:
    """What the gateway's FHIR and HL7 v2 inputs took and left, counted as they come: an
    interface sending a unit that cannot be converted, or codes the model does not use,
    shows here before anyone reads the answers' ``skipped`` lists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n: Counter[tuple[str, str, str]] = Counter()
        self._messages: Counter[tuple[str, str, str]] = Counter()

    def message(self, source: str, message_type: str, outcome: str) -> None:
        """One HL7 v2 message of ``source`` (``mllp``, ``http``): its type (``ORU^R01``)
        and what it got (``AA``, ``AE``, ``AR``, ``duplicate``)."""
        with self._lock:
            self._messages[(source, message_type, outcome)] += 1

    def count(self, source: str, what: str, outcome: str, n: int = 1) -> None:
        """``what`` (``observations`` or ``hours``) of ``source`` (``fhir``, ``hl7``)."""
        with self._lock:
            self._n[(source, what, outcome)] += n

    def collect(self) -> Any:
        with self._lock:
            n, messages = dict(self._n), dict(self._messages)
        for what, doc in (("observations", "observations read from FHIR or HL7 v2 input, "
                           "used or skipped"),
                          ("hours", "hours (or parts of one, held until it closes) sent as FHIR or "
                           "HL7 v2: scored, held or refused")):  # fmt: skip
            c = CounterMetricFamily(f"vitalgru_intake_{what}", doc, labels=["input", "outcome"])
            for (source, w, outcome), k in sorted(n.items()):
                if w == what:
                    c.add_metric([source, outcome], k)
            yield c
        c = CounterMetricFamily("vitalgru_hl7_messages", "HL7 v2 messages taken, by input, "
                                "type and acknowledgement (AA, AE, AR, duplicate)",
                                labels=["input", "type", "ack"])  # fmt: skip
        for (source, kind, outcome), k in sorted(messages.items()):
            c.add_metric([source, kind, outcome], k)
        yield c


class ForwarderCollector:
    """How the alarm forwarder (:mod:`pipelines.hl7_forward`) is doing: alarms delivered
    and refused, failed tries, events lost from the log before they were handled,
    escalations and ends whose alarm could not be found, and events not handled yet
    (grows while the receiver is down)."""

    def __init__(self, forwarder: Any) -> None:
        self.forwarder = forwarder

    def collect(self) -> Any:
        f = self.forwarder
        for name, doc, value in (
            ("vitalgru_alarms_forwarded", "alarms acknowledged by the HL7 receiver", f.sent),
            ("vitalgru_alarms_forward_refused", "alarms the HL7 receiver refused (AE, AR)",
             f.rejected),
            ("vitalgru_alarms_forward_failures", "tries that got no acknowledgement",
             f.failures),
            ("vitalgru_alarms_forward_lost_events", "events gone from the ward's log before "
             "the forwarder came to them (alarms among them not sent)", f.lost),
            ("vitalgru_alarms_forward_unmatched_events", "escalations and ends not sent: "
             "the alarm they name was gone from the ward's log and they do not say its kind",
             f.unmatched),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("vitalgru_alarms_forward_lag_events",
                                "events logged that the forwarder has not handled yet",
                                value=f.lag)  # fmt: skip


class CdsCollector:
    """The CDS Hooks services' calls, cards and feedback (:class:`pipelines.cds_hooks.CdsStats`)."""

    def __init__(self, stats: Any, clients: Any = None) -> None:
        self.stats, self.clients = stats, clients

    def collect(self) -> Any:
        ages = self.clients.key_ages() if self.clients is not None else {}
        if ages:
            c = CounterMetricFamily("vitalgru_cds_jwks_fetches", "fetches of the CDS clients' "
                                    "JWK Sets from their URLs, by client and outcome",
                                    labels=["client", "outcome"])  # fmt: skip
            for (client, outcome), n in sorted(self.clients.fetch_counts().items()):
                c.add_metric([client, outcome], n)
            yield c
            g = GaugeMetricFamily("vitalgru_cds_jwks_age_seconds", "seconds since a CDS "
                                  "client's keys were fetched (+Inf: never)", labels=["client"])  # fmt: skip
            for client, age in sorted(ages.items()):
                g.add_metric([client], age)
            yield g
        calls, cards, feedback = self.stats.snapshot()
        c = CounterMetricFamily("vitalgru_cds_calls", "CDS Hooks calls by service and outcome "
                                "(card, none, refused: token not taken, invalid, no_prefetch: "
                                "412, taken: feedback read)", labels=["service", "outcome"])  # fmt: skip
        for (service, outcome), n in sorted(calls.items()):
            c.add_metric([service, outcome], n)
        yield c
        c = CounterMetricFamily("vitalgru_cds_cards", "CDS Hooks cards given, by service",
                                labels=["service"])  # fmt: skip
        for service, n in sorted(cards.items()):
            c.add_metric([service], n)
        yield c
        c = CounterMetricFamily("vitalgru_cds_feedback", "cards the EHR's feedback named, by "
                                "what became of their alarm (acknowledged, already, unknown)",
                                labels=["outcome"])  # fmt: skip
        for outcome, n in sorted(feedback.items()):
            c.add_metric([outcome], n)
        yield c


class RateLimitCollector:
    """Requests refused for going over the per-caller rate (:class:`RateLimit`)."""

    def __init__(self, limit: Any) -> None:
        self.limit = limit

    def collect(self) -> Any:
        yield CounterMetricFamily("vitalgru_requests_rate_limited",
                                  "requests answered 429: a caller over its rate",
                                  value=self.limit.refused)  # fmt: skip
