"""The operator's settings, from the environment (prefix ``TTS_OPERATOR_``); see docs/operator.md.

The limits that decisions depend on take their defaults from :class:`tts_operator.reconcile.Limits`,
their one definition.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tts_operator.reconcile import EventLevel, Limits

DEFAULT_LIMITS = Limits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTS_OPERATOR_", frozen=True, extra="ignore")

    nats_url: str = Field(default="nats://nats:4222", description="NATS server with JetStream.")
    nats_replicas: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Copies the JetStream streams and the worker bucket keep, on as many NATS servers "
        "(at most the cluster's servers; 3 with the chart's three-server cluster); the operator brings "
        "them to it at start. 0: keep what they have (1 for new ones).",
    )
    default_timeout_seconds: int = Field(
        default=DEFAULT_LIMITS.default_timeout_seconds,
        ge=1,
        le=24 * 3600,
        description="A workflow's time limit when its spec sets none.",
    )
    default_ttl_seconds: int = Field(
        default=DEFAULT_LIMITS.default_ttl_seconds,
        ge=0,
        description="Delete finished workflows this long after they finish, when "
        "their spec sets no ttlSecondsAfterFinished.",
    )
    heartbeat_stale_seconds: float = Field(
        default=DEFAULT_LIMITS.heartbeat_stale_seconds,
        gt=0,
        description="A running stage with no sign of life for this long is redispatched.",
    )
    max_attempts: int = Field(
        default=DEFAULT_LIMITS.max_attempts,
        ge=1,
        description="Attempts at one stage that may fail before it fails (see docs/operator.md: what "
        "counts as one).",
    )
    max_worker_losses: int = Field(
        default=DEFAULT_LIMITS.max_worker_losses,
        ge=1,
        description="Workers lost while running one stage (its job redelivered, or silent) before it "
        "fails; counted apart from the attempts, so that churn among the workers spends none of them.",
    )
    backoff_base_seconds: float = Field(
        default=DEFAULT_LIMITS.backoff_base_seconds,
        ge=0,
        description="Wait before attempt 2; doubled for each further attempt.",
    )
    backoff_max_seconds: float = Field(
        default=DEFAULT_LIMITS.backoff_max_seconds, ge=0, description="The longest wait before a retry."
    )
    max_queue_seconds: float = Field(
        default=DEFAULT_LIMITS.max_queue_seconds,
        gt=0,
        description="How long a queued job waits while no live worker serves its model (condition "
        "reason NoWorkerForModel, or WaitingForWorker) before its workflow fails; the workflow's "
        "timeout does not count that wait.",
    )
    autoscaling: bool = Field(
        default=DEFAULT_LIMITS.autoscaling,
        description="The inference pods are scaled on the queue (KEDA; the chart's autoscaling.enabled): "
        "a model with no worker is waited for as scaled to zero (WaitingForWorker, then "
        "GPU_UNAVAILABLE), not as one nobody runs (NoWorkerForModel, then MODEL_NOT_READY).",
    )
    tick_seconds: float = Field(
        default=5.0, gt=0, description="How often each unfinished workflow is checked for timeouts."
    )
    ttl_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often finished workflows are checked for their time to live (a check is a "
        "comparison in memory; only a due deletion calls the API server).",
    )
    heartbeat_batch_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Heartbeat-only status changes are written at most this often per workflow (0: at once).",
    )
    events: EventLevel = Field(
        default="warnings",
        description="Which Kubernetes Events the operator posts on its workflows: all (each "
        "transition: accepted, dispatched, started, succeeded...; about 4 API writes a workflow), "
        "warnings (failures and retries only: a workflow that succeeds costs none), none (no Event "
        "at all, kopf's own neither; the chart then grants no right on Events).",
    )
    namespaces: str = Field(
        default="", description="Comma-separated namespaces to watch; empty: all namespaces."
    )
    leader_election: bool = Field(
        default=True,
        description="Take a coordination.k8s.io Lease before reconciling, so that of "
        "several replicas only one acts.",
    )
    lease_name: str = Field(default="indextts-operator", description="The Lease's name.")
    lease_namespace: str = Field(
        default="",
        description="The Lease's namespace; empty: the pod's namespace (POD_NAMESPACE), else default.",
    )
    lease_duration_seconds: float = Field(
        default=15.0, gt=0, description="A leader that has not renewed for this long is replaced."
    )
    lease_renew_seconds: float = Field(default=5.0, gt=0, description="How often the leader renews.")
    kube_api_url: str = Field(
        default="",
        description="Talk to this API server without credentials (kubectl proxy, an "
        "emulated API server in tests); empty: in-cluster, else KUBECONFIG.",
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Prometheus metrics; 0: off.")
    liveness_endpoint: str = Field(
        default="", description="kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz; empty: off."
    )

    def limits(self) -> Limits:
        return Limits(
            default_timeout_seconds=self.default_timeout_seconds,
            default_ttl_seconds=self.default_ttl_seconds,
            heartbeat_stale_seconds=self.heartbeat_stale_seconds,
            max_attempts=self.max_attempts,
            max_worker_losses=self.max_worker_losses,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            max_queue_seconds=self.max_queue_seconds,
            autoscaling=self.autoscaling,
        )

    def namespace_list(self) -> list[str]:
        return [ns.strip() for ns in self.namespaces.split(",") if ns.strip()]
