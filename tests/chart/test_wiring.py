"""Ports, probes, NetworkPolicies and settings: the chart wires each component as its code expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from inference_pod.settings import WorkerSettings
from kube_testbed.helm import (
    CPU_VALUES,
    Helm,
    HelmError,
    Manifest,
    by_kind,
    component,
    env_of,
    named,
    pod_specs,
)
from tests.chart.test_render import EVERYTHING
from tts_api.policy import ValidationPolicy
from tts_operator.reconcile import Limits
from tts_operator.settings import Settings as OperatorSettings


def container_of(docs: list[Manifest], name: str) -> Manifest:
    deployment = named(docs, "Deployment", component(name))
    container: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def port_named(container: Manifest, name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    assert isinstance(port, int)
    return port


def test_the_gateway_service_serves_port_8788(helm: Helm) -> None:
    docs = helm.template()
    service = named(docs, "Service", component("gateway"))
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8788, "targetPort": "http", "protocol": "TCP"}
    ]
    gateway = container_of(docs, "gateway")
    assert port_named(gateway, "http") == 8788
    assert env_of(gateway)["TTS_GATEWAY_PORT"] == "8788"
    assert gateway["args"] == ["gateway"]


def test_the_operator_logs_in_the_chosen_format(helm: Helm) -> None:
    assert container_of(helm.template(), "operator")["args"] == ["operator", "--log-format", "plain"]
    docs = helm.template(set_values=["operator.logFormat=json"])
    assert container_of(docs, "operator")["args"] == ["operator", "--log-format", "json"]


def test_a_restricted_gateway_still_lets_the_charts_helm_test_in(helm: Helm) -> None:
    docs = helm.template(set_values=["networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.team=web"])
    (rule,) = policies(docs)["gateway"]["spec"]["ingress"]
    assert rule["from"][0] == {"namespaceSelector": {"matchLabels": {"team": "web"}}}
    assert rule["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "smoke-test"
    assert len(rule["from"]) == 2
    scraped = helm.template(
        values=[EVERYTHING],
        set_values=["networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.team=web"],
    )
    clients, scraping = policies(scraped)["gateway"]["spec"]["ingress"]
    assert clients == rule, "scraping opens the monitoring port, not the API port"
    assert scraping["ports"] == [{"port": "metrics", "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("name", "probe", "path", "port"),
    [
        ("gateway", "livenessProbe", "/healthz", "http"),
        ("gateway", "readinessProbe", "/readyz", "metrics"),
        ("inference", "livenessProbe", "/healthz", "http"),
        ("inference", "readinessProbe", "/readyz", "http"),
        ("inference", "startupProbe", "/healthz", "http"),
        ("operator", "livenessProbe", "/healthz", "health"),
    ],
)
def test_probes_use_each_components_health_endpoints(
    helm: Helm, name: str, probe: str, path: str, port: str
) -> None:
    container = container_of(helm.template(), name)
    assert container[probe]["httpGet"] == {"path": path, "port": port}


def test_probe_ports_are_the_ports_the_processes_listen_on(helm: Helm) -> None:
    docs = helm.template(set_values=["inference.httpPort=9100", "operator.healthPort=8181"])
    inference, operator = container_of(docs, "inference"), container_of(docs, "operator")
    assert port_named(inference, "http") == 9100 == int(env_of(inference)["TTS_WORKER_HTTP_PORT"])
    assert port_named(operator, "health") == 8181
    assert env_of(operator)["TTS_OPERATOR_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8181/healthz"
    assert port_named(operator, "metrics") == int(env_of(operator)["TTS_OPERATOR_METRICS_PORT"])
    gateway = container_of(helm.template(set_values=["gateway.metricsPort=9191"]), "gateway")
    assert port_named(gateway, "metrics") == 9191 == int(env_of(gateway)["TTS_GATEWAY_METRICS_PORT"])


def test_every_component_reaches_the_same_nats(helm: Helm) -> None:
    for set_values, url in (
        ((), f"nats://{component('nats')}:4222"),
        (("nats.external.url=nats://nats.infra:4222",), "nats://nats.infra:4222"),
    ):
        docs = helm.template(set_values=set_values)
        assert env_of(container_of(docs, "gateway"))["TTS_GATEWAY_NATS_URL"] == url
        assert env_of(container_of(docs, "operator"))["TTS_OPERATOR_NATS_URL"] == url
        assert env_of(container_of(docs, "inference"))["TTS_WORKER_NATS_URL"] == url
        has_statefulset = bool(by_kind(docs, "StatefulSet"))
        assert has_statefulset is (not set_values), "an external NATS replaces the StatefulSet"


def test_nats_runs_jetstream_on_a_persistent_volume(helm: Helm) -> None:
    docs = helm.template()
    statefulset = named(docs, "StatefulSet", component("nats"))
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    config = named(docs, "ConfigMap", component("nats"))["data"]["nats.conf"]
    assert "jetstream {" in config
    assert "store_dir: /data/jetstream" in config
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nats:2.15.1-alpine"


def test_the_shared_volume_is_read_write_many_and_mounted_where_the_settings_say(helm: Helm) -> None:
    docs = helm.template(set_values=["share.mountPath=/data/share", "share.prefix=/share"])
    claim = named(docs, "PersistentVolumeClaim", component("share"))
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, read_only in (("gateway", True), ("inference", False)):
        container = container_of(docs, name)
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "share" and "subPath" not in m]
        assert mount["mountPath"] == "/data/share"
        assert mount.get("readOnly", False) is read_only, name
        assert env_of(container)["TTS_SHARED_DIR"] == "/data/share"
        assert env_of(container)["TTS_SHARED_PREFIX"] == "/share"
    # The gateway writes one folder: the uploaded voices' clips.
    (uploads,) = [m for m in container_of(docs, "gateway")["volumeMounts"] if m.get("subPath")]
    assert uploads == {"name": "share", "mountPath": "/data/share/voices", "subPath": "voices"}
    assert not [m for m in container_of(docs, "inference")["volumeMounts"] if m.get("subPath")]


def test_library_voices_from_values_become_ttsvoice_objects_the_model_reads(
    helm: Helm, tmp_path: Path
) -> None:
    from tts_api.voices import TTSVoice

    values = tmp_path / "voices.yaml"
    values.write_text(
        "voices:\n"
        "  narrator: {audio: /share/voices/narrator.wav, displayName: The Narrator, emotionAlpha: 0.4}\n"
        "gateway: {voiceUploadMaxBytes: 2000000}\n"
    )
    docs = helm.template(values=[values])
    (voice,) = by_kind(docs, "TTSVoice")
    read = TTSVoice.model_validate(voice)
    assert (read.metadata.name, read.metadata.namespace) == ("narrator", "speech")
    assert (read.spec.audio, read.spec.display_name, read.spec.emotion_alpha) == (
        "/share/voices/narrator.wav",
        "The Narrator",
        0.4,
    )
    assert env_of(container_of(docs, "gateway"))["TTS_GATEWAY_VOICE_UPLOAD_MAX_BYTES"] == "2000000"
    assert not by_kind(helm.template(), "TTSVoice")


@pytest.mark.parametrize(
    ("set_values", "volume"),
    [
        ((), {"persistentVolumeClaim": {"claimName": component("models"), "readOnly": True}}),
        (
            ("models.persistentVolumeClaim.existingClaim=weights",),
            {"persistentVolumeClaim": {"claimName": "weights", "readOnly": True}},
        ),
        (
            ("models.source=hostPath", "models.hostPath.path=/mnt/ckpt"),
            {"hostPath": {"path": "/mnt/ckpt", "type": "Directory"}},
        ),
    ],
)
def test_the_checkpoint_comes_from_a_pvc_or_a_host_path(
    helm: Helm, set_values: tuple[str, ...], volume: dict[str, Any]
) -> None:
    docs = helm.template(set_values=set_values)
    pod = named(docs, "Deployment", component("inference"))["spec"]["template"]["spec"]
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert {k: v for k, v in models.items() if k != "name"} == volume
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models"]
    assert mount == {"name": "models", "mountPath": "/models", "readOnly": True}
    made = [c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim")]
    assert (component("models") in made) is (not set_values)


def test_voice_presets_come_from_a_config_map_file(helm: Helm) -> None:
    import yaml

    docs = helm.template(values=[EVERYTHING])
    config_map = named(docs, "ConfigMap", component("voice-presets"))
    presets = yaml.safe_load(config_map["data"]["presets.yaml"])
    assert presets["default"]["reference_audio"] == "/share/voices/default.wav"
    container = container_of(docs, "inference")
    path = env_of(container)["TTS_WORKER_PRESETS_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "voice-presets"]
    assert path == mount["mountPath"] + "/presets.yaml"
    assert "TTS_WORKER_PRESETS_FILE" not in env_of(container_of(helm.template(), "inference"))


# --- NetworkPolicies --------------------------------------------------------------------------------


def policies(docs: list[Manifest]) -> dict[str, Manifest]:
    return {
        doc["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: doc
        for doc in by_kind(docs, "NetworkPolicy")
    }


def test_only_the_releases_components_reach_nats_on_4222(helm: Helm) -> None:
    nats = policies(helm.template())["nats"]
    rule, *routes = nats["spec"]["ingress"]  # then, with nats.replicas > 1, the cluster routes
    assert [r["ports"] for r in routes] in ([], [[{"port": "cluster", "protocol": "TCP"}]])
    sources = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"]}
    assert sources == {"gateway", "operator", "inference"}
    for peer in rule["from"]:
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "tts"
        assert "namespaceSelector" not in peer
    assert rule["ports"] == [{"port": "client", "protocol": "TCP"}]


def test_only_the_gateway_takes_traffic_from_outside_the_release(helm: Helm) -> None:
    by_component = policies(helm.template())
    assert set(by_component) == {"nats", "gateway", "operator", "inference"}
    (gateway_rule,) = by_component["gateway"]["spec"]["ingress"]
    assert "from" not in gateway_rule, "anyone may call the gateway by default"
    assert gateway_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    for name in ("operator", "inference"):
        assert by_component[name]["spec"]["ingress"] == [], f"{name} takes no traffic"


def test_metrics_scraping_opens_only_the_metrics_ports(helm: Helm) -> None:
    by_component = policies(helm.template(values=[EVERYTHING]))
    for name, port in (("operator", "metrics"), ("inference", "http"), ("gateway", "metrics")):
        rule = by_component[name]["spec"]["ingress"][-1]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]


def test_network_policies_can_be_switched_off(helm: Helm) -> None:
    assert not by_kind(helm.template(set_values=["networkPolicy.enabled=false"]), "NetworkPolicy")


# --- settings: every variable the chart sets is one a process reads -----------------------------------

SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway": (GatewaySettings, ValidationPolicy),
    "operator": (OperatorSettings, ValidationPolicy),
    "inference": (WorkerSettings, ValidationPolicy),
}
# Read outside the settings classes: by the pod itself, the worker's default pod name, huggingface_hub.
OTHER_VARIABLES = {"POD_NAME", "POD_NAMESPACE", "HF_HUB_OFFLINE"}


def known_variables(classes: tuple[type[BaseSettings], ...]) -> set[str]:
    names = set()
    for settings in classes:
        prefix = str(settings.model_config.get("env_prefix", ""))
        names |= {(prefix + field).upper() for field in settings.model_fields}
    return names


@pytest.mark.parametrize("values", [(), (CPU_VALUES,), (EVERYTHING,)], ids=["default", "cpu", "everything"])
def test_every_variable_the_chart_sets_is_a_setting_of_that_process(
    helm: Helm, values: tuple[Any, ...]
) -> None:
    docs = helm.template(values=values)
    for name, pod in pod_specs(docs):
        role = name.removeprefix("tts-indextts-")
        if role not in SETTINGS:
            continue
        for variable in env_of(pod["containers"][0]):
            assert variable in known_variables(SETTINGS[role]) | OTHER_VARIABLES, f"{role}: {variable}"


def test_the_charts_operator_limits_are_the_cores_defaults(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reconcile.Limits`` is the one definition of the limits' defaults; the chart's values repeat
    them for its readers, and this holds them equal: the operator, given the chart's environment,
    decides under exactly the default limits."""
    env = env_of(container_of(helm.template(), "operator"))
    limit_variables = {
        f"TTS_OPERATOR_{name.upper()}"
        for name in OperatorSettings.model_fields
        if name in Limits.__dataclass_fields__
    }
    assert {
        "TTS_OPERATOR_DEFAULT_TIMEOUT_SECONDS",
        "TTS_OPERATOR_DEFAULT_TTL_SECONDS",
        "TTS_OPERATOR_HEARTBEAT_STALE_SECONDS",
        "TTS_OPERATOR_MAX_ATTEMPTS",
        "TTS_OPERATOR_MAX_WORKER_LOSSES",
        "TTS_OPERATOR_MAX_QUEUE_SECONDS",
    } <= set(env) & limit_variables
    for variable in limit_variables & set(env):
        monkeypatch.setenv(variable, str(env[variable]))
    assert OperatorSettings().limits() == Limits()
    assert env["TTS_OPERATOR_EVENTS"] == OperatorSettings().events  # the same default level


