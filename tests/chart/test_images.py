"""The images, the kind cluster and the Makefile targets, checked as files (no Docker engine here)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest
import yaml

from kube_testbed.helm import CPU_VALUES, REPO, Helm, component, named

MAKE = shutil.which("make") or "make"
DOCKERFILE = REPO / "images" / "Dockerfile"
TARGETS = {
    # target: (command, the image `make images` tags)
    "gateway": ("gateway", "gateway:{version}"),
    "operator": ("operator", "operator:{version}"),
    "inference-cpu": ("worker", "inference:{version}-cpu"),
    "inference-cuda": ("worker", "inference:{version}-cuda"),
}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [argument for instruction, argument in self.instructions if instruction == keyword]
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages, each with its instructions (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = argument.partition(" AS ")
            current = Stage(name=name.strip(), base=base.strip())
            stages[current.name] = current
        elif current is None and keyword == "ARG":
            key, _, default = argument.partition("=")
            args[key] = default
        elif current is not None:
            current.instructions.append((keyword, argument.strip()))
    return args, stages


ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())


def resolved_base(stage: Stage) -> str:
    """The stage's base image, through ${ARG}s and earlier stages."""
    base = re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], stage.base)
    return resolved_base(STAGES[base]) if base in STAGES else base


def inherited(stage: Stage, keyword: str) -> str | None:
    """An instruction's last value along the stage's chain of bases (USER, ENTRYPOINT, CMD...)."""
    own = stage.last(keyword)
    if own is not None or stage.base not in STAGES:
        return own
    return inherited(STAGES[stage.base], keyword)


def test_every_image_has_its_target() -> None:
    assert set(TARGETS) <= set(STAGES)


@pytest.mark.parametrize("stage", STAGES.values(), ids=STAGES.keys())
def test_every_base_image_is_pinned_python_slim(stage: Stage) -> None:
    base = resolved_base(stage)
    repository, _, tag = base.partition(":")
    assert repository == "python", base
    assert re.fullmatch(r"3\.11(\.\d+)?-slim(-bookworm)?(@sha256:[0-9a-f]{64})?", tag), base
    assert "latest" not in base


@pytest.mark.parametrize("target", TARGETS)
def test_every_image_runs_as_user_10001_with_entrypoint_indextts_k8s(target: str) -> None:
    stage = STAGES[target]
    user = inherited(stage, "USER")
    assert user is not None
    assert user.split(":")[0] == "10001", "numeric, so that Kubernetes can check runAsNonRoot"
    assert inherited(stage, "ENTRYPOINT") == '["indextts-k8s"]'
    command, _ = TARGETS[target]
    assert inherited(stage, "CMD") == f'["{command}"]'
    assert inherited(stage, "HEALTHCHECK") is None, "Kubernetes probes; no Docker HEALTHCHECK"


@pytest.mark.parametrize("target", TARGETS)
def test_images_copy_a_prebuilt_virtual_environment_and_install_nothing_themselves(target: str) -> None:
    stage = STAGES[target]
    runs = [argument for instruction, argument in stage.instructions if instruction == "RUN"]
    assert runs == [], "the final stages only copy /opt/venv from a build stage"
    (copy,) = [argument for instruction, argument in stage.instructions if instruction == "COPY"]
    source = "venv-cuda" if target == "inference-cuda" else "venv"
    assert copy == f"--from={source} /opt/venv /opt/venv"


def test_pip_never_keeps_a_cache_and_the_engine_image_installs_the_engine_extra() -> None:
    for stage in STAGES.values():
        for instruction, argument in stage.instructions:
            if instruction == "RUN" and "pip install" in argument:
                assert "--no-cache-dir" in argument, argument
    cuda_installs = [a for i, a in STAGES["venv-cuda"].instructions if i == "RUN" and "pip install" in a]
    assert any('".[engine]"' in a and "--constraint" in a for a in cuda_installs)
    control_installs = [a for i, a in STAGES["venv"].instructions if i == "RUN" and "pip install" in a]
    assert control_installs == ["/opt/venv/bin/pip install --no-cache-dir ."]


def test_the_engine_image_compiles_the_nemo_grammars_at_build_time() -> None:
    runs = " ".join(a for i, a in STAGES["venv-cuda"].instructions if i == "RUN")
    assert "TextNormalizer().load()" in runs, "the pods' root filesystem is read-only"


def test_the_engine_image_installs_torch_before_the_sources_so_code_changes_reuse_that_layer() -> None:
    instructions = STAGES["venv-cuda"].instructions
    heavy = instructions.index(
        ("RUN", "/opt/venv/bin/pip install --no-cache-dir --requirement /tmp/constraints-cuda.txt")
    )
    first_source = min(
        i for i, (kind, arg) in enumerate(instructions) if kind == "COPY" and "pyproject.toml" in arg
    )
    grammars = next(
        i for i, (kind, arg) in enumerate(instructions) if kind == "RUN" and "TextNormalizer" in arg
    )
    assert heavy < grammars < first_source


