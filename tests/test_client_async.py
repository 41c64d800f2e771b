"""`AsyncPersonae` against a live server: every resource of the async client, awaited,
over real HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import Live
from images import png
from personae.client import AsyncPersonae, AsyncStream, Delta, NotFoundError
from personae.client.types import ChatMessage, Message
from webhook_receiver import receiver

TURN = {"max_tokens": 8, "seed": 7}


async def test_every_async_resource(live: Live) -> None:
    async with AsyncPersonae(api_key=live.key(), base_url=live.base) as client:
        me = await client.user.me()
        assert me.subscription.plan == "premium"

        # characters
        made = await asyncio.gather(*(
            client.characters.create(
                name=f"Async {i}", description="d", personality="p", background="b",
                tags=["async-sdk"], image=png() if i == 0 else None,
            )
            for i in range(3)
        ))  # fmt: skip
        assert made[0].image_url
        page = await client.characters.list(tags=["async-sdk"], limit=1)
        assert sorted([c.id async for c in page]) == sorted(c.id for c in made)
        assert (await client.characters.get(made[1].id)).name == "Async 1"
        assert (await client.characters.update(made[1].id, age=40)).age == 40
        assert (await client.characters.like(made[1].id)).likes == 1
        assert (await client.characters.unlike(made[1].id)).likes == 0

        # chat, streamed and not
        answer = await client.chat.send(made[0].id, "Hello", **TURN)
        assert isinstance(answer, ChatMessage)
        assert answer.is_character
        stream = await client.chat.send(
            made[0].id, "Tell me more", answer.conversation_id, stream=True, **TURN
        )
        assert isinstance(stream, AsyncStream)
        events = [event async for event in stream]
        assert all(isinstance(e, Delta) for e in events[:-1])
        assert len(events) > 1
        assert isinstance(events[-1], ChatMessage)
        assert events[-1].content == stream.text.strip()
        conversation_id = answer.conversation_id
        conversations = await client.chat.conversations.list(character_id=made[0].id)
        assert [c.id for c in conversations.data] == [conversation_id]
        assert (await client.chat.conversations.get(conversation_id)).message_count == 4
        renamed = await client.chat.conversations.update(conversation_id, title="Async")
        assert renamed.title == "Async"
        messages = await client.chat.messages.list(conversation_id, limit=3)
        assert len([m async for m in messages]) == 4
        edited = await client.chat.messages.update(conversation_id, answer.id, content="Edited")
        assert edited.content == "Edited"
        regenerated = await client.chat.messages.regenerate(conversation_id, answer.id, **TURN)
        assert regenerated.selected == 1
        restream = await client.chat.messages.regenerate(
            conversation_id, answer.id, stream=True, **TURN
        )
        assert (await restream.until_done()).selected == 2
        branch = await client.chat.conversations.branch(conversation_id, answer.id)
        assert (await client.chat.messages.delete(conversation_id, answer.id)).id == answer.id
        assert (await client.chat.conversations.delete(branch.id)).id == branch.id

        # agents, conversations, messages, completions
        agent = await client.agents.create(name="Async agent", personality_prompt="Calm")
        assert agent.id in [a.id async for a in await client.agents.list(page_size=1)]
        assert (await client.agents.get(agent.id)).name == "Async agent"
        assert (await client.agents.update(agent.id, tags=["calm"])).tags == ["calm"]
        conversation = await client.conversations.create(agent_id=agent.id)
        assert conversation.id in [c.id for c in (await client.conversations.list()).data]
        assert (await client.conversations.get(conversation.id)).agent_id == agent.id
        updated = await client.conversations.update(conversation.id, title="Calm talk")
        assert updated.title == "Calm talk"
        reply = await client.messages.send(conversation.id, "Hi", **TURN)
        assert isinstance(reply, Message)
        assert reply.role == "agent"
        streamed = await client.messages.send(conversation.id, "How?", stream=True, **TURN)
        last = await streamed.until_done()
        assert [m.role async for m in await client.messages.list(conversation.id, page_size=1)] == [
            "user", "agent", "user", "agent",
        ]  # fmt: skip
        assert (
            await client.messages.update(conversation.id, reply.id, content="Hm")
        ).content == "Hm"
        assert (await client.messages.regenerate(conversation.id, reply.id, **TURN)).selected == 1
        again = await client.messages.regenerate(conversation.id, last.id, stream=True, **TURN)
        assert (await again.until_done()).id == last.id
        forked = await client.conversations.branch(conversation.id, reply.id)
        assert forked.message_count == 2
        assert (await client.messages.delete(conversation.id, last.id)).id == last.id
        assert (await client.conversations.delete(forked.id)).id == forked.id
        llm = (await client.models.list(type="llm"))[0]
        done = await client.completions.create(
            messages=[{"role": "user", "content": "Hi"}], llm_id=llm.id, **TURN
        )
        assert done.role == "agent"
        completion_stream = await client.completions.create(
            messages=[{"role": "user", "content": "Hi"}], llm_id=llm.id, stream=True, **TURN
        )
        assert (await completion_stream.until_done()).role == "agent"
        assert (await client.agents.delete(agent.id)).id == agent.id

        # images, models, favorites
        assert (await client.models.list(type="sd"))[0].type == "sd"
        image = await client.images.generate("a harbour", width=64, height=64)
        assert image.status == "completed"
        assert image.url
        queued = await client.images.generate("a gull", wait=False)
        assert (await client.images.wait(queued.id)).status == "completed"
        assert (await client.images.get(image.id)).id == image.id
        assert {i.id async for i in await client.images.list(page_size=1)} == {image.id, queued.id}
        await client.favorites.add(made[2].id)
        assert [f.id async for f in await client.favorites.list()] == [made[2].id]
        assert (await client.favorites.remove(made[2].id)).id == made[2].id

        # webhooks
        with receiver() as hooks:
            hook = await client.webhooks.create(url=f"{hooks.base}/hook", events=["image.created"])
            assert hook.secret
            assert [w.id async for w in await client.webhooks.list()] == [hook.id]
            assert (await client.webhooks.get(hook.id)).events == ["image.created"]
            paused = await client.webhooks.update(hook.id, status="disabled")
            assert paused.status == "disabled"
            await client.webhooks.update(hook.id, status="active")
            rotated = await client.webhooks.rotate_secret(hook.id)
            assert rotated.secret
            assert rotated.secret != hook.secret
            await client.webhooks.test(hook.id)
            deadline = time.monotonic() + 30
            while not hooks.on("/hook") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            ping = hooks.on("/hook")[0]
            assert client.webhooks.verify(ping.body, ping.headers, rotated.secret)["type"] == "ping"
            deliveries = await client.webhooks.deliveries(hook.id)
            assert [d.event async for d in deliveries] == ["ping"]
            assert (await client.webhooks.delete(hook.id)).id == hook.id

        # cards and lorebooks
        card = {"spec": "chara_card_v2", "spec_version": "2.0",
                "data": {"name": "Card", "description": "d", "personality": "p", "scenario": "",
                         "first_mes": "", "mes_example": "", "extensions": {}}}  # fmt: skip
        imported = await client.characters.import_card(card)
        exported = await client.characters.export_card(imported.id, format="charx")
        assert exported.media_type == "application/zip"
        from_charx = await client.characters.import_card(exported.content)
        assert from_charx.name == "Card"
        book = {"entries": [{"keys": ["k"], "content": "c"}]}
        assert (await client.characters.set_lorebook(imported.id, book)).lorebook is not None
        assert (await client.characters.lorebook(imported.id)).lorebook is not None
        assert (await client.characters.delete_lorebook(imported.id)).id == imported.id
        made += [imported, from_charx]

        for character in made:
            assert (await client.characters.delete(character.id)).id == character.id
        with pytest.raises(NotFoundError):
            await client.characters.get(made[0].id)
