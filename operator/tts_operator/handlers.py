"""The kopf handlers, thin: each turns one kopf callback into one input for the runner.

:func:`register` puts them in a registry (the CLI's, or a test's); nothing registers on import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from nats.aio.client import Client as NatsClient

from kube_access.voices import voice_objects
from tts_api.constants import API_GROUP, API_VERSION, FINISHED_PHASES, PLURAL
from tts_api.nats_names import VOICES_BUCKET
from tts_api.policy import ValidationPolicy
from tts_api.voices import VOICE_PLURAL
from tts_operator.leader import LeaderElector
from tts_operator.output_cleanup import request_output_deletion
from tts_operator.reconcile import Created, Deleted, Input, Resumed, Tick, expires_at
from tts_operator.runtime import Runtime
from tts_operator.settings import Settings
from tts_operator.store import KubernetesStore, WorkflowStore, workflow_from_body
from tts_operator.voice_mirror import VoiceMirror

log = logging.getLogger(__name__)

RESOURCE = (API_GROUP, API_VERSION, PLURAL)
# kopf keeps its own bookkeeping in annotations under this prefix (not in status, which is ours).
KOPF_PREFIX = API_GROUP
# How soon kopf retries a handler that failed (the API server or NATS was unreachable).
RETRY_SECONDS = 2.0


def _finished(status: Any) -> bool:
    return bool(status) and status.get("phase") in FINISHED_PHASES


async def start_voice_mirror(api_client: Any, nc: NatsClient, namespaces: list[str]) -> VoiceMirror | None:
    """Copy the TTSVoice objects into the workers' bucket, when the API server serves them."""
    if not await voice_objects(api_client).served():
        log.warning(
            "the API server serves no %s.%s: uploaded voices are off until the TTSVoice CRD is "
            "installed (kubectl apply --server-side -f crds/) and the operator restarted",
            VOICE_PLURAL,
            API_GROUP,
        )
        return None
    mirror = VoiceMirror.of(api_client, await nc.jetstream().key_value(VOICES_BUCKET), namespaces)
    mirror.start()
    return mirror


def register(
    registry: kopf.OperatorRegistry,
    config: Settings,
    *,
    policy: ValidationPolicy,
    store_factory: Callable[[], WorkflowStore] | None = None,
    elector: LeaderElector | None = None,
) -> None:
    """Register the operator's handlers in ``registry``; specs are validated with ``policy``.

    ``store_factory`` defaults to the Kubernetes API (``config.kube_api_url``, else in-cluster, else
    KUBECONFIG); ``elector``, when given, has been won before kopf starts (the CLI waits for the
    Lease first, so a standby runs no watches at all), and renews the Lease in a thread of its own.
    """

    limits = config.limits()

    if config.kube_api_url:
        # Only when configured: an API server reached without credentials (kubectl proxy, tests).
        @kopf.on.login(registry=registry)
        def login_without_credentials(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=config.kube_api_url, insecure=True)

    else:
        # A registry of our own has none of kopf's default logins: in-cluster, else KUBECONFIG.
        @kopf.on.login(registry=registry)
        def login_in_cluster_or_kubeconfig(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def operator_started(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
        settings.posting.level = logging.WARNING  # the operator posts its own Events for transitions
        settings.posting.enabled = config.events != "none"
        # The time-to-live timer deletes its own object; kopf releases the finalizer only once that
        # timer has exited, and re-checks every cancellation_polling seconds (60 by default): a
        # deletion would hang up to a minute. Check every second instead.
        settings.background.cancellation_polling = 1
        # No scanning: kopf would list and watch namespaces (to match patterns) and CRDs (to notice
        # them appear), rights the chart does not grant; refused, it retries each for about 55 s
        # before falling back. The operator watches exact namespaces (or all) and checks below that
        # the CRD is served, once.
        settings.scanning.disabled = True
        if elector is not None and not elector.leading:
            await elector.acquire()
        if store_factory is not None:
            store: WorkflowStore = store_factory()
        else:
            kubernetes_store = KubernetesStore.connect(config.kube_api_url, config.namespace_list())
            if not await kubernetes_store.resource_served():
                raise kopf.PermanentError(
                    f"the API server serves no {PLURAL}.{API_GROUP}/{API_VERSION}: install the "
                    "TTSWorkflow CRD (kubectl apply --server-side -f crds/), then start the operator"
                )
            store = kubernetes_store
        runtime = await Runtime.start(config, store, policy)
        memo.runtime = runtime
        if store_factory is None:
            memo.voice_mirror = await start_voice_mirror(
                kubernetes_store.api_client, runtime.nc, config.namespace_list()
            )
        if elector is not None:
            # A replica that lost the Lease stops reading events at once, before it stops altogether.
            def stop_reading() -> None:
                runtime.consumer_task.cancel()

            elector.on_lost(stop_reading)

    @kopf.on.cleanup(registry=registry)
    async def operator_stopped(memo: kopf.Memo, **_: Any) -> None:
        mirror: VoiceMirror | None = memo.get("voice_mirror")
        if mirror is not None:
            await mirror.stop()
        runtime: Runtime | None = memo.get("runtime")
        if runtime is not None:
            await runtime.stop()
        if elector is not None:
            await elector.release()

    async def reconcile(given: Input, body: kopf.Body, memo: kopf.Memo) -> None:
        if elector is not None and not elector.leading:
            raise kopf.TemporaryError("this replica is not the leader", delay=RETRY_SECONDS)
        runtime: Runtime = memo.runtime
        try:
            await runtime.runner.handle(given, workflow=workflow_from_body(body))
        except Exception as exc:
            raise kopf.TemporaryError(f"{type(given).__name__} failed: {exc}", delay=RETRY_SECONDS) from exc

    @kopf.on.create(*RESOURCE, registry=registry, backoff=RETRY_SECONDS)
    async def ttsworkflow_created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(Created(), body, memo)

    @kopf.on.resume(*RESOURCE, registry=registry, backoff=RETRY_SECONDS)
    async def ttsworkflow_resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(Resumed(), body, memo)

    @kopf.on.delete(*RESOURCE, registry=registry, backoff=RETRY_SECONDS)
    async def ttsworkflow_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(Deleted(), body, memo)
        # Its audio goes with it (TTS_DELETE_OUTPUTS): queued for the inference pods, which mount
        # the share; the finalizer stays until the request is stored, so it is never forgotten.
        runtime: Runtime = memo.runtime
        try:
            await request_output_deletion(runtime.nc.jetstream(), workflow_from_body(body), policy)
        except Exception as exc:
            message = f"queueing its audio's deletion failed: {exc}"
            raise kopf.TemporaryError(message, delay=RETRY_SECONDS) from exc

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        interval=config.tick_seconds,
        when=lambda status, **_: not _finished(status),
    )
    async def ttsworkflow_tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(Tick(), body, memo)

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        interval=config.ttl_check_seconds,
        when=lambda status, **_: _finished(status),
    )
    async def ttsworkflow_expiry(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """A finished workflow is deleted once its time to live has run out (the core decides)."""
        # Most ticks find the deadline ahead: those skip the runner (its lock and cache) altogether.
        now = datetime.now(UTC)
        if expires_at(workflow_from_body(body), now=now, limits=limits) <= now:
            await reconcile(Tick(), body, memo)
