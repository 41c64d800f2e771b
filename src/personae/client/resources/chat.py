"""`client.chat`: the characters API's chat (`/v1/chat`): send, conversations, messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from typing_extensions import Unpack

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.streaming import AsyncStream, Stream
from personae.client.types import ChatConversation, ChatMessage, Deleted, TurnOptions

if TYPE_CHECKING:
    from personae.client._client import AsyncPersonae, Personae

CONVERSATIONS = "/v1/chat/conversations"


def _send(
    character_id: str,
    message: str,
    conversation_id: str | None,
    stream: bool,
    idempotency_key: str | None,
    options: TurnOptions,
) -> Call[ChatMessage]:
    body = clean({"message": message, "conversation_id": conversation_id}) | dict(options)
    if stream:
        body["stream"] = True
    path = f"/v1/chat/{character_id}/messages"
    return Call("POST", path, model(ChatMessage), json=body, idempotency_key=idempotency_key)


def _regenerate(
    conversation_id: str,
    message_id: str,
    stream: bool,
    llm_id: str | None,
    idempotency_key: str | None,
    options: TurnOptions,
) -> Call[ChatMessage]:
    body: dict[str, Any] = clean({"llm_id": llm_id}) | dict(options)
    if stream:
        body["stream"] = True
    path = f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}/regenerate"
    return Call("POST", path, model(ChatMessage), json=body, idempotency_key=idempotency_key)


def _edit(
    conversation_id: str, message_id: str, content: str | None, selected: int | None
) -> Call[ChatMessage]:
    path = f"{CONVERSATIONS}/{conversation_id}/messages/{message_id}"
    body = clean({"content": content, "selected": selected})
    return Call("PATCH", path, model(ChatMessage), json=body)


def _branch(conversation_id: str, message_id: str, key: str | None) -> Call[ChatConversation]:
    path = f"{CONVERSATIONS}/{conversation_id}/branch"
    body = {"message_id": message_id}
    return Call("POST", path, model(ChatConversation), json=body, idempotency_key=key)


def _list_conversations(
    character_id: str | None, page: int | None, limit: int | None
) -> Call[object]:
    params = clean({"character_id": character_id, "page": page, "limit": limit})
    return Call("GET", CONVERSATIONS, unparsed, params=params)


def _list_messages(conversation_id: str, page: int | None, limit: int | None) -> Call[object]:
    params = clean({"page": page, "limit": limit})
    return Call("GET", f"{CONVERSATIONS}/{conversation_id}/messages", unparsed, params=params)


class ChatConversations(SyncResource):
    """`client.chat.conversations`: conversations as the characters API shows them."""

    def list(
        self, *, character_id: str | None = None, page: int | None = None, limit: int | None = None
    ) -> SyncPage[ChatConversation]:
        """One's conversations with characters, newest activity first (`character_id`
        keeps one character's); iterate the page for all of them."""
        call = _list_conversations(character_id, page, limit)
        return self._client._page(call, ChatConversation, Shape.CHARACTERS)

    def get(self, conversation_id: str) -> ChatConversation:
        """One conversation's summary: its character and last message."""
        call = Call("GET", f"{CONVERSATIONS}/{conversation_id}", model(ChatConversation))
        return self._client._request(call)

    def update(self, conversation_id: str, *, title: str) -> ChatConversation:
        """Renames a conversation."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        call = Call("PATCH", path, model(ChatConversation), json={"title": title})
        return self._client._request(call)

    def delete(self, conversation_id: str) -> Deleted:
        """Deletes a conversation and its messages."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        return self._client._request(Call("DELETE", path, deleted(conversation_id)))

    def branch(
        self, conversation_id: str, message_id: str, *, idempotency_key: str | None = None
    ) -> ChatConversation:
        """A new conversation holding copies of the messages up to `message_id`."""
        return self._client._request(_branch(conversation_id, message_id, idempotency_key))


