"""Chat of the characters API (`/v1/chat`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from personae.api.deps import (
    ChatServiceDep,
    ConversationServiceDep,
    CurrentAccount,
    SettingsDep,
    StateDep,
)
from personae.api.sse import STREAM_RESPONSES, respond
from personae.conversation.chat import TurnResult
from personae.dialects.characters.render import chat_message, conversation_summary
from personae.dialects.characters.schemas import (
    ChatMessageCreate,
    ChatMessageOut,
    ChatMessagePage,
    ConversationPage,
    Pagination,
)
from personae.pagination import PageRequest

router = APIRouter()


def turn_out(result: TurnResult) -> ChatMessageOut:
    assert result.conversation is not None  # character chat always has one
    return ChatMessageOut(
        id=result.id,
        conversation_id=result.conversation.id,
        character_id=result.character_id,
        content=result.content,
        created_at=result.created_at,
        is_character=True,
        thought_process=result.thought_process,
    )


@router.post(
    "/chat/{character_id}/messages",
    response_model=ChatMessageOut,
    responses=STREAM_RESPONSES,
    summary="Send a message to a character and get its answer",
)
async def send_message(
    character_id: str,
    body: ChatMessageCreate,
    request: Request,
    account: CurrentAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
) -> Any:
    options = body.turn_options(settings.chat_max_tokens)
    turn = await chat.prepare_character_turn(
        account, character_id, body.conversation_id, body.message, options
    )
    return await respond(turn, body.stream, request, turn_out)


@router.get("/chat/conversations", summary="The user's conversations, newest activity first")
async def list_conversations(
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> ConversationPage:
    result = await service.list(account, PageRequest(page, limit))
    storage = state.storage
    data = [conversation_summary(storage, conv, last) for conv, last in result.items]
    return ConversationPage(data=data, pagination=Pagination.of(result))


@router.get("/chat/conversations/{conversation_id}/messages", summary="Messages, newest first")
async def list_messages(
    conversation_id: str,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ChatMessagePage:
    conversation = await service.get(account, conversation_id)
    result = await service.messages(
        account, conversation_id, PageRequest(page, limit), newest_first=True
    )
    return ChatMessagePage(
        data=[chat_message(state.storage, conversation, m) for m in result.items],
        pagination=Pagination.of(result),
    )
