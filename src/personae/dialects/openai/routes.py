"""Routes of the OpenAI-compatible endpoint (`/openai/v1`): chat completions with a
character as the model, and the characters a key can use as models.

A third dialect over the same core: the turn is prepared and charged by `ChatService`
exactly as the native endpoints' are (persona, greeting, sampling defaults, quota,
balance; webhooks for a stored turn), and errors are rendered in OpenAI's shape
(`api/dialect.py`). Stateless by default, as OpenAI's API is: the client's messages are
the conversation. With a conversation id (`metadata.conversation_id`, or a `user` that is
one) the turn goes into that conversation instead, whose stored history is the context.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from personae.api.deps import ChatServiceDep, CurrentAccount, SettingsDep, StateDep, authenticate
from personae.api.dialect import OPENAI_PREFIX
from personae.api.openapi import error_responses
from personae.api.query import reject_control_characters, reject_unknown_query
from personae.api.sse import CLIENT_CLOSED_REQUEST, STREAM_RESPONSES, until_disconnected
from personae.character.service import CharacterService
from personae.conversation.fields import MAX_MESSAGE
from personae.conversation.prompt import greetings
from personae.dialects.openai.render import Completion
from personae.dialects.openai.schemas import (
    BY_NAME,
    ROLES,
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
    ModelObject,
    OpenAIError,
)
from personae.engines.llm.base import Role
from personae.errors import InvalidRequest, NotFound
from personae.models import Account, Character
from personae.pagination import PageRequest
from personae.state import AppState

ERRORS = error_responses(
    OpenAIError,
    {
        400: "Invalid parameters or request format",
        401: "Missing or invalid API key",
        404: "No such model (character) or conversation",
        429: "Rate limit exceeded, or the monthly chat quota spent",
        500: "Internal error",
    },
)

router = APIRouter(
    prefix=OPENAI_PREFIX,
    tags=["OpenAI-compatible"],
    dependencies=[
        Depends(authenticate),
        Depends(reject_unknown_query),
        Depends(reject_control_characters),
    ],
    responses=ERRORS,
)

# One's own characters are read in pages of this many (an account keeps at most
# `PERSONAE_MAX_CHARACTERS_PER_ACCOUNT`, 1,000 by default).
OWNED_PAGE = 200


class ModelNotFound(NotFound):
    code = "model_not_found"


def _no_model(model: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model {model!r} does not exist or you do not have access to it: send a "
        f"character's id, or {BY_NAME}NAME for one of your own",
        details={"field": "model"},
    )


async def _own_characters(service: CharacterService, account: Account) -> list[Character]:
    """Every character the account owns, newest first."""
    found: list[Character] = []
    page = 1
    while True:
        result = await service.owned(account, PageRequest(page, OWNED_PAGE))
        found += result.items
        if page >= result.pages:
            return found
        page += 1


async def resolve_character(state: AppState, account: Account, model: str) -> Character:
    """The character `model` names: an id the account may read (its own, or a public one
    its plan opens), or `character:NAME`, the newest of its own with that name (compared
    without regard to case). 404 `model_not_found` otherwise."""
    async with state.sessionmaker() as session:
        service = CharacterService(session, state.storage)
        if model.startswith(BY_NAME):
            wanted = model.removeprefix(BY_NAME).strip().casefold()
            own = await _own_characters(service, account)
            found = next((c for c in own if c.name.casefold() == wanted), None)
        else:
            try:
                found = await service.get_visible(account, model)
            except NotFound:
                found = None
    if found is None:
        raise _no_model(model)
    return found


def model_object(character: Character, owner: str) -> ModelObject:
    return ModelObject(
        id=character.id,
        created=int(character.created_at.timestamp()),
        owned_by=owner,
        name=character.name,
    )


@router.get("/models", summary="The characters this key can use as models (its own)")
async def list_models(account: CurrentAccount, state: StateDep) -> ModelList:
    """The account's own characters, newest first. A public character of someone else
    can be used as `model` by its id too (where the plan opens the catalogue), but the
    catalogue is not listed here: `GET /v1/characters` pages through it."""
    async with state.sessionmaker() as session:
        own = await _own_characters(CharacterService(session, state.storage), account)
    return ModelList(data=[model_object(c, account.username) for c in own])


def stateless_messages(body: ChatCompletionRequest, character: Character) -> list[tuple[Role, str]]:
    """The client's messages, with the character's greeting as the first answer where
    the client's do not begin with one (after any system messages), as a conversation with
    the character begins."""
    messages = [(ROLES[m.role], m.text) for m in body.messages]
    opening = greetings(character)[:1]
    first = next((i for i, (role, _) in enumerate(messages) if role != "system"), len(messages))
    if opening and first < len(messages) and messages[first][0] != "assistant":
        messages.insert(first, ("assistant", opening[0]))
    return messages


def stored_turn(body: ChatCompletionRequest) -> str:
    """The user's message that a stored turn adds: the last message, which must be the
    user's (the earlier ones are ignored: the conversation's history is the context)."""
    last = body.messages[-1]
    text = last.text.strip()
    if last.role != "user" or not text:
        raise InvalidRequest(
            "messages: with a conversation id, the last message must be the user's, and "
            "not empty (the conversation's stored history is the context; earlier messages "
            "are ignored)",
            details={"field": "messages"},
        )
    if len(text) > MAX_MESSAGE:
        raise InvalidRequest(
            f"messages: the user's message is over {MAX_MESSAGE} characters",
            details={"field": "messages", "max": MAX_MESSAGE},
        )
    return text


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=STREAM_RESPONSES,
    summary="A character answers (OpenAI's Chat Completions)",
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    account: CurrentAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
    state: StateDep,
) -> Any:
    """`model` is a character's id (or `character:NAME`). Without a conversation id the
    client's messages are the conversation and nothing is stored but usage and charge;
    with `metadata.conversation_id` the last (user's) message is the turn, stored in that
    conversation with the answer. One chat request of the month either way."""
    options = body.turn_options(settings.chat_max_tokens)
    character = await resolve_character(state, account, body.model)
    conversation_id = body.conversation_id
    if conversation_id is None:
        messages = stateless_messages(body, character)
        turn = await chat.prepare_completion(account, messages, None, character.id, options)
    else:
        turn = await chat.prepare_character_turn(
            account, character.id, conversation_id, stored_turn(body), options
        )
    completion = Completion(body.model)
    if body.stream:
        return completion.stream(turn, body.include_usage)
    result = await until_disconnected(turn.run(), request)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return completion.answer(result)
