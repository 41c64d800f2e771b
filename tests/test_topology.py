"""The production topology on one machine: two API processes and a worker on PostgreSQL,
Redis, RabbitMQ and an S3-compatible store, all real, started with the commands and the
environment of `deploy/compose.yaml` (so the two cannot drift), with llama.cpp's own
server as the inference server.

Each service's host and port in the compose file (`postgres:5432`, `inference:8080`, ...)
is replaced by where that service runs here; everything else is the compose file's. What
the test adds is listed in `LOCAL_ONLY`, with why. One client alternates between the two
API processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import AMQP_URL, REDIS_URL, fresh_postgres_database
from llm_servers import failing_server, free_port, llama_cpp_server
from webhook_receiver import Receiver, receiver

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"
API_SERVICES = ("api-1", "api-2")
INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")

# Set here and not in the compose file: each process's own data directory (another
# machine's disk), a queue of this test's own (other tests share the broker), and webhooks
# to loopback (the receiver runs on this machine).
LOCAL_ONLY = ("PERSONAE_DATA_DIR", "PERSONAE_QUEUE_NAME", "PERSONAE_WEBHOOK_ALLOW_PRIVATE")

pytestmark = pytest.mark.postgres


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def interpolate(value: Any) -> str:
    """A compose value with `${NAME:-default}` read as its default."""
    return INTERPOLATION.sub(lambda m: m.group(2), str(value))


@dataclass
class Places:
    """Where each compose service runs on this machine."""

    database_url: str
    hosts: dict[str, str] = field(default_factory=dict)  # "minio:9000" -> "127.0.0.1:5xxxx"

    def localize(self, value: str) -> str:
        for there, here in self.hosts.items():
            value = value.replace(f"//{there}", f"//{here}").replace(f"@{there}", f"@{here}")
        return value


def environment(service: dict[str, Any], places: Places, data_dir: Path) -> dict[str, str]:
    """The compose service's environment, localized, over this process's environment."""
    declared = {k: interpolate(v) for k, v in service["environment"].items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONAE_", "AWS_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {name: places.localize(value) for name, value in declared.items()}
    env["PERSONAE_DATABASE_URL"] = places.database_url
    for name in declared:
        for there in places.hosts:
            assert f"/{there}" not in env[name], f"{name}={env[name]} points nowhere"
            assert f"@{there}" not in env[name], f"{name}={env[name]} points nowhere"
    return env | {
        "PERSONAE_DATA_DIR": str(data_dir),
        "PERSONAE_QUEUE_NAME": f"personae-topology-{uuid.uuid4().hex[:8]}",
        "PERSONAE_WEBHOOK_ALLOW_PRIVATE": "true",
    }


def command(service: dict[str, Any], places: Places, port: int | None = None) -> list[str]:
    """The compose service's command, localized and run with this test's Python; a server
    on loopback and `port`."""
    argv = [places.localize(interpolate(a)) for a in service["command"]]
    assert argv[0] == "personae", argv
    if port is not None:
        argv[argv.index("--host") + 1] = "127.0.0.1"
        argv[argv.index("--port") + 1] = str(port)
    return [sys.executable, "-m", "personae", *argv[1:]]


@dataclass
class Api:
    name: str
    base: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            # A session of its own: killing it kills its uvicorn workers too, as a machine
            # going away would.
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        wait_ready(self.base, self.proc, self.log)

    def terminate(self) -> None:
        """SIGTERM to the main process only, as Docker and Kubernetes send it."""
        assert self.proc is not None
        self.proc.terminate()

    def kill(self) -> None:
        """SIGKILL to every process of it: a machine gone."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait()


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