@pytest.mark.parametrize(
    ("probe", "ready", "status"),
    [
        ("livenessProbe", False, 200),
        ("readinessProbe", False, 503),
        ("readinessProbe", True, 200),
        ("startupProbe", False, 200),
    ],
)
def test_the_inference_probes_hit_the_worker_health_servers_routes(
    helm: Helm, probe: str, ready: bool, status: int
) -> None:
    """The chart's probe paths, answered by the worker's own router (inference_pod/health_server.py)."""
    from prometheus_client import CollectorRegistry

    from inference_pod.health_server import HealthServer

    container = container_of(helm.template(), "inference")
    server = HealthServer(
        "127.0.0.1", 0, ready=lambda: ready, alive=lambda: True, registry=CollectorRegistry()
    )
    code, _, _ = server.respond("GET", container[probe]["httpGet"]["path"])
    assert code == status


@pytest.mark.parametrize("name", ["gateway", "operator", "inference"])
def test_each_container_runs_a_subcommand_of_indextts_k8s(helm: Helm, name: str) -> None:
    """The images' ENTRYPOINT is `indextts-k8s`; the chart's args name the subcommand."""
    from tts_cli.main import SUBCOMMANDS

    subcommand = container_of(helm.template(), name)["args"][0]
    if subcommand not in SUBCOMMANDS and name == "gateway":
        pytest.skip("`indextts-k8s gateway` is not registered in tts_cli/main.py yet (the gateway's issue)")
    assert subcommand in SUBCOMMANDS


