"""A chat turn: checks and the user's message in one short transaction, generation with no
transaction open, the answer in a second one.

Holding a transaction across a generation of seconds would pin a connection and, on
SQLite, the write lock; so a turn commits twice, and every read before the generation
happens in a session of its own that is closed before the engine is awaited. The first
transaction reads what it needs (the conversation, the history that fits), then writes in
the house's lock order (account/billing.py): the quota and balance hold, the conversation
and the user's message, the character's conversation count (a new conversation's), the
turn's reservation record (conversation/turns.py); the message's count toward trending
goes to a tally written in batches (character/activity.py). The second claims the record,
charges the real price and stores the answer. A turn that fails, whose client goes away, or whose server dies, is released
instead: the hold given back, the user's message kept and marked unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.account.billing import Billing, Consumption, Hold
from personae.account.caps import AccountCaps
from personae.character.activity import ChatActivity
from personae.character.service import CharacterService
from personae.conversation.cleaning import TEMPLATE_TOKENS, AnswerFilter, user_markers
from personae.conversation.fields import TurnOptions
from personae.conversation.lore import LoreSettings, RecentTexts, select_lore
from personae.conversation.prompt import (
    USER_NAME,
    FittedHistory,
    HistoryMessage,
    Prompt,
    PromptTemplate,
    fill_names,
    fit_history,
    greetings,
)
from personae.conversation.repository import ConversationRepository
from personae.conversation.service import ConversationService, MessageDetail, owned_conversation
from personae.conversation.turns import TurnLedger
from personae.db.base import utcnow
from personae.db.session import Writer
from personae.engines.llm.base import (
    HOUSE_SAMPLING,
    ChatMessage,
    Chunk,
    Delta,
    Finish,
    GenerationParams,
    LLMEngine,
    Role,
)
from personae.engines.llm.registry import LLMEngines
from personae.errors import EngineTimeout, EngineUnavailable, InvalidRequest
from personae.ids import new_id
from personae.model.service import ModelService
from personae.models import Account, Character, Conversation, Message, Model
from personae.observability import metrics
from personae.storage.files import Storage

log = logging.getLogger("personae")
# Held above the estimate, for what a chat template adds that we cannot count (a default
# system prompt, say). A turn is charged its real tokens, never more than was held.
HOLD_MARGIN_TOKENS = 64
# The finish reason of an answer cut off by `max_generation_seconds` (kept and charged like
# one cut off by `max_tokens`, whose reason is "length"); `thought_process` shows it.
TIME_LIMIT = "time_limit"
_background: set[asyncio.Task[None]] = set()
# A character's lorebook as stored (character/lorebook.py), or None.
Lorebook = dict[str, Any] | None


@dataclass
class TurnResult:
    id: str
    content: str
    created_at: datetime
    conversation: Conversation | None
    character_id: str | None
    thought_process: dict[str, Any] | None
    # A regeneration's message, with its new version selected (None for other turns).
    regenerated: MessageDetail | None = None
    # What the turn used, as charged: the prompt's tokens (the engine's count, else ours),
    # the answer's, and why the answer ended (`stop`, `length` or `time_limit`).
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@dataclass
class PreparedTurn:
    """A turn that passed every check; `stream()` or `run()` generates it, once."""

    service: ChatService
    account: Account
    model: Model
    engine: LLMEngine
    messages: list[ChatMessage]
    options: TurnOptions
    history: FittedHistory
    hold: Hold
    turn_id: str
    conversation: Conversation | None = None
    character_id: str | None = None
    speaker: str | None = None  # the character's name, stripped if the model labels itself
    regenerates: str | None = None  # the id of the message this turn answers again
    lore: dict[str, Any] | None = None  # what the lorebook added, for `verbose`
    _used: bool = field(default=False, repr=False)

    async def run(self) -> TurnResult:
        async for event in self.stream():
            if isinstance(event, TurnResult):
                return event
        raise AssertionError("a turn always ends with its result")  # pragma: no cover

    async def stream(self) -> AsyncIterator[Delta | TurnResult]:
        assert not self._used, "a prepared turn generates once"
        self._used = True
        stops = TEMPLATE_TOKENS + user_markers(USER_NAME) + self.options.stop
        params = GenerationParams(
            max_tokens=self.options.max_tokens,
            sampling=self.options.sampling.over(self.engine.sampling.over(HOUSE_SAMPLING)),
            stop=stops,
            seed=self.options.seed,
        )
        answer = AnswerFilter(self.speaker, stops)
        started = time.perf_counter()
        limit = self.service.max_generation_seconds
        deadline = None if limit is None else asyncio.get_running_loop().time() + limit
        out_of_time = False
        raw: list[str] = []
        pieces: list[str] = []
        finish: Finish | None = None
        settled = False
        first_text: float | None = None
        try:
            chunks = self.engine.stream(self.messages, params)
            try:
                while True:
                    try:
                        chunk = await _next_chunk(chunks, deadline)
                    except StopAsyncIteration:
                        break
                    except _OutOfTime:  # the engine's stream is closed: end the answer here
                        out_of_time = True
                        break
                    if isinstance(chunk, Finish):
                        finish = chunk
                        continue
                    if first_text is None:
                        first_text = time.perf_counter()
                    raw.append(chunk.text)
                    if text := answer.feed(chunk.text):
                        pieces.append(text)
                        yield Delta(text)
                    if answer.stopped:  # the engine ignored a stop: end the answer here
                        break
            finally:
                if isinstance(chunks, AsyncGenerator):  # stop the engine's work at once
                    await chunks.aclose()
            if text := answer.finish():
                pieces.append(text)
                yield Delta(text)
            if finish is None:
                assert answer.stopped or out_of_time, "engines end with a Finish"
                if out_of_time and not raw:
                    raise EngineTimeout(
                        f"The model generated nothing in {limit:g} seconds, the longest a "
                        "turn may generate (PERSONAE_MAX_GENERATION_SECONDS)",
                        details={"limit": "max_generation_seconds", "max": limit},
                    )
                [count] = await self.engine.count_tokens(["".join(raw)])
                # Cut off by the time limit, an answer ends as one cut off by its length.
                finish = Finish(0, count, TIME_LIMIT if out_of_time else "stop")
            generated = time.perf_counter()
            result = await self.service._finish_turn(self, "".join(pieces).strip(), finish, started)
            settled = True
            waited = None if first_text is None else first_text - started
            observe_turn(
                self.model.id, finish, self.history.prompt_tokens, generated - started, waited
            )
            yield result
        finally:
            if not settled:
                metrics.CHAT_TURNS.labels(self.model.id, "failed").inc()
                # An engine error, or the client went away (cancellation): give back what was
                # reserved. Shielded in a task, since this code may be running cancelled.
                task = asyncio.get_running_loop().create_task(self.service._release(self))
                _background.add(task)
                task.add_done_callback(_background.discard)


class _OutOfTime(Exception):
    """The turn's generation ran past `max_generation_seconds`."""


