"""Schemathesis against the live app's OpenAPI document: every operation of both dialects,
every default check, with a valid key sent in each of the two auth headers.

The app runs with its real lifespan inside schemathesis's ASGI client, whose event loop
runs in a thread of its own: the fixtures here are synchronous and prepare the database
before the app starts. Generating endpoints talk to a scripted OpenAI-compatible server
(`llm_servers.failing_server`), never to the embedded model, and ask for tiny answers
(`chat_max_tokens`, and the `max_tokens` of a body brought down to it), so a run costs
requests, not inference.

Bounded and seeded: `PERSONAE_FUZZ_EXAMPLES` examples per operation and phase (default 8)
and `PERSONAE_FUZZ_SEED`, so that a failure reproduces. `make fuzz` runs the same test with
thousands of examples, then the stateful workflows built from the links schemathesis
infers from the document (`PERSONAE_FUZZ_STATEFUL=1`).

Two things the hooks below do to the generated requests, neither of which turns an invalid
request into a valid one (each changes only values the document accepts):
- a model reference (`llm_id`, `sd_model_id`) is pointed at the registered model: an id
  that exists is what the document cannot say, and turns then run;
- a multipart form's array part is sent as one part holding the JSON array, as the
  document's `encoding` says; schemathesis sends one part per item instead.

Known false positives, each dropped by `filter_failure` and listed in FALSE_POSITIVES:
a webhook URL whose host does not resolve to a public address (a fact of DNS, not of the
request's shape), comma-separated text in a form's `tags` part (accepted beside the JSON
array, docs/api.md; the document describes the array only), a form's text part holding
`false` or `null` (text, so valid), a body id naming nothing (400 naming the field), and a
catalogue `cursor` the API did not make (400 naming the cursor).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from pydantic import TypeAdapter, ValidationError
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.schemas import OpenApiSchema
from schemathesis.transport.serialization import Binary

from conftest import truncate
from llm_servers import failing_server
from personae.account.service import AccountService
from personae.app import create_app, prepare_database
from personae.config import Settings
from personae.conversation.fields import MAX_ANSWER_TOKENS
from personae.ids import IdRef
from personae.model.service import ModelService, ModelType
from personae.state import AppState

SEED = int(os.environ.get("PERSONAE_FUZZ_SEED", "1405"))
EXAMPLES = int(os.environ.get("PERSONAE_FUZZ_EXAMPLES", "8"))
STATEFUL = os.environ.get("PERSONAE_FUZZ_STATEFUL", "0") == "1"
#: the longest answer a fuzzed turn asks for
TINY_ANSWER = 4
#: header style -> the document's security scheme and how schemathesis takes the key
AUTH_SCHEMES = {
    "bearer": ("HTTPBearer", "bearer"),
    "x-api-key": ("APIKeyHeader", "api_key"),
}
FORM_JSON_PARTS = ("tags", "alternate_greetings")
ID_REF: TypeAdapter[str] = TypeAdapter(IdRef)


@dataclass(frozen=True)
class Prepared:
    key: str
    models: dict[str, str]  # body field -> the id of the registered model it names


@dataclass(frozen=True)
class FalsePositive:
    why: str
    matches: Callable[[Failure, schemathesis.Case, Any], bool]


def _message(response: Any) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(error["message"] if isinstance(error, dict) else error)


def _refused_by_document(case: schemathesis.Case, sent: dict[str, Any] | None = None) -> bool:
    """Whether the case's body (or `sent`, that body as it went out) breaks the document's
    own schema for it: a "valid" case that is not (schemathesis 4.32's coverage phase sends
    an empty required text part of a multipart form, against its `minLength` and
    `pattern`)."""
    document = case.operation.schema.raw_schema
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = content.get(case.media_type or "", {}).get("schema")
    if schema is None or not isinstance(case.body, dict):
        return False
    body = dict(case.body if sent is None else sent)
    if case.media_type == "multipart/form-data":
        body.pop("image", None)
        # A file part is a string to the document (`format: binary`), not to the validator.
        body = {k: str(v) if isinstance(v, Binary | bytes) else v for k, v in body.items()}
        for part in FORM_JSON_PARTS:
            if isinstance(body.get(part), str) and body[part].startswith("["):
                body[part] = json.loads(body[part])
    # The validator schemathesis itself uses; references resolve against the document.
    root = {"components": document.get("components", {}), **schema}
    return not jsonschema_rs.Draft202012Validator(root).is_valid(body)


def _form_text(value: Any) -> Any:
    """A form part as the server reads it: text (schemathesis writes `None` as `null`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _valid_as_form_text(case: schemathesis.Case) -> bool:
    """Whether a multipart case "made invalid" by a non-string value in a text part is, as
    sent, a valid form: every part of a form is text, so `false` in a string field is the
    string "false", which the document accepts."""
    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    sent = {
        name: value if name in FORM_JSON_PARTS else _form_text(value)
        for name, value in case.body.items()
    }
    return not _refused_by_document(case, sent)


def _missing_reference(case: schemathesis.Case, response: Any) -> bool:
    """A 400 for a body field naming an object that does not exist (`message_id: no
    message … in this conversation`): the request cannot be carried out as written, which
    Personae answers 400 naming the field, as Stripe does (`resource_missing`); 404 stays
    the answer for the path's own object. Schemathesis expects 404 for any unknown id."""
    if response.status_code != 400 or not isinstance(case.body, dict):
        return False
    field, _, rest = _message(response).partition(": ")
    return field.endswith("_id") and field in case.body and rest.startswith("no ")


FALSE_POSITIVES = [
    FalsePositive(
        "A Character Card is a file the document can only call a file (or a JSON object): "
        "what makes one (a PNG with a `chara` or `ccv3` chunk, a card's JSON, a CHARX zip) "
        "no schema says, and anything else is 400 naming the fault (docs/api.md).",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData)
            and case.operation.path == "/v1/characters/import"
            and response.status_code == 400
            and _message(response).startswith(("card", "file", "image"))
        ),
    ),
    FalsePositive(
        "A lorebook's regular-expression keys must compile and be safe to run, and the book "
        "must fit its byte and nesting caps: rules no JSON Schema states (docs/api.md).",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData)
            and case.operation.path == "/v1/characters/{character_id}/lorebook"
            and response.status_code == 400
            and _message(response).startswith("lorebook")
        ),
    ),
    FalsePositive(
        "The catalogue's `cursor` is a value only the API makes (a page's `next_cursor`, for "
        "the same sort and tags) and goes without `page`: any other is 400 naming `cursor`, "
        "as its description says; no schema can say which strings are cursors.",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData)
            and case.operation.path == "/v1/characters"
            and case.method.upper() == "GET"
            and response.status_code == 400
            and _message(response).startswith("cursor: ")
        ),
    ),
    FalsePositive(
        "A multipart case called invalid for a non-string value in a text part (`false`, "
        "`null`): every form part is text, and what was sent is a valid form.",
        lambda failure, case, response: (
            isinstance(failure, AcceptedNegativeData) and _valid_as_form_text(case)
        ),
    ),
    FalsePositive(
        "An id in the body that names nothing is 400 naming the field (the stateful phase "
        "sends a made-up `message_id` to an existing conversation's branch).",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData) and _missing_reference(case, response)
        ),
    ),
    FalsePositive(
        "A case schemathesis calls valid whose body the document refuses (its coverage "
        "phase sends an empty `name` part in a multipart form, against `minLength: 1`).",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData) and _refused_by_document(case)
        ),
    ),
    FalsePositive(
        "A webhook's URL must resolve, and only to public addresses (webhook/ssrf.py): "
        "generated host names do not resolve, and no schema can say which do.",
        lambda failure, case, response: (
            isinstance(failure, RejectedPositiveData)
            and case.operation.path.startswith("/v1/webhooks")
            and response.status_code == 400
            and ("does not resolve" in _message(response) or "private" in _message(response))
        ),
    ),
    FalsePositive(
        "A form's `tags` part may also be comma-separated text (docs/api.md); the document "
        "describes the JSON array only, so a part that is not an array (`null`, `{}`, `0`) "
        "is read as tags.",
        lambda failure, case, response: (
            isinstance(failure, AcceptedNegativeData)
            and case.media_type == "multipart/form-data"
            and isinstance(case.body, dict)
            and "tags" in case.body
            and not str(case.body["tags"]).lstrip().startswith("[")
        ),
    ),
]


