"""The chat playground: conversations with a character, streamed answers, regeneration,
image messages, and `verbose`'s thought process.

The page works without JavaScript (a form post answers when the turn is done, then shows
the conversation); `static/playground.js` streams instead, through `…/stream`, which
answers the characters API's Server-Sent Events (`delta` events, then the stored
`message`) for the same turn."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import Response

from personae.api.deps import (
    CharacterServiceDep,
    ChatServiceDep,
    ConversationServiceDep,
    ImageServiceDep,
    SettingsDep,
    StateDep,
)
from personae.api.errors import invalid_request
from personae.api.sse import respond
from personae.config import Settings
from personae.console.web import ActingAccount, ConsoleAccount, check_csrf, redirect, render
from personae.conversation.chat import ChatService, PreparedTurn, TurnResult
from personae.conversation.fields import MessageText, TurnOptions
from personae.ids import IdRef
from personae.image.service import ImageOrder
from personae.models import Account
from personae.pagination import PageRequest

router = APIRouter(dependencies=[Depends(check_csrf)])
HISTORY = 200  # the most messages the page shows, newest kept


class PlaygroundTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: MessageText
    conversation_id: IdRef | None = None
    verbose: bool = False


class PlaygroundMessage(BaseModel):
    """What the stream's last event (and the form post) gets back about the answer."""

    id: str
    conversation_id: str | None
    content: str
    thought_process: dict[str, Any] | None = None


def _out(result: TurnResult) -> PlaygroundMessage:
    return PlaygroundMessage(
        id=result.id,
        conversation_id=result.conversation.id if result.conversation else None,
        content=result.content,
        thought_process=result.thought_process,
    )


async def _character_turn(
    chat: ChatService, account: Account, character_id: str, turn: PlaygroundTurn,
    settings: Settings,
) -> PreparedTurn:  # fmt: skip
    return await chat.prepare_character_turn(
        account, character_id, turn.conversation_id, turn.message,
        TurnOptions(settings.chat_max_tokens, verbose=turn.verbose),
    )  # fmt: skip


async def _run_then_show(prepared: PreparedTurn, request: Request, character_id: str) -> Response:
    """Without JavaScript: the turn runs to its end, then its conversation is shown."""
    result = await respond(prepared, False, request, _out)
    if not isinstance(result, PlaygroundMessage):
        return cast(Response, result)  # the client went away
    return redirect(f"/console/chat/{character_id}?conversation={result.conversation_id}")


def _read(data: dict[str, Any]) -> PlaygroundTurn:
    try:
        return PlaygroundTurn.model_validate(data)
    except ValidationError as exc:
        raise invalid_request([e | {"loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


@router.get("/chat")
async def conversations(
    request: Request,
    account: ConsoleAccount,
    service: ConversationServiceDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    listed = await service.list_character_chats(account, PageRequest(page, 50))
    return render(request, "chats.html", {"chats": listed.items, "page": listed})


@router.get("/chat/{character_id}")
async def playground(
    character_id: str,
    request: Request,
    account: ConsoleAccount,
    characters: CharacterServiceDep,
    service: ConversationServiceDep,
    state: StateDep,
    conversation: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    character = await characters.get_visible(account, character_id)
    messages: list[Any] = []
    if conversation:
        chat, _ = await service.get_character_chat(account, conversation)
        if chat.character_id != character.id:
            return redirect(f"/console/chat/{chat.character_id}?conversation={chat.id}")
        # The newest HISTORY messages, shown oldest first.
        page = await service.messages(account, chat.id, PageRequest(1, HISTORY),
                                      newest_first=True)  # fmt: skip
        messages = [(m, state.storage.url_for(m.image_key)) for m, _ in reversed(page.items)]
    earlier = await service.list_character_chats(account, PageRequest(1, 20), character.id)
    context = {
        "character": character,
        "avatar": state.storage.avatar_url(character),
        "conversation_id": conversation,
        "messages": messages,
        "earlier": earlier.items,
    }
    return render(request, "chat.html", context)


@router.post("/chat/{character_id}/messages")
async def send(
    character_id: str,
    request: Request,
    account: ActingAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
    message: Annotated[str, Form(max_length=20_000)],
    conversation_id: Annotated[str, Form(max_length=40)] = "",
    verbose: Annotated[bool, Form()] = False,
) -> Response:
    """The form, without JavaScript."""
    turn = _read({"message": message, "conversation_id": conversation_id or None,
                  "verbose": verbose})  # fmt: skip
    prepared = await _character_turn(chat, account, character_id, turn, settings)
    return await _run_then_show(prepared, request, character_id)


@router.post("/chat/{character_id}/stream")
async def stream(
    character_id: str,
    turn: PlaygroundTurn,
    request: Request,
    account: ActingAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
) -> Any:
    """The playground's script: a JSON body, the answer as Server-Sent Events."""
    prepared = await _character_turn(chat, account, character_id, turn, settings)
    return await respond(prepared, True, request, _out)


@router.post("/chat/{character_id}/conversations/{conversation_id}/regenerate/{message_id}")
async def regenerate(
    character_id: str,
    conversation_id: str,
    message_id: str,
    request: Request,
    account: ActingAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
) -> Response:
    """A new version of a character's message (one chat request, as in the API)."""
    prepared = await chat.prepare_regeneration(
        account, conversation_id, message_id, None, TurnOptions(settings.chat_max_tokens)
    )
    return await _run_then_show(prepared, request, character_id)


@router.post("/chat/{character_id}/conversations/{conversation_id}/image")
async def image(
    character_id: str,
    conversation_id: str,
    account: ActingAccount,
    images: ImageServiceDep,
    prompt: Annotated[str, Form(min_length=1, max_length=2_000)],
) -> Response:
    """An image drawn into the conversation: it appears as a message once it is done."""
    await images.order(account, ImageOrder(prompt=prompt.strip(), conversation_id=conversation_id))
    return redirect(f"/console/chat/{character_id}?conversation={conversation_id}")
