"""Lesson 08: AI product architecture — an event-driven support desk composed of lessons 01-07.

=================  ==============================================================================
module             what
=================  ==============================================================================
``bus``            the event bus (in process or Redis Streams), at-least-once, idempotent consumers
``store``          :class:`DeskStore`: conversations in SQLite, tenant-scoped, migrated (``course_utils.sqlite_store``)
``vectors``        :class:`VectorIndex`: sqlite-vec, the tenant as partition key; :func:`recall_at_k`
``evaluation``     groundedness of the answers next to recall@k (:func:`evaluate_answers`)
``help_centre``    the lesson's multi-tenant help centre and labelled questions (``data/``)
``trace``          per-request stage spans and the dashboard's figures (:class:`TraceLog`)
``telemetry``      OpenTelemetry SDK spans with the GenAI conventions, ``traceparent`` in event headers
``diagram``        the architecture diagram generated from the running wiring (Mermaid, matplotlib)
``dashboard``      one request's stage waterfall and the load test's SLO dashboard
``capacity``       capacity planning: each limit's turns per minute, the binding one, a simulation
``answering``      :class:`ModelCaller`: the streamed model call (retry, breaker, fallback, cache)
``controls``       :class:`TenantControls`: lesson 07's plans, limits, budgets and metering
``workers``        :class:`Pipeline`: the four stages wired to the bus, each behind its group's inbox
``outbox``         :class:`OutboxRelay`: the transactional outbox's relay from the store to the bus
``service``        the HTTP API (:class:`SupportDesk`, :class:`SupportDeskServer`); ``__main__`` runs it
``loadtest``       the end-to-end load test on virtual time (:func:`run_load`), with faults and a deploy
``synchronous``    the incident's synchronous design (:class:`SyncDesk`), under the same load
``crash``          a worker killed mid-answer (:func:`crash_mid_stream`); the dual write (:func:`crash_after_commit`)
=================  ==============================================================================
"""

from .answering import ModelCaller
from .bus import (
    ANSWER_STREAMED,
    CONTEXT_READY,
    MESSAGE_RECEIVED,
    PIPELINE,
    USAGE_RECORDED,
    BusError,
    ConsumerStats,
    Event,
    EventBus,
    IdempotentHandler,
    InMemoryBus,
    ProcessedLog,
    RedisStreamsBus,
    consume,
    dead_letter_topic,
)
from .capacity import CapacityInputs, binding_limit, simulate_conversations_per_minute, turn_limits, workers_for
from .controls import TenantControls, TenantRateLimited
from .crash import CrashReport, DualWriteReport, crash_after_commit, crash_mid_stream
from .dashboard import Dashboard, load_dashboard, load_series, waterfall
from .diagram import StageWiring, Wiring, mermaid, wiring_of
from .diagram import figure as architecture_figure
from .errors import ArchitectureError
from .evaluation import evaluate_answers, groundedness
from .outbox import OutboxRelay
from .telemetry import Telemetry
from .help_centre import articles, load_help_centre, questions, tenant_names
from .loadtest import LoadResult, LoadSpec, run_load
from .service import SupportDesk, SupportDeskServer, create_app
from .store import DeskStore, StoreError
from .synchronous import SyncDesk, SyncResult, run_synchronous_load
from .trace import Span, Trace, TraceLog
from .vectors import Hit, VectorIndex, VectorIndexError, recall_at_k
from .workers import Pipeline, PipelineConfig, deltas_topic, message_id_for

__all__ = [
    "MESSAGE_RECEIVED",
    "CONTEXT_READY",
    "ANSWER_STREAMED",
    "USAGE_RECORDED",
    "PIPELINE",
    "Event",
    "EventBus",
    "ArchitectureError",
    "BusError",
    "dead_letter_topic",
    "InMemoryBus",
    "RedisStreamsBus",
    "consume",
    "ConsumerStats",
    "IdempotentHandler",
    "ProcessedLog",
    "DeskStore",
    "StoreError",
    "VectorIndex",
    "VectorIndexError",
    "Hit",
    "recall_at_k",
    "articles",
    "questions",
    "load_help_centre",
    "Span",
    "Trace",
    "TraceLog",
    "Wiring",
    "StageWiring",
    "wiring_of",
    "mermaid",
    "architecture_figure",
    "Dashboard",
    "CapacityInputs",
    "turn_limits",
    "binding_limit",
    "simulate_conversations_per_minute",
    "workers_for",
    "load_series",
    "load_dashboard",
    "waterfall",
    "ModelCaller",
    "TenantControls",
    "TenantRateLimited",
    "Pipeline",
    "PipelineConfig",
    "deltas_topic",
    "message_id_for",
    "SupportDesk",
    "SupportDeskServer",
    "create_app",
    "tenant_names",
    "LoadSpec",
    "LoadResult",
    "run_load",
    "SyncDesk",
    "SyncResult",
    "run_synchronous_load",
    "CrashReport",
    "crash_mid_stream",
    "DualWriteReport",
    "crash_after_commit",
    "OutboxRelay",
    "Telemetry",
    "evaluate_answers",
    "groundedness",
]