def test_the_cuda_constraints_pin_exact_versions() -> None:
    lines = [
        line.strip()
        for line in (REPO / "images" / "constraints-cuda.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert set(pins) == {"torch", "torchaudio", "indextts2-inference", "transformers"}
    assert pins["transformers"] == "5.17.0", "from 5.18 IndexTTS2's infer fails"


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "everything is left out, then the sources are let in"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {
        part.rstrip("/")
        for stage in STAGES.values()
        for instruction, argument in stage.instructions
        if instruction == "COPY" and not argument.startswith("--from")
        for part in shlex.split(argument)[:-1]
    }
    assert copied <= allowed, copied - allowed
    for secret_prone in (".venv", ".git", ".cache", "tests"):
        assert f"!{secret_prone}" not in ignore


def test_make_images_builds_the_tags_the_chart_and_kind_up_use(helm: Helm) -> None:
    version = "0.1.0"
    dry_run = subprocess.run(  # noqa: S603 (fixed arguments)
        [MAKE, "-n", "images"], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    built = {
        match.group(1): match.group(2)
        for match in re.finditer(r"--target (\S+) .*-t ghcr\.io/indextts-k8s/(\S+) \.", dry_run)
    }
    assert built == {target: tag.format(version=version) for target, (_, tag) in TARGETS.items()}
    docs = helm.template(values=[CPU_VALUES])
    for name in ("gateway", "operator", "inference"):
        image = named(docs, "Deployment", component(name))["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        assert image.removeprefix("ghcr.io/indextts-k8s/") in built.values(), image
    kind_up = (REPO / "scripts" / "kind_up.sh").read_text()
    for image in ('"gateway:$VERSION"', '"operator:$VERSION"', '"inference:$VERSION-cpu"'):
        assert image in kind_up


# --- kind ---------------------------------------------------------------------------------------------


def test_kind_config_is_a_kind_cluster_publishing_the_gateway_on_8788() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert set(config) <= {"kind", "apiVersion", "name", "nodes", "networking", "featureGates"}
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    (mapping,) = node["extraPortMappings"]
    kind_values = yaml.safe_load((REPO / "e2e" / "values-kind.yaml").read_text())
    assert mapping["containerPort"] == kind_values["gateway"]["service"]["nodePort"]
    assert mapping["hostPort"] == 8788


def test_the_kind_values_render_a_gpu_quota_on_fake_gpus(helm: Helm) -> None:
    docs = helm.template(values=[CPU_VALUES, REPO / "e2e" / "values-kind.yaml"])
    quota = named(docs, "ResourceQuota", component("gpu-quota"))
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "2"}
    inference = named(docs, "Deployment", component("inference"))["spec"]["template"]["spec"]["containers"][0]
    assert inference["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert inference["image"].endswith("-cpu")
    assert inference["imagePullPolicy"] == "Never", "kind load puts the images on the node"


def test_kind_up_patches_fake_gpus_into_the_node_status_and_installs_with_the_cpu_values() -> None:
    script = (REPO / "scripts" / "kind_up.sh").read_text()
    assert "--subresource=status" in script
    assert "/status/capacity/nvidia.com~1gpu" in script
    assert "--values charts/indextts/values-cpu.yaml --values e2e/values-kind.yaml" in script
    assert "kind-config.yaml" in script
    bash = shutil.which("bash") or "/bin/bash"
    subprocess.run([bash, "-n", str(REPO / "scripts" / "kind_up.sh")], check=True, timeout=10)  # noqa: S603


@pytest.mark.parametrize("target", ["images", "kind-up", "e2e", "helm"])
def test_the_makefile_has_the_target(target: str) -> None:
    done = subprocess.run(  # noqa: S603 (fixed arguments)
        [MAKE, "-n", target], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def _environment(stage: Stage) -> dict[str, str]:
    """The ENV a stage sets, along its chain of bases (``KEY=value`` pairs, later ones winning)."""
    inherited_env = _environment(STAGES[stage.base]) if stage.base in STAGES else {}
    for instruction, argument in stage.instructions:
        if instruction == "ENV":
            for pair in shlex.split(argument):
                key, equals, value = pair.partition("=")
                if equals:
                    inherited_env[key] = value
    return inherited_env


@pytest.mark.parametrize("target", TARGETS)
def test_no_image_chooses_which_gpus_its_pods_see(target: str) -> None:
    # The device plugin sets NVIDIA_VISIBLE_DEVICES to the GPUs a pod was granted; an image default
    # (the CUDA images' "all") would show every GPU of the node to a pod that requested none, outside
    # the quota that is the GPU lock.
    environment = _environment(STAGES[target])
    assert "NVIDIA_VISIBLE_DEVICES" not in environment, environment
    assert "CUDA_VISIBLE_DEVICES" not in environment, environment


def test_the_cuda_image_still_asks_the_runtime_for_the_compute_libraries() -> None:
    assert _environment(STAGES["inference-cuda"])["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"


def test_no_chart_template_chooses_which_gpus_a_pod_sees() -> None:
    templates = REPO / "charts" / "indextts" / "templates"
    for path in templates.rglob("*.yaml"):
        assert "VISIBLE_DEVICES" not in path.read_text(), path