@dataclass
class Topology:
    apis: list[Api]
    worker: subprocess.Popen[bytes]
    operator: dict[str, str]  # the environment of the operator's CLI
    hooks: Receiver
    engines: str  # the test servers' base URL (/paced/v1: a model of known pace)
    turn: int = 0

    def next_api(self) -> Api:
        """The API processes in turn, as a round-robin load balancer would pick them."""
        self.turn += 1
        return self.apis[self.turn % len(self.apis)]

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "personae", *args, "--json"],
            env=self.operator,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on a loopback port (a real HTTP S3 API): its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def create_bucket(endpoint: str, env: dict[str, str]) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("PERSONAE_S3_REGION") or "us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=env["PERSONAE_S3_BUCKET"])


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    services = compose()["services"]
    root = tmp_path_factory.mktemp("topology")
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database("personae_topology"))
        inference = urlsplit(stack.enter_context(llama_cpp_server())).netloc
        engines = stack.enter_context(failing_server())
        s3 = stack.enter_context(moto_s3())
        hooks = stack.enter_context(receiver())
        places = Places(
            database_url,
            {
                "redis:6379": urlsplit(REDIS_URL).netloc,
                "rabbitmq:5672": urlsplit(AMQP_URL).netloc.rpartition("@")[2],
                "minio:9000": urlsplit(s3).netloc,
                "localhost:9000": urlsplit(s3).netloc,  # the store's public URL
                "inference:8080": inference,
            },
        )
        apis = []
        for name in API_SERVICES:
            port = free_port()
            env = environment(services[name], places, root / name)
            env["PERSONAE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            apis.append(
                Api(
                    name,
                    f"http://127.0.0.1:{port}",
                    command(services[name], places, port),
                    env,
                    root / f"{name}.log",
                )
            )
        for api in apis[1:]:  # one queue, as one broker's queue is shared in production
            api.env["PERSONAE_QUEUE_NAME"] = apis[0].env["PERSONAE_QUEUE_NAME"]
        operator = apis[0].env | {"PERSONAE_DATA_DIR": str(root / "operator")}
        create_bucket(s3, operator)

        # The one-shot `models` service registers the inference server; then the APIs and
        # the worker start together (the start-up lock makes one of them migrate).
        models = services["models"]
        subprocess.run(
            command(models, places),
            env=environment(models, places, root / "models"),
            check=True,
            capture_output=True,
        )
        worker_env = environment(services["worker"], places, root / "worker")
        worker_env["PERSONAE_QUEUE_NAME"] = apis[0].env["PERSONAE_QUEUE_NAME"]
        with (root / "worker.log").open("wb") as out:
            worker = subprocess.Popen(
                command(services["worker"], places), env=worker_env, stdout=out, stderr=out
            )
        for api in apis:
            stack.callback(api.stop)
            api.start()
        topology = Topology(apis, worker, operator, hooks, engines)
        yield topology
        worker.terminate()
        worker.wait(timeout=60)