async def _next_chunk(chunks: AsyncIterator[Chunk], deadline: float | None) -> Chunk:
    """The engine's next chunk. Past `deadline` (the event loop's clock) the wait is
    cancelled, which closes the engine's stream (and stops its generation), and
    `_OutOfTime` is raised. Only the wait is timed, never the caller's use of a chunk: a
    deadline around a `yield` would cancel whatever the consumer awaits meanwhile."""
    if deadline is None:
        return await anext(chunks)
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            return await anext(chunks)
    except TimeoutError:
        if timeout.expired():
            raise _OutOfTime from None
        raise


def observe_turn(
    model_id: str, finish: Finish, estimate: int, seconds: float, first_text: float | None
) -> None:
    """A completed turn's metrics, by model: its tokens (the engine's prompt count, else
    our estimate), the generation's time, and the wait for its first text."""
    metrics.CHAT_TURNS.labels(model_id, "completed").inc()
    metrics.CHAT_TOKENS.labels(model_id, "prompt").inc(finish.prompt_tokens or estimate)
    metrics.CHAT_TOKENS.labels(model_id, "completion").inc(finish.completion_tokens)
    metrics.ENGINE_LATENCY.labels(model_id).observe(seconds)
    if first_text is not None:
        metrics.TIME_TO_FIRST_TOKEN.labels(model_id).observe(first_text)


