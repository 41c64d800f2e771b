"""The agents API's conversations, their messages, and stateless completions (`/api/v1`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

from typing_extensions import Unpack

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.streaming import AsyncStream, Stream
from personae.client.types import Conversation, Deleted, InputMessage, Message, TurnOptions

CONVERSATIONS = "/api/v1/conversations"


def _list(page: int | None, page_size: int) -> Call[object]:
    params = clean({"page": page, "page_size": page_size})
    return Call("GET", CONVERSATIONS, unparsed, params=params)


def _create(
    title: str | None,
    system_prompt: str | None,
    llm_id: str | None,
    agent_id: str | None,
    messages: Sequence[InputMessage] | None,
    idempotency_key: str | None,
) -> Call[Conversation]:
    body = clean(
        {"title": title, "system_prompt": system_prompt, "llm_id": llm_id, "agent_id": agent_id}
    )
    if messages:
        body["messages"] = [dict(m) for m in messages]
    return Call(
        "POST", CONVERSATIONS, model(Conversation), json=body, idempotency_key=idempotency_key
    )


def _update(
    conversation_id: str, title: str | None, system_prompt: str | None
) -> Call[Conversation]:
    body = clean({"title": title, "system_prompt": system_prompt})
    return Call("PATCH", f"{CONVERSATIONS}/{conversation_id}", model(Conversation), json=body)


def _branch(conversation_id: str, message_id: str, key: str | None) -> Call[Conversation]:
    path = f"{CONVERSATIONS}/{conversation_id}/branch"
    body = {"message_id": message_id}
    return Call("POST", path, model(Conversation), json=body, idempotency_key=key)


def _turn(
    path: str,
    body: dict[str, Any],
    stream: bool,
    idempotency_key: str | None,
    options: TurnOptions,
) -> Call[Message]:
    body = clean(body) | dict(options)
    if stream:
        body["stream"] = True
    return Call("POST", path, model(Message), json=body, idempotency_key=idempotency_key)


def _list_messages(conversation_id: str, page: int | None, page_size: int) -> Call[object]:
    params = clean({"page": page, "page_size": page_size})
    return Call("GET", f"{CONVERSATIONS}/{conversation_id}/messages", unparsed, params=params)


def _edit(
    conversation_id: str, message_id: str, content: str | None, selected: int | None
) -> Call[Message]:
    path = f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}"
    body = clean({"content": content, "selected": selected})
    return Call("PATCH", path, model(Message), json=body)


def _regenerate_path(conversation_id: str, message_id: str) -> str:
    return f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}/regenerate"


class Conversations(SyncResource):
    def list(self, *, page: int | None = None, page_size: int = 100) -> SyncPage[Conversation]:
        """Every conversation of the account; iterate the page for all of them."""
        return self._client._page(_list(page, page_size), Conversation, Shape.ARRAY)

    def create(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        llm_id: str | None = None,
        agent_id: str | None = None,
        messages: Sequence[InputMessage] | None = None,
        idempotency_key: str | None = None,
    ) -> Conversation:
        """Starts a conversation, with an agent (its greeting opens it) or without, and
        optionally some messages to begin with."""
        call = _create(title, system_prompt, llm_id, agent_id, messages, idempotency_key)
        return self._client._request(call)

    def get(self, conversation_id: str) -> Conversation:
        """One conversation."""
        call = Call("GET", f"{CONVERSATIONS}/{conversation_id}", model(Conversation))
        return self._client._request(call)

    def update(
        self, conversation_id: str, *, title: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """Changes a conversation's title and/or system prompt."""
        return self._client._request(_update(conversation_id, title, system_prompt))

    def delete(self, conversation_id: str) -> Deleted:
        """Deletes a conversation and its messages."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        return self._client._request(Call("DELETE", path, deleted(conversation_id)))

    def branch(
        self, conversation_id: str, message_id: str, *, idempotency_key: str | None = None
    ) -> Conversation:
        """A new conversation holding copies of the messages up to `message_id`."""
        return self._client._request(_branch(conversation_id, message_id, idempotency_key))


class Messages(SyncResource):
    def list(
        self, conversation_id: str, *, page: int | None = None, page_size: int = 100
    ) -> SyncPage[Message]:
        """A conversation's messages, oldest first; iterate the page for all of them."""
        call = _list_messages(conversation_id, page, page_size)
        return self._client._page(call, Message, Shape.ARRAY)

    @overload
    def send(
        self, conversation_id: str, content: str, *, stream: Literal[False] = False,
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    def send(
        self, conversation_id: str, content: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Stream[Message]: ...  # fmt: skip
    def send(
        self,
        conversation_id: str,
        content: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | Stream[Message]:
        """Sends a message in a conversation and returns the agent's answer (a `Stream`
        of `Delta` pieces ending with it, with `stream=True`)."""
        path = f"{CONVERSATIONS}/{conversation_id}/messages"
        body = {"content": content, "llm_id": llm_id}
        call = _turn(path, body, stream, idempotency_key, options)
        if stream:
            return self._client._stream(call, Message)
        return self._client._request(call)

    def update(
        self,
        conversation_id: str,
        message_id: str,
        *,
        content: str | None = None,
        selected: int | None = None,
    ) -> Message:
        """Edits a message's `content`, or shows another of its versions (`selected`)."""
        return self._client._request(_edit(conversation_id, message_id, content, selected))

    def delete(self, conversation_id: str, message_id: str) -> Deleted:
        """Deletes one message."""
        path = f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}"
        return self._client._request(Call("DELETE", path, deleted(message_id)))

    @overload
    def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[False] = False,
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Stream[Message]: ...  # fmt: skip
    def regenerate(
        self,
        conversation_id: str,
        message_id: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | Stream[Message]:
        """Answers again the user's message before this agent message; the new answer
        becomes a version of it, selected."""
        path = _regenerate_path(conversation_id, message_id)
        call = _turn(path, {"llm_id": llm_id}, stream, idempotency_key, options)
        if stream:
            return self._client._stream(call, Message)
        return self._client._request(call)


class Completions(SyncResource):
    @overload
    def create(
        self, *, messages: Sequence[InputMessage], llm_id: str, agent_id: str | None = None,
        stream: Literal[False] = False, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    def create(
        self, *, messages: Sequence[InputMessage], llm_id: str, agent_id: str | None = None,
        stream: Literal[True], idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Stream[Message]: ...  # fmt: skip
    def create(
        self,
        *,
        messages: Sequence[InputMessage],
        llm_id: str,
        agent_id: str | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | Stream[Message]:
        """A stateless answer to `messages` from model `llm_id` (an agent's persona as the
        system message with `agent_id`); nothing is stored but usage and charge."""
        body = {"messages": [dict(m) for m in messages], "llm_id": llm_id, "agent_id": agent_id}
        call = _turn("/api/v1/completions", body, stream, idempotency_key, options)
        if stream:
            return self._client._stream(call, Message)
        return self._client._request(call)


class AsyncConversations(AsyncResource):
    async def list(
        self, *, page: int | None = None, page_size: int = 100
    ) -> AsyncPage[Conversation]:
        """Every conversation of the account."""
        return await self._client._page(_list(page, page_size), Conversation, Shape.ARRAY)

    async def create(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        llm_id: str | None = None,
        agent_id: str | None = None,
        messages: Sequence[InputMessage] | None = None,
        idempotency_key: str | None = None,
    ) -> Conversation:
        """Starts a conversation."""
        call = _create(title, system_prompt, llm_id, agent_id, messages, idempotency_key)
        return await self._client._request(call)

    async def get(self, conversation_id: str) -> Conversation:
        """One conversation."""
        call = Call("GET", f"{CONVERSATIONS}/{conversation_id}", model(Conversation))
        return await self._client._request(call)

    async def update(
        self, conversation_id: str, *, title: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """Changes a conversation's title and/or system prompt."""
        return await self._client._request(_update(conversation_id, title, system_prompt))

    async def delete(self, conversation_id: str) -> Deleted:
        """Deletes a conversation and its messages."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        return await self._client._request(Call("DELETE", path, deleted(conversation_id)))

    async def branch(
        self, conversation_id: str, message_id: str, *, idempotency_key: str | None = None
    ) -> Conversation:
        """A new conversation holding copies of the messages up to `message_id`."""
        return await self._client._request(_branch(conversation_id, message_id, idempotency_key))


class AsyncMessages(AsyncResource):
    async def list(
        self, conversation_id: str, *, page: int | None = None, page_size: int = 100
    ) -> AsyncPage[Message]:
        """A conversation's messages, oldest first."""
        call = _list_messages(conversation_id, page, page_size)
        return await self._client._page(call, Message, Shape.ARRAY)

    @overload
    async def send(
        self, conversation_id: str, content: str, *, stream: Literal[False] = False,
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    async def send(
        self, conversation_id: str, content: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> AsyncStream[Message]: ...  # fmt: skip
    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | AsyncStream[Message]:
        """Sends a message in a conversation and returns the agent's answer."""
        path = f"{CONVERSATIONS}/{conversation_id}/messages"
        body = {"content": content, "llm_id": llm_id}
        call = _turn(path, body, stream, idempotency_key, options)
        if stream:
            return await self._client._stream(call, Message)
        return await self._client._request(call)

    async def update(
        self,
        conversation_id: str,
        message_id: str,
        *,
        content: str | None = None,
        selected: int | None = None,
    ) -> Message:
        """Edits a message's `content`, or shows another of its versions (`selected`)."""
        return await self._client._request(_edit(conversation_id, message_id, content, selected))

    async def delete(self, conversation_id: str, message_id: str) -> Deleted:
        """Deletes one message."""
        path = f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}"
        return await self._client._request(Call("DELETE", path, deleted(message_id)))

    @overload
    async def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[False] = False,
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    async def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> AsyncStream[Message]: ...  # fmt: skip
    async def regenerate(
        self,
        conversation_id: str,
        message_id: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | AsyncStream[Message]:
        """Answers again the user's message before this agent message."""
        path = _regenerate_path(conversation_id, message_id)
        call = _turn(path, {"llm_id": llm_id}, stream, idempotency_key, options)
        if stream:
            return await self._client._stream(call, Message)
        return await self._client._request(call)


class AsyncCompletions(AsyncResource):
    @overload
    async def create(
        self, *, messages: Sequence[InputMessage], llm_id: str, agent_id: str | None = None,
        stream: Literal[False] = False, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message: ...  # fmt: skip
    @overload
    async def create(
        self, *, messages: Sequence[InputMessage], llm_id: str, agent_id: str | None = None,
        stream: Literal[True], idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> AsyncStream[Message]: ...  # fmt: skip
    async def create(
        self,
        *,
        messages: Sequence[InputMessage],
        llm_id: str,
        agent_id: str | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Message | AsyncStream[Message]:
        """A stateless answer to `messages` from model `llm_id`."""
        body = {"messages": [dict(m) for m in messages], "llm_id": llm_id, "agent_id": agent_id}
        call = _turn("/api/v1/completions", body, stream, idempotency_key, options)
        if stream:
            return await self._client._stream(call, Message)
        return await self._client._request(call)