@pytest.mark.parametrize(
    ("values", "model"),
    [
        ([], "indextts-2"),
        (["inference.engine=indextts25"], "indextts-2.5"),
        (["inference.engine=espeak"], "espeak"),
        (["inference.engine=auto", "models.enabled=false"], "espeak"),
        (["inference.engine=auto"], "indextts-2"),
    ],
)
def test_every_component_knows_the_one_model_the_inference_pods_serve(
    helm: Helm, values: list[str], model: str
) -> None:
    docs = helm.template(set_values=values)
    for name in ("gateway", "operator", "inference"):
        env = env_of(container_of(docs, name))
        assert (env["TTS_MODELS"], env["TTS_DEFAULT_MODEL"]) == (model, model), name
        policy = ValidationPolicy(models=env["TTS_MODELS"], default_model=env["TTS_DEFAULT_MODEL"])
        assert policy.models == (model,)


def test_the_default_voice_reaches_the_worker(helm: Helm) -> None:
    """IndexTTS2 needs a voice for requests that name none (the workflow API's basic example)."""
    assert "TTS_WORKER_DEFAULT_VOICE" not in env_of(container_of(helm.template(), "inference"))
    docs = helm.template(set_values=["inference.defaultVoice=/models/voices/default.wav"])
    assert env_of(container_of(docs, "inference"))["TTS_WORKER_DEFAULT_VOICE"] == "/models/voices/default.wav"


