"""Conversations, messages and completions of the agents API (`/api/v1`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

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
from personae.dialects.agents.schemas import (
    CompletionRequest,
    ConversationCreate,
    ConversationOut,
    ConversationUpdate,
    MessageCreate,
    MessageOut,
)
from personae.engines.llm.base import Role
from personae.models import Conversation, Message, MessageAlternative
from personae.pagination import PageRequest
from personae.storage.files import Storage
from personae.webhook.schemas import MessageVersion

router = APIRouter()

ROLES: dict[str, Role] = {
    "user": "user",
    "agent": "assistant",
    "assistant": "assistant",
    "system": "system",
}
STORED_ROLES = {"user": "user", "agent": "agent", "assistant": "agent", "system": "system"}


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        title=c.title,
        system_prompt=c.system_prompt,
        llm_id=c.llm_id,
        agent_id=c.character_id,
        created_at=c.created_at,
        last_message_at=c.last_message_at,
        message_count=c.message_count,
    )


def message_out(
    storage: Storage, m: Message, versions: Sequence[MessageAlternative] = ()
) -> MessageOut:
    return MessageOut(
        id=m.id,
        content=m.content,
        role=m.role,
        created_at=m.created_at,
        image_url=storage.url_for(m.image_key),
        unanswered=m.unanswered,
        alternatives=MessageVersion.list_of(versions),
        selected=m.selected if versions else None,
    )


def turn_out(result: TurnResult) -> MessageOut:
    return MessageOut(
        id=result.id,
        content=result.content,
        role="agent",
        created_at=result.created_at,
        thought_process=result.thought_process,
    )


@router.get("/conversations", summary="The caller's conversations, newest activity first")
async def list_conversations(
    account: CurrentAccount,
    service: ConversationServiceDep,
    page: PageNumber = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[ConversationOut]:
    result = await service.list(account, PageRequest(page, page_size))
    return [conversation_out(c) for c, _ in result.items]


@router.post("/conversations", status_code=status.HTTP_201_CREATED, summary="Start a conversation")
async def create_conversation(
    body: ConversationCreate, account: CurrentAccount, service: ConversationServiceDep
) -> ConversationOut:
    initial = [(STORED_ROLES[m.role], m.content) for m in body.messages]
    conversation = await service.create(
        account, body.title, body.system_prompt, body.llm_id, body.agent_id, initial
    )
    return conversation_out(conversation)


@router.get("/conversations/{conversation_id}", summary="One conversation")
async def get_conversation(
    conversation_id: str, account: CurrentAccount, service: ConversationServiceDep
) -> ConversationOut:
    return conversation_out(await service.get(account, conversation_id))


@router.get("/conversations/{conversation_id}/messages", summary="Messages, oldest first")
async def list_messages(
    conversation_id: str,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
    page: PageNumber = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MessageOut]:
    result = await service.messages(
        account, conversation_id, PageRequest(page, page_size), newest_first=False
    )
    return [message_out(state.storage, m, versions) for m, versions in result.items]


@router.patch("/conversations/{conversation_id}", summary="Change the title or system prompt")
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdate,
    account: CurrentAccount,
    service: ConversationServiceDep,
) -> ConversationOut:
    conversation = await service.update(
        account, conversation_id, title=body.title, system_prompt=body.system_prompt
    )
    return conversation_out(conversation)


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a conversation and its messages",
)
async def delete_conversation(
    conversation_id: str, account: CurrentAccount, service: ConversationServiceDep
) -> Response:
    await service.delete(account, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/branch",
    status_code=status.HTTP_201_CREATED,
    summary="Start a new conversation from this one's history up to a message",
)
async def branch_conversation(
    conversation_id: str,
    body: BranchCreate,
    account: CurrentAccount,
    service: ConversationServiceDep,
) -> ConversationOut:
    conversation, _ = await service.branch(account, conversation_id, body.message_id)
    return conversation_out(conversation)


@router.patch(
    "/conversations/{conversation_id}/messages/{message_id}",
    summary="Edit a message, or choose which of its versions it shows",
)
async def edit_message(
    conversation_id: str,
    message_id: str,
    body: MessageEdit,
    account: CurrentAccount,
    service: ConversationServiceDep,
    state: StateDep,
) -> MessageOut:
    edited = await service.edit_message(
        account, conversation_id, message_id, content=body.content, selected=body.selected
    )
    return message_out(state.storage, edited.message, edited.versions)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/regenerate",
    response_model=MessageOut,
    responses=STREAM_RESPONSES,
    summary="Answer the user's message again: a new version of the agent's message",
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

    def render(result: TurnResult) -> MessageOut:
        assert result.regenerated is not None
        out = message_out(state.storage, result.regenerated.message, result.regenerated.versions)
        return out.model_copy(update={"thought_process": result.thought_process})

    return await respond(turn, body.stream, request, render)


@router.delete(
    "/conversations/{conversation_id}/messages/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a message",
)
async def delete_message(
    conversation_id: str, message_id: str, account: CurrentAccount, service: ConversationServiceDep
) -> Response:
    await service.delete_message(account, conversation_id, message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=MessageOut,
    responses=STREAM_RESPONSES,
    summary="Send a message and get the agent's answer",
)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    account: CurrentAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
) -> Any:
    turn = await chat.prepare_conversation_turn(
        account,
        conversation_id,
        body.content,
        body.llm_id,
        body.turn_options(settings.chat_max_tokens),
    )
    return await respond(turn, body.stream, request, turn_out)


@router.post(
    "/completions",
    response_model=MessageOut,
    responses=STREAM_RESPONSES,
    summary="Generate a response from a language model (nothing is stored)",
)
async def create_completion(
    body: CompletionRequest,
    request: Request,
    account: CurrentAccount,
    chat: ChatServiceDep,
    settings: SettingsDep,
) -> Any:
    messages = [(ROLES[m.role], m.content) for m in body.messages]
    turn = await chat.prepare_completion(
        account, messages, body.llm_id, body.agent_id, body.turn_options(settings.chat_max_tokens)
    )
    return await respond(turn, body.stream, request, turn_out)