def _image(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 90)).save(out, kind)
    return out.getvalue()


# The document's `image` part is `image/png` or `image/jpeg`: a file of that kind, which
# schemathesis makes from strategies registered by media type (it has none of its own).
schemathesis.openapi.media_type("image/png", st.just(_image("PNG")))
schemathesis.openapi.media_type("image/jpeg", st.just(_image("JPEG")))


@pytest.fixture(scope="module")
def llm_server() -> Iterator[str]:
    with failing_server() as base:
        yield f"{base}/scripted/v1"


async def _prepare(settings: Settings, llm_base: str) -> Prepared:
    """The database migrated and seeded, a scripted model as the only language model, and
    an enterprise account whose limits no run reaches."""
    state = AppState.build(settings)
    try:
        await prepare_database(state)
        async with state.sessionmaker.begin() as session:
            models = ModelService(session)
            llm = {"base_url": llm_base, "model": "scripted", "context_window": 131_072}
            llm_id = (await models.register(ModelType.LLM, "scripted", "openai", llm)).id
            (images,) = await models.list_enabled(ModelType.SD)  # the placeholder engine
            accounts = AccountService(session)
            credentials = await accounts.create_account("fuzzer", None, "enterprise", Decimal(1000))
            await accounts.set_plan(
                credentials.account,
                "enterprise",
                rate_limit_per_minute=10_000_000,
                chat_requests_per_month=10_000_000,
            )
        return Prepared(credentials.plaintext, {"llm_id": llm_id, "sd_model_id": images.id})
    finally:
        await state.close()