@pytest.mark.parametrize("voice", ["voices/default.wav", "/models/voices/default.mp3"])
def test_a_default_voice_that_is_not_an_absolute_wav_is_refused(helm: Helm, voice: str) -> None:
    with pytest.raises(HelmError, match="defaultVoice"):
        helm.template(set_values=[f"inference.defaultVoice={voice}"])


def test_the_gateway_knows_the_preset_names_the_workers_have(helm: Helm) -> None:
    """An unknown preset is refused by the gateway at once, naming the field, not later by a worker."""
    assert "TTS_GATEWAY_PRESETS_FILE" not in env_of(container_of(helm.template(), "gateway"))
    docs = helm.template(
        set_values=[
            "voicePresets.presets.default.name=Default Voice",
            "voicePresets.presets.default.reference_audio=/share/voices/default.wav",
        ]
    )
    gateway, worker = container_of(docs, "gateway"), container_of(docs, "inference")
    assert env_of(gateway)["TTS_GATEWAY_PRESETS_FILE"] == env_of(worker)["TTS_WORKER_PRESETS_FILE"]
    mounts = {m["name"]: m for m in gateway["volumeMounts"]}
    assert mounts["voice-presets"]["readOnly"] is True
    pod = named(docs, "Deployment", component("gateway"))["spec"]["template"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    worker_pod = named(docs, "Deployment", component("inference"))["spec"]["template"]
    worker_volumes = {v["name"]: v for v in worker_pod["spec"]["volumes"]}
    assert volumes["voice-presets"] == worker_volumes["voice-presets"]
    assert (
        pod["metadata"]["annotations"]["checksum/voice-presets"]
        == (worker_pod["metadata"]["annotations"]["checksum/voice-presets"])
    )


def test_the_charts_openai_voices_reach_the_gateways_settings(
    helm: Helm, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = tmp_path / "voices.yaml"
    values.write_text(
        "gateway:\n  openaiVoices:\n    alloy: default\n    nova: female_01\n  speechTimeoutSeconds: 90\n"
    )
    env = env_of(container_of(helm.template(values=[values]), "gateway"))
    for name in ("TTS_GATEWAY_OPENAI_VOICES", "TTS_GATEWAY_SPEECH_TIMEOUT_SECONDS"):
        monkeypatch.setenv(name, env[name])
    settings = GatewaySettings()
    assert settings.openai_voices == {"alloy": "default", "nova": "female_01"}
    assert settings.speech_timeout_seconds == 90
    assert "TTS_GATEWAY_OPENAI_VOICES" not in env_of(container_of(helm.template(), "gateway"))


def test_the_model_download_runs_the_pull_before_the_worker_and_the_worker_reads_what_it_made(
    helm: Helm, tmp_path: Path
) -> None:
    import json

    from model_store.catalog import CATALOG

    values = tmp_path / "download.yaml"
    values.write_text(
        "models:\n  download: {enabled: true, endpoint: 'http://mirror.local', tokenSecret: hf-token}\n"
    )
    docs = helm.template(values=[values])
    pod = named(docs, "Deployment", component("inference"))["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["args"] == ["models", "pull", "indextts-2", "--dir", "/models"]
    assert init["image"] == pod["containers"][0]["image"]
    init_env = {e["name"]: e for e in init["env"]}
    assert init_env["HF_ENDPOINT"]["value"] == "http://mirror.local"
    assert init_env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
    (pull_mount,) = [m for m in init["volumeMounts"] if m["name"] == "models"]
    assert not pull_mount.get("readOnly", False)
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert "readOnly" not in models["persistentVolumeClaim"]
    worker = pod["containers"][0]
    (worker_mount,) = [m for m in worker["volumeMounts"] if m["name"] == "models"]
    assert worker_mount["readOnly"] is True
    env = env_of(worker)
    settings = WorkerSettings(
        checkpoint_dir=env["TTS_WORKER_CHECKPOINT_DIR"], hf_home=env["TTS_WORKER_HF_HOME"]
    )
    spec = CATALOG["indextts-2"]
    assert settings.checkpoint_dir == spec.folder(Path("/models"))
    assert settings.hf_home is not None
    assert settings.hf_home / "hub" == spec.hub_cache(spec.folder(Path("/models")))
    # The schema offers exactly the models that can be pulled.
    schema = json.loads((Path(__file__).parents[2] / "charts/indextts/values.schema.json").read_text())
    assert schema["properties"]["models"]["properties"]["download"]["properties"]["model"]["enum"] == sorted(
        CATALOG
    )
    assert (
        "initContainers"
        not in named(helm.template(), "Deployment", component("inference"))["spec"]["template"]["spec"]
    )
