"""Chat of the characters API (`/v1/chat`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from personae.api.deps import (
    ChatServiceDep,
    ConversationServiceDep,
    CurrentAccount,
    SettingsDep,
    StateDep,
)
from personae.api.sse import STREAM_RESPONSES, respond
from personae.api.types import BranchCreate, MessageEdit, PageNumber
from personae.conversation.chat import TurnResult
from personae.conversation.fields import RegenerateOptions
from personae.dialects.characters.render import conversation_summary
from personae.dialects.characters.schemas import (
    ChatMessageCreate,
    ChatMessagePage,
    ConversationDeleted,
    ConversationPage,
    ConversationSummary,
    ConversationTitle,
    MessageDeleted,
    Pagination,
)
from personae.pagination import PageRequest
from personae.webhook.payloads import chat_message
from personae.webhook.schemas import ChatMessageOut

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
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    character_id: Annotated[
        str | None, Query(max_length=40, description="Only conversations with this character.")
    ] = None,
) -> ConversationPage:
    """Conversations with a character and at least one message; those started through the
    agents API without an agent are not listed."""
    result = await service.list_character_chats(account, PageRequest(page, limit), character_id)
    storage = state.storage
    data = [conversation_summary(storage, conv, last) for conv, last in result.items]
    return ConversationPage(data=data, pagination=Pagination.of(result))


@router.get("/chat/conversations/{conversation_id}", summary="One conversation")
async def get_conversation(
    conversation_id: str, account: CurrentAccount, service: ConversationServiceDep, state: StateDep
) -> ConversationSummary:
    conversation, last = await service.get_character_chat(account, conversation_id)
    return conversation_summary(state.storage, conversation, last)


@router.patch("/chat/conversations/{conversation_id}", summary="Rename a conversation")
async def update_conversation(
    conversation_id: str,
    body: ConversationTitle,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
) -> ConversationSummary:
    _, last = await service.get_character_chat(account, conversation_id)  # shown here, or 404
    conversation = await service.update(account, conversation_id, title=body.title)
    return conversation_summary(state.storage, conversation, last)


@router.delete(
    "/chat/conversations/{conversation_id}", summary="Delete a conversation and its messages"
)
async def delete_conversation(
    conversation_id: str, account: CurrentAccount, service: ConversationServiceDep
) -> ConversationDeleted:
    await service.delete(account, conversation_id)
    return ConversationDeleted(conversation_id=conversation_id)


@router.post(
    "/chat/conversations/{conversation_id}/branch",
    status_code=status.HTTP_201_CREATED,
    summary="Start a new conversation from this one's history up to a message",
)
async def branch_conversation(
    conversation_id: str,
    body: BranchCreate,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
) -> ConversationSummary:
    await service.get_character_chat(account, conversation_id)  # shown here, or 404
    conversation, last = await service.branch(account, conversation_id, body.message_id)
    return conversation_summary(state.storage, conversation, last)


@router.get("/chat/conversations/{conversation_id}/messages", summary="Messages, newest first")
async def list_messages(
    conversation_id: str,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ChatMessagePage:
    conversation = await service.get(account, conversation_id)
    result = await service.messages(
        account, conversation_id, PageRequest(page, limit), newest_first=True
    )
    return ChatMessagePage(
        data=[chat_message(state.storage, conversation, m, v) for m, v in result.items],
        pagination=Pagination.of(result),
    )


@router.patch(
    "/chat/conversations/{conversation_id}/messages/{message_id}",
    summary="Edit a message, or choose which of its versions it shows",
)
async def edit_message(
    conversation_id: str,
    message_id: str,
    body: MessageEdit,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
) -> ChatMessageOut:
    edited = await service.edit_message(
        account, conversation_id, message_id, content=body.content, selected=body.selected
    )
    return chat_message(state.storage, edited.conversation, edited.message, edited.versions)


@router.post(
    "/chat/conversations/{conversation_id}/messages/{message_id}/regenerate",
    response_model=ChatMessageOut,
    responses=STREAM_RESPONSES,
    summary="Answer the user's message again: a new version of the character's message",
)
async def regenerate_message(
    conversation_id: str,
    message_id: str,
    body: RegenerateOptions,
    request: Request,
    account: CurrentAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
    state: StateDep,
) -> Any:
    """One chat request (quota and balance, like any turn). The new version is selected,
    the earlier ones are kept in `alternatives`; `PATCH` the message to choose another."""
    turn = await chat.prepare_regeneration(
        account,
        conversation_id,
        message_id,
        body.llm_id,
        body.turn_options(settings.chat_max_tokens),
    )

    def render(result: TurnResult) -> ChatMessageOut:
        assert result.regenerated is not None
        detail = result.regenerated
        out = chat_message(state.storage, detail.conversation, detail.message, detail.versions)
        return out.model_copy(update={"thought_process": result.thought_process})

    return await respond(turn, body.stream, request, render)


@router.delete(
    "/chat/conversations/{conversation_id}/messages/{message_id}", summary="Delete a message"
)
async def delete_message(
    conversation_id: str, message_id: str, account: CurrentAccount, service: ConversationServiceDep
) -> MessageDeleted:
    await service.delete_message(account, conversation_id, message_id)
    return MessageDeleted(message_id=message_id)