class ChatMessages(SyncResource):
    """`client.chat.messages`: a conversation's messages as the characters API shows them."""

    def list(
        self, conversation_id: str, *, page: int | None = None, limit: int | None = None
    ) -> SyncPage[ChatMessage]:
        """A conversation's messages, newest first; iterate the page for all of them."""
        call = _list_messages(conversation_id, page, limit)
        return self._client._page(call, ChatMessage, Shape.CHARACTERS)

    def update(
        self,
        conversation_id: str,
        message_id: str,
        *,
        content: str | None = None,
        selected: int | None = None,
    ) -> ChatMessage:
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
    ) -> ChatMessage: ...  # fmt: skip
    @overload
    def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Stream[ChatMessage]: ...  # fmt: skip
    def regenerate(
        self,
        conversation_id: str,
        message_id: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage | Stream[ChatMessage]:
        """Answers again the user's message before this character's message; the new
        answer becomes a version of it, selected. `stream=True` streams it."""
        call = _regenerate(conversation_id, message_id, stream, llm_id, idempotency_key, options)
        if stream:
            return self._client._stream(call, ChatMessage)
        return self._client._request(call)


class Chat(SyncResource):
    """`client.chat`: talk to a character through the characters API."""

    def __init__(self, client: Personae) -> None:
        super().__init__(client)
        self.conversations = ChatConversations(client)
        self.messages = ChatMessages(client)

    @overload
    def send(
        self, character_id: str, message: str, conversation_id: str | None = None, *,
        stream: Literal[False] = False, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage: ...  # fmt: skip
    @overload
    def send(
        self, character_id: str, message: str, conversation_id: str | None = None, *,
        stream: Literal[True], idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> Stream[ChatMessage]: ...  # fmt: skip
    def send(
        self,
        character_id: str,
        message: str,
        conversation_id: str | None = None,
        *,
        stream: bool = False,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage | Stream[ChatMessage]:
        """Sends `message` to a character and returns its answer.

        Without `conversation_id` a new conversation starts (the answer's
        `conversation_id` names it). `stream=True` returns a `Stream` of `Delta` pieces
        ending with the stored message. `options`: `max_tokens`, `seed`, `verbose`,
        `temperature` and the other sampling settings.
        """
        call = _send(character_id, message, conversation_id, stream, idempotency_key, options)
        if stream:
            return self._client._stream(call, ChatMessage)
        return self._client._request(call)


class AsyncChatConversations(AsyncResource):
    """The async twin of `ChatConversations`."""

    async def list(
        self, *, character_id: str | None = None, page: int | None = None, limit: int | None = None
    ) -> AsyncPage[ChatConversation]:
        """One's conversations with characters, newest activity first."""
        call = _list_conversations(character_id, page, limit)
        return await self._client._page(call, ChatConversation, Shape.CHARACTERS)

    async def get(self, conversation_id: str) -> ChatConversation:
        """One conversation's summary."""
        call = Call("GET", f"{CONVERSATIONS}/{conversation_id}", model(ChatConversation))
        return await self._client._request(call)

    async def update(self, conversation_id: str, *, title: str) -> ChatConversation:
        """Renames a conversation."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        call = Call("PATCH", path, model(ChatConversation), json={"title": title})
        return await self._client._request(call)

    async def delete(self, conversation_id: str) -> Deleted:
        """Deletes a conversation and its messages."""
        path = f"{CONVERSATIONS}/{conversation_id}"
        return await self._client._request(Call("DELETE", path, deleted(conversation_id)))

    async def branch(
        self, conversation_id: str, message_id: str, *, idempotency_key: str | None = None
    ) -> ChatConversation:
        """A new conversation holding copies of the messages up to `message_id`."""
        return await self._client._request(_branch(conversation_id, message_id, idempotency_key))


class AsyncChatMessages(AsyncResource):
    """The async twin of `ChatMessages`."""

    async def list(
        self, conversation_id: str, *, page: int | None = None, limit: int | None = None
    ) -> AsyncPage[ChatMessage]:
        """A conversation's messages, newest first."""
        call = _list_messages(conversation_id, page, limit)
        return await self._client._page(call, ChatMessage, Shape.CHARACTERS)

    async def update(
        self,
        conversation_id: str,
        message_id: str,
        *,
        content: str | None = None,
        selected: int | None = None,
    ) -> ChatMessage:
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
    ) -> ChatMessage: ...  # fmt: skip
    @overload
    async def regenerate(
        self, conversation_id: str, message_id: str, *, stream: Literal[True],
        llm_id: str | None = None, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> AsyncStream[ChatMessage]: ...  # fmt: skip
    async def regenerate(
        self,
        conversation_id: str,
        message_id: str,
        *,
        stream: bool = False,
        llm_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage | AsyncStream[ChatMessage]:
        """Answers again the user's message before this character's message."""
        call = _regenerate(conversation_id, message_id, stream, llm_id, idempotency_key, options)
        if stream:
            return await self._client._stream(call, ChatMessage)
        return await self._client._request(call)


class AsyncChat(AsyncResource):
    """The async twin of `Chat`."""

    def __init__(self, client: AsyncPersonae) -> None:
        super().__init__(client)
        self.conversations = AsyncChatConversations(client)
        self.messages = AsyncChatMessages(client)

    @overload
    async def send(
        self, character_id: str, message: str, conversation_id: str | None = None, *,
        stream: Literal[False] = False, idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage: ...  # fmt: skip
    @overload
    async def send(
        self, character_id: str, message: str, conversation_id: str | None = None, *,
        stream: Literal[True], idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> AsyncStream[ChatMessage]: ...  # fmt: skip
    async def send(
        self,
        character_id: str,
        message: str,
        conversation_id: str | None = None,
        *,
        stream: bool = False,
        idempotency_key: str | None = None,
        **options: Unpack[TurnOptions],
    ) -> ChatMessage | AsyncStream[ChatMessage]:
        """Sends `message` to a character and returns its answer (an `AsyncStream` with
        `stream=True`)."""
        call = _send(character_id, message, conversation_id, stream, idempotency_key, options)
        if stream:
            return await self._client._stream(call, ChatMessage)
        return await self._client._request(call)