def answer_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_free_accounts_limit_holds_across_both_processes(topology: Topology) -> None:
    key = topology.cli("accounts", "create", "--username", "freebie", "--plan", "free")["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    answered = []
    for _ in range(5):
        api = topology.next_api()
        response = httpx.get(f"{api.base}/api/v1/agents", headers=headers)
        assert response.status_code == 200, (api.name, response.text)
        answered.append(api.name)
    assert set(answered) == set(API_SERVICES)
    for api in topology.apis:  # the 6th request in the minute, whichever process answers
        refused = httpx.get(f"{api.base}/api/v1/agents", headers=headers)
        assert refused.status_code == 429, (api.name, refused.text)
        assert refused.headers["Retry-After"]


def premium(topology: Topology, username: str) -> dict[str, str]:
    key = topology.cli("accounts", "create", "--username", username, "--plan", "premium")
    return {"X-API-Key": key["api_key"]}


def test_a_conversation_written_through_one_is_read_through_the_other(
    topology: Topology,
) -> None:
    headers = premium(topology, "talker")
    one, other = topology.apis
    body = {
        "name": "Vexa",
        "description": "A courier",
        "personality": "Dry",
        "background": "The docks",
    }
    character = answer_of(httpx.post(f"{one.base}/v1/characters", json=body, headers=headers))
    chat = f"/v1/chat/{character['id']}/messages"
    first = answer_of(
        httpx.post(
            f"{one.base}{chat}",
            json={"message": "Hello!", "max_tokens": 8},
            headers=headers,
            timeout=120,
        )
    )
    conversation = first["conversation_id"]
    second = answer_of(
        httpx.post(
            f"{other.base}{chat}",
            headers=headers,
            timeout=120,
            json={"message": "And then?", "max_tokens": 8, "conversation_id": conversation},
        )
    )
    assert second["conversation_id"] == conversation
    for api in topology.apis:
        got = answer_of(
            httpx.get(f"{api.base}/v1/chat/conversations/{conversation}/messages", headers=headers)
        )
        texts = [m["content"] for m in got["data"]]
        assert "Hello!" in texts, (api.name, texts)
        assert "And then?" in texts, (api.name, texts)


def test_an_image_queued_through_one_is_made_by_the_worker(topology: Topology) -> None:
    key = topology.cli("accounts", "create", "--username", "painter", "--plan", "standard")
    headers = {"Authorization": f"Bearer {key['api_key']}"}
    one, other = topology.apis
    queued = answer_of(
        httpx.post(
            f"{one.base}/api/v1/images",
            headers=headers,
            timeout=60,
            json={"prompt": "a harbour at dawn", "width": 64, "height": 64},
        )
    )
    deadline = time.monotonic() + 60
    while (
        image := answer_of(httpx.get(f"{other.base}/api/v1/images/{queued['id']}", headers=headers))
    )["status"] != "completed":
        assert image["status"] in ("pending", "running"), image
        assert time.monotonic() < deadline, image
        time.sleep(0.2)
    assert topology.worker.poll() is None
    # The file is in the shared store, not on either API process's disk.
    png = httpx.get(image["url"])
    assert png.status_code == 200, image["url"]
    assert png.content.startswith(b"\x89PNG")
    for api in topology.apis:
        files = Path(api.env["PERSONAE_DATA_DIR"]) / "files"
        assert not files.exists() or not any(files.rglob("*.png"))


def test_a_webhook_fires_once_per_event(topology: Topology) -> None:
    headers = premium(topology, "hooked")
    one, other = topology.apis
    hook = answer_of(
        httpx.post(
            f"{one.base}/v1/webhooks",
            headers=headers,
            json={
                "url": f"{topology.hooks.base}/hook",
                "events": ["character.created", "character.updated"],
            },
        )
    )
    made = []
    for i, api in enumerate([one, other, one, other]):
        body = {"name": f"Hooked {i}", "description": "d", "personality": "p", "background": "b"}
        made.append(
            answer_of(httpx.post(f"{api.base}/v1/characters", json=body, headers=headers))["id"]
        )
    answer_of(
        httpx.patch(
            f"{other.base}/v1/characters/{made[0]}",
            headers=headers,
            json={"description": "changed"},
        )
    )
    deadline = time.monotonic() + 30
    while len(topology.hooks.on("/hook")) < 5:
        assert time.monotonic() < deadline, topology.hooks.types()
        time.sleep(0.1)
    time.sleep(2)  # a second delivery of any event would have arrived by now
    received = topology.hooks.on("/hook")
    ids = [r.headers["webhook-id"] for r in received]
    assert len(ids) == len(set(ids)) == 5, ids
    assert sorted(r.json["type"] for r in received) == ["character.created"] * 4 + [
        "character.updated"
    ]
    created = {r.json["data"]["id"] for r in received if r.json["type"] == "character.created"}
    assert created == set(made)
    assert hook["id"]


def scraped_requests(base: str, route: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "personae_http_requests_total" and s.labels.get("route") == route
    )


def test_each_process_counts_the_requests_it_served(topology: Topology) -> None:
    headers = premium(topology, "counted")
    before = {api.name: scraped_requests(api.base, "/v1/user/me") for api in topology.apis}
    sent = {"api-1": 3, "api-2": 7}
    for api in topology.apis:
        for _ in range(sent[api.name]):
            assert httpx.get(f"{api.base}/v1/user/me", headers=headers).status_code == 200
    for api in topology.apis:
        after = scraped_requests(api.base, "/v1/user/me")
        assert after - before[api.name] == sent[api.name], api.name


def paced_conversation(topology: Topology, headers: dict[str, str]) -> str:
    """A conversation (agents API) whose model streams one word every 0.1 s (the /paced
    test server): its messages path."""
    model = topology.cli(
        "models",
        "add",
        "--name",
        f"Paced {uuid.uuid4().hex[:6]}",
        "--engine",
        "openai",
        "--base-url",
        f"{topology.engines}/paced/v1",
        "--model",
        "paced",
    )
    base = topology.apis[0].base
    agent = answer_of(httpx.post(f"{base}/api/v1/agents", json={"name": "Slow"}, headers=headers))
    conversation = answer_of(
        httpx.post(
            f"{base}/api/v1/conversations",
            headers=headers,
            json={"agent_id": agent["id"], "llm_id": model["id"]},
        )
    )
    return f"/api/v1/conversations/{conversation['id']}/messages"


def stream_events(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("event:"):
            yield line.removeprefix("event:").strip()


def test_a_stopped_process_finishes_its_stream_and_a_killed_one_leaves_the_other_serving(
    topology: Topology,
) -> None:
    key = topology.cli("accounts", "create", "--username", "streamer", "--plan", "standard")
    headers = {"Authorization": f"Bearer {key['api_key']}"}
    messages = paced_conversation(topology, headers)
    one, other = topology.apis
    body = {"content": "Tell me everything.", "stream": True, "max_tokens": 30}  # 3 s

    # SIGTERM (a rolling deploy): the stream in flight is finished within the grace period.
    events = []
    with httpx.stream(
        "POST", f"{other.base}{messages}", json=body, headers=headers, timeout=60
    ) as response:
        for event in stream_events(response):
            events.append(event)
            if events.count("delta") == 2:
                other.terminate()
    assert events[-1] == "message", events
    assert events.count("delta") == 30, events
    assert other.proc is not None
    other.proc.wait(timeout=30)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{other.base}/health")
    assert httpx.get(f"{one.base}/ready").status_code == 200
    other.start()  # back, on the same port, on the same database

    # SIGKILL (a machine gone): the stream breaks; the other process serves the same
    # conversation's next turn.
    events = []
    cut = httpx.stream("POST", f"{one.base}{messages}", json=body, headers=headers, timeout=60)
    with pytest.raises(httpx.TransportError), cut as response:  # noqa: PT012 - killed mid-read
        for event in stream_events(response):
            events.append(event)
            if events.count("delta") == 2:
                one.kill()
    assert "message" not in events
    answer = httpx.post(
        f"{other.base}{messages}",
        headers=headers,
        timeout=60,
        json={"content": "Still there?", "max_tokens": 2},
    )
    assert answer.status_code == 200, answer.text
    listed = answer_of(httpx.get(f"{other.base}{messages}", headers=headers))
    assert "Still there?" in json.dumps(listed)
    ready = httpx.get(f"{other.base}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["redis"] == ready.json()["queue"] == "ok"