async def drain_releases() -> None:
    """Wait for the releases of failed turns that are still running (at shutdown)."""
    if _background:
        await asyncio.gather(*_background, return_exceptions=True)


class ChatService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        engines: LLMEngines,
        template: PromptTemplate,
        storage: Storage,
        ledger: TurnLedger,
        writer: Writer,
        activity: ChatActivity,
        *,
        caps: AccountCaps | None = None,
        max_generation_seconds: float | None = None,
        lore: LoreSettings | None = None,
    ) -> None:
        """`caps`: the per-account caps a turn that starts a conversation checks;
        `max_generation_seconds`: how long a turn may generate (None: no limit); `lore`:
        how deep lorebooks scan and how many tokens they may add."""
        self.lore = lore or LoreSettings()
        self.sessionmaker = sessionmaker
        self.writer = writer
        self.caps = caps
        self.max_generation_seconds = max_generation_seconds
        self.engines = engines
        self.template = template
        self.storage = storage
        self.ledger = ledger
        self.activity = activity  # messages toward trending, written in batches

    # preparing turns
    async def _book(self, session: AsyncSession, character: Character | None) -> Lorebook:
        if character is None:
            return None
        return await CharacterService(session, self.storage).book_of(character.id)

    async def _render(
        self,
        engine: LLMEngine,
        character: Character | None,
        system_prompt: str,
        book: Lorebook,
        recent: RecentTexts,
    ) -> Prompt:
        """The prompt of every kind of turn: the template, with what the character's
        lorebook adds for the `recent` messages (conversation/lore.py)."""
        lore = None
        if character is not None and book is not None:
            name = character.name

            def fill(text: str) -> str:
                return fill_names(text, name, USER_NAME)

            lore = await select_lore(book, recent, engine.count_tokens, self.lore, fill)
        return self.template.render(character, system_prompt, lore=lore)

    async def _model(self, session: AsyncSession, llm_id: str | None) -> Model:
        return await ModelService(session).resolve_llm(llm_id)

    async def _conversation_model(
        self, session: AsyncSession, conversation: Conversation, llm_id: str | None
    ) -> Model:
        """An explicit llm_id must be enabled; the conversation's own may have gone away."""
        if llm_id is not None:
            return await self._model(session, llm_id)
        return await ModelService(session).resolve_conversation_llm(conversation.llm_id)

    async def _engine(self, model: Model) -> LLMEngine:
        """The model's engine, once it has room for one more turn: a full engine refuses
        here, before anything is written."""
        engine = await self.engines.get(model)
        engine.check_capacity()
        return engine

    async def _hold(
        self,
        session: AsyncSession,
        account: Account,
        model: Model,
        fitted: FittedHistory,
        options: TurnOptions,
        now: datetime | None = None,
    ) -> Hold:
        """One chat request, and the most the turn can cost: its prompt, a full answer and
        a margin."""
        most = fitted.prompt_tokens + options.max_tokens + HOLD_MARGIN_TOKENS
        return await Billing(session).hold(
            account, cost_micros(model, most), chat_request=True, model_id=model.id, now=now
        )

    async def _fit(
        self,
        engine: LLMEngine,
        repo: ConversationRepository | None,
        conversation: Conversation | None,
        fixed: Sequence[str],
        options: TurnOptions,
        before_seq: int | None = None,
        model_id: str | None = None,
    ) -> FittedHistory:
        """The history that fits beside `fixed`: the whole conversation's, or with
        `before_seq` only the messages before that one (a regeneration's)."""
        if options.max_tokens >= engine.context_window:
            raise InvalidRequest(
                f"max_tokens: {options.max_tokens} does not fit in the model's context of "
                f"{engine.context_window} tokens with any prompt",
                details={
                    "field": "max_tokens",
                    "limit": "context",
                    "max": engine.context_window - 1,
                    "context": engine.context_window,
                },
            )
        budget = engine.context_window - options.max_tokens
        if conversation is None or repo is None:
            fitted = await fit_history(engine, budget, fixed, 0, _no_history, 0)
        else:
            if before_seq is None:
                total, before_seq = conversation.message_count, conversation.last_seq + 1
            else:
                total = await repo.count_before(conversation.id, before_seq)
            fitted = await fit_history(
                engine,
                budget,
                fixed,
                total,
                lambda seq, n: repo.history_before(conversation.id, seq, n),
                before_seq,
                model_id,
            )
        if fitted.prompt_tokens > budget:
            raise InvalidRequest(
                f"The prompt ({fitted.prompt_tokens} tokens) leaves no room for an answer of "
                f"{options.max_tokens} tokens in the model's context of {engine.context_window}",
                details={"prompt_tokens": fitted.prompt_tokens, "context": engine.context_window},
            )
        return fitted

    async def prepare_conversation_turn(
        self,
        account: Account,
        conversation_id: str,
        content: str,
        llm_id: str | None,
        options: TurnOptions,
    ) -> PreparedTurn:
        async with self.sessionmaker() as session:
            conversation = await self._owned(session, account, conversation_id)
            model = await self._conversation_model(session, conversation, llm_id)
        engine = await self._engine(model)
        return await self._prepare_stored_turn(
            account, conversation, None, content, model, engine, options
        )

    async def prepare_character_turn(
        self,
        account: Account,
        character_id: str,
        conversation_id: str | None,
        content: str,
        options: TurnOptions,
    ) -> PreparedTurn:
        conversation = None
        async with self.sessionmaker() as session:
            character = await CharacterService(session, self.storage).get_visible(
                account, character_id
            )
            if conversation_id is not None:
                conversation = await self._owned(session, account, conversation_id)
                if conversation.character_id != character.id:
                    raise InvalidRequest(
                        "conversation_id: that conversation is with another character",
                        details={"field": "conversation_id"},
                    )
                model = await ModelService(session).resolve_conversation_llm(conversation.llm_id)
            else:
                model = await self._model(session, None)
        engine = await self._engine(model)
        return await self._prepare_stored_turn(
            account, conversation, character, content, model, engine, options
        )

    async def _prepare_stored_turn(
        self,
        account: Account,
        conversation: Conversation | None,
        new_with: Character | None,
        content: str,
        model: Model,
        engine: LLMEngine,
        options: TurnOptions,
    ) -> PreparedTurn:
        """`conversation`: as the caller just read it (its character loaded), or None to
        start one with `new_with`. The history is the conversation's as of that read."""
        # Reads first, in a session of their own: they lock nothing and wait for no writer.
        async with self.sessionmaker() as session:
            character = conversation.character if conversation else new_with
            # A new conversation opens with the character's greeting (stored below).
            opening = greetings(new_with)[:1] if conversation is None and new_with else []
            repo = ConversationRepository(session)

            async def recent(n: int) -> list[str]:
                texts = [*opening, content]
                if conversation is not None and n > 1:
                    rows = await repo.history_before(
                        conversation.id, conversation.last_seq + 1, n - 1
                    )
                    texts = [*(row.content for row in reversed(rows)), content]
                return texts[-n:]

            prompt = await self._render(
                engine,
                character,
                conversation.system_prompt if conversation else "",
                await self._book(session, character),
                recent,
            )
            fixed = [prompt.system, *opening, content, prompt.post_history]
            fitted = await self._fit(engine, repo, conversation, fixed, options, model_id=model.id)
        # Then the writes, in the lock order: money, conversation, character, records.
        async with self.writer.begin() as session:
            conversations = ConversationService(
                session, CharacterService(session, self.storage), self.caps
            )
            now = utcnow()
            hold = await self._hold(session, account, model, fitted, options, now)
            counts = dict(fitted.counted)  # token counts to keep with their messages
            if conversation is None:
                assert new_with is not None
                conversation = await conversations.create(
                    account, new_with.name, "", model.id, new_with.id
                )
                if opening and conversation.last_message_id:  # the greeting, counted above
                    counts[conversation.last_message_id] = fitted.fixed_counts[1]
            elif conversation.llm_id != model.id:
                await conversations.switch_model(conversation, model.id)
            if counts:
                await conversations.store_prompt_tokens(counts, model.id)
            counted = (fitted.fixed_counts[1 + len(opening)], model.id)
            user_message = await conversations.add_message(
                account, conversation, "user", content, counted
            )
            turn_id = await self.ledger.start(
                session, hold, model.id, conversation.id, user_message.id
            )
        if conversation.character_id:  # once the message is stored
            self.activity.record(conversation.character_id, now)
        history = [ChatMessage("assistant", text) for text in opening] + fitted.messages
        messages = assemble(prompt, history, content)
        return self._track(
            PreparedTurn(
                self,
                account,
                model,
                engine,
                messages,
                options,
                fitted,
                hold,
                turn_id,
                conversation=conversation,
                character_id=conversation.character_id,
                speaker=character.name if character else None,
                lore=prompt.lore,
            )
        )

    async def prepare_completion(
        self,
        account: Account,
        messages: list[tuple[Role, str]],
        llm_id: str | None,
        agent_id: str | None,
        options: TurnOptions,
    ) -> PreparedTurn:
        """A stateless completion: nothing is stored but the usage and the charge. Without
        `llm_id`, the default model (as a new conversation with a character gets)."""
        async with self.sessionmaker() as session:
            model = await self._model(session, llm_id)
            agent = None
            if agent_id is not None:
                agent = await CharacterService(session, self.storage).get_visible(account, agent_id)
            book = await self._book(session, agent)
        engine = await self._engine(model)

        async def recent(n: int) -> list[str]:
            return [c for _, c in messages][-n:]

        prompt = await self._render(engine, agent, "", book, recent)
        *history, last = [ChatMessage(r, c) for r, c in messages]
        if last.role == "user":
            chat = assemble(prompt, history, last.content)
        else:  # the caller ends on another role: no instruction after it
            chat = [*assemble(Prompt(prompt.system, "", prompt.lore), history, None), last]
        fitted = await self._fit(engine, None, None, [m.content for m in chat], options)
        async with self.writer.begin() as session:
            hold = await self._hold(session, account, model, fitted, options)
            turn_id = await self.ledger.start(session, hold, model.id, None, None)
        return self._track(
            PreparedTurn(
                self,
                account,
                model,
                engine,
                chat,
                options,
                fitted,
                hold,
                turn_id,
                character_id=agent.id if agent else None,
                speaker=agent.name if agent else None,
                lore=prompt.lore,
            )
        )

    async def prepare_regeneration(
        self,
        account: Account,
        conversation_id: str,
        message_id: str,
        llm_id: str | None,
        options: TurnOptions,
    ) -> PreparedTurn:
        """Answer the user's turn before a character's message again (a swipe): the history
        up to that message is the prompt, and the answer becomes a new version of it."""
        async with self.sessionmaker() as session:
            conversation = await self._owned(session, account, conversation_id)
            conversations = ConversationService(session, CharacterService(session, self.storage))
            target = await conversations.regeneration_target(conversation, message_id)
            model = await self._conversation_model(session, conversation, llm_id)
        engine = await self._engine(model)
        async with self.sessionmaker() as session:
            repo = ConversationRepository(session)

            async def recent(n: int) -> list[str]:
                rows = await repo.history_before(conversation.id, target.seq, n)
                return [row.content for row in reversed(rows)]

            character = conversation.character
            book = await self._book(session, character)
            prompt = await self._render(engine, character, conversation.system_prompt, book, recent)
            fixed = [prompt.system, prompt.post_history]
            fitted = await self._fit(
                engine, repo, conversation, fixed, options, target.seq, model.id
            )
        async with self.writer.begin() as session:
            conversations = ConversationService(session, CharacterService(session, self.storage))
            now = utcnow()
            hold = await self._hold(session, account, model, fitted, options, now)
            if conversation.llm_id != model.id:
                await conversations.switch_model(conversation, model.id)
            if fitted.counted:
                await conversations.store_prompt_tokens(fitted.counted, model.id)
            turn_id = await self.ledger.start(session, hold, model.id, conversation.id, None)
        if conversation.character_id:
            self.activity.record(conversation.character_id, now)
        return self._track(
            PreparedTurn(
                self,
                account,
                model,
                engine,
                assemble(prompt, fitted.messages, None),
                options,
                fitted,
                hold,
                turn_id,
                conversation=conversation,
                character_id=conversation.character_id,
                speaker=conversation.character.name if conversation.character else None,
                regenerates=target.id,
                lore=prompt.lore,
            )
        )

    def _track(self, turn: PreparedTurn) -> PreparedTurn:
        self.ledger.track(turn.turn_id, turn)
        return turn

    # finishing turns
    async def _finish_turn(
        self, turn: PreparedTurn, content: str, finish: Finish, started: float
    ) -> TurnResult:
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        now = utcnow()
        # Engines that report no usage (some servers) are charged on our own count.
        prompt_tokens = finish.prompt_tokens or turn.history.prompt_tokens
        charged = min(
            cost_micros(turn.model, prompt_tokens + finish.completion_tokens), turn.hold.micros
        )
        message_id = new_id("msg")
        # Counted once, now, for the prompts of the turns that follow (a regenerated
        # version is counted when next read: conversation/prompt.py).
        answer_tokens = None
        if turn.conversation is not None and turn.regenerates is None:
            [answer_tokens] = await turn.engine.count_tokens([content])
        async with self.writer.begin() as session:
            used = Consumption(turn.model.id, prompt_tokens, finish.completion_tokens)
            if not await self.ledger.settle(session, turn.turn_id, turn.hold, charged, used):
                # Released meanwhile (its instance was taken for dead): nothing to store.
                raise EngineUnavailable("The turn was abandoned before its answer was stored")
            conversation = None
            regenerated = None
            conversations = ConversationService(session, CharacterService(session, self.storage))
            if turn.conversation is not None and turn.regenerates is not None:
                regenerated = await conversations.add_alternative(
                    turn.conversation, turn.regenerates, content, finish.completion_tokens
                )
                message_id, now = regenerated.message.id, regenerated.message.created_at
                conversation = turn.conversation
            elif turn.conversation is not None:
                message = Message(
                    id=message_id,
                    role="agent",
                    content=content,
                    created_at=now,
                    tokens=finish.completion_tokens,
                    prompt_tokens=answer_tokens,
                    prompt_tokens_model=turn.model.id,
                )
                conversation = await conversations.post_answer(turn.conversation, message)
        thought = None
        if turn.options.verbose:
            thought = {
                "reasoning": finish.reasoning,
                "tokens": {"prompt": prompt_tokens, "completion": finish.completion_tokens},
                "history": {
                    "kept": turn.history.kept,
                    "dropped": turn.history.dropped,
                    "note": (
                        f"the {turn.history.dropped} oldest messages did not fit the context"
                        if turn.history.dropped
                        else "the whole history fit the context"
                    ),
                },
                "engine": {
                    "model_id": turn.model.id,
                    "engine": turn.model.engine,
                    "latency_ms": latency_ms,
                    "finish_reason": finish.finish_reason,
                },
                "cost": charged / 1_000_000,
            }
            if turn.lore is not None:
                thought["lorebook"] = turn.lore
        return TurnResult(
            message_id,
            content,
            now,
            conversation,
            turn.character_id,
            thought,
            regenerated,
            prompt_tokens,
            finish.completion_tokens,
            finish.finish_reason,
        )

    async def _release(self, turn: PreparedTurn) -> None:
        try:
            await self.ledger.release(turn.turn_id)
        except Exception:  # the turn already failed; the sweep gives the hold back later
            log.exception("could not release the reservation of a failed turn")

    # conversations
    async def _owned(
        self, session: AsyncSession, account: Account, conversation_id: str
    ) -> Conversation:
        return await owned_conversation(ConversationRepository(session), account, conversation_id)


def assemble(prompt: Prompt, history: list[ChatMessage], content: str | None) -> list[ChatMessage]:
    """The messages sent to the model: the system message, the history, the user's new
    message, then the instruction that follows the history."""
    messages = [ChatMessage("system", prompt.system)] if prompt.system else []
    messages += history
    if content is not None:
        messages.append(ChatMessage("user", content))
    if prompt.post_history:
        messages.append(ChatMessage("system", prompt.post_history))
    return messages


async def _no_history(_seq: int, _n: int) -> Sequence[HistoryMessage]:
    return ()


def cost_micros(model: Model, tokens: int) -> int:
    return math.ceil(tokens * model.cost_micros / 1000) if model.cost_micros else 0