def _valid_id(value: Any) -> bool:
    try:
        ID_REF.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _shaped(prepared: Prepared) -> Callable[[Any, schemathesis.Case], schemathesis.Case]:
    def map_case(context: Any, case: schemathesis.Case) -> schemathesis.Case:
        body = case.body
        if not isinstance(body, dict):
            return case
        tokens = body.get("max_tokens")
        if type(tokens) is int and TINY_ANSWER < tokens <= MAX_ANSWER_TOKENS:
            body["max_tokens"] = TINY_ANSWER
        for field, model_id in prepared.models.items():
            if _valid_id(body.get(field)):
                body[field] = model_id
        if case.media_type == "multipart/form-data":
            for part in FORM_JSON_PARTS:
                if isinstance(body.get(part), list | dict):
                    body[part] = json.dumps(body[part])
        return case

    return map_case


def _known(context: Any, failure: Failure, case: schemathesis.Case, response: Any) -> bool:
    return not any(fp.matches(failure, case, response) for fp in FALSE_POSITIVES)


async def _empty(settings: Settings) -> None:
    async with truncate(settings):
        pass


@pytest.fixture(params=sorted(AUTH_SCHEMES))
def fuzz_schema(
    request: pytest.FixtureRequest, settings: Settings, llm_server: str
) -> Iterator[OpenApiSchema]:
    """The document of an app on each backend (conftest's `settings`), with the key of
    an account of its own in one header style."""
    settings = settings.model_copy(
        update={"embedded_llm": False, "llm_preload": False, "chat_max_tokens": TINY_ANSWER}
    )
    prepared = asyncio.run(_prepare(settings, llm_server))
    scheme, field = AUTH_SCHEMES[request.param]
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES},
            "auth": {"openapi": {scheme: {field: prepared.key}}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings), config=config)
    schema.hook("map_case")(_shaped(prepared))
    schema.hook("filter_failure")(_known)
    # schemathesis 4.32's lazy loader reads and renames the item's `_nodeid`, which pytest
    # 9.2 no longer has (it builds `nodeid` from `_id`): give it one to read.
    request.node._nodeid = request.node.nodeid
    try:
        yield schema
    finally:
        shutdown_lifespans()
        asyncio.run(_empty(settings))


fuzzed = schemathesis.pytest.from_fixture("fuzz_schema")


@fuzzed.parametrize()
def test_fuzz(case: schemathesis.Case) -> None:
    case.call_and_validate()


@pytest.mark.skipif(not STATEFUL, reason="`make fuzz` only (PERSONAE_FUZZ_STATEFUL=1)")
def test_fuzz_stateful(fuzz_schema: OpenApiSchema) -> None:
    """Workflows along the links schemathesis infers from the document (an id a response
    returns, used by the operations that take it): create, read, change, delete."""
    workflow = fuzz_schema.as_state_machine()
    workflow.run(
        settings=hypothesis.settings(
            max_examples=EXAMPLES,
            stateful_step_count=10,
            derandomize=True,  # the same workflows every run
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
