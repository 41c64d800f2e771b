"""The Python client (`personae.client.Personae`) against a live server, resource by
resource, over real HTTP: nothing here is mocked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from conftest import Live
from images import png
from personae.client import (
    AuthenticationError,
    BadRequestError,
    Delta,
    NotFoundError,
    PermissionDeniedError,
    Personae,
    RateLimit,
    Stream,
    WebhookVerificationError,
)
from personae.client.types import Character, ChatMessage, Message
from webhook_receiver import receiver

TURN = {"max_tokens": 8, "seed": 7}


@pytest.fixture(scope="module")
def client(live: Live) -> Iterator[Personae]:
    with Personae(api_key=live.key(), base_url=live.base) as client:
        yield client


@pytest.fixture(scope="module")
def vexa(client: Personae) -> Character:
    return client.characters.create(
        name="Vexa", description="A courier", personality="Defiant", background="The slums",
        tags=["cyberpunk", "female"],
    )  # fmt: skip


def test_characters_create_get_update_like_delete(client: Personae) -> None:
    made = client.characters.create(
        name="Axel", description="A racer", personality="Bold", background="The track",
        tags=["racing"], age=30, image=png(),
    )  # fmt: skip
    assert made.image_url
    assert made.image_url.startswith(client.base_url.scheme)
    assert made.age == 30
    assert made.tags == ["racing"]
    assert made.visibility == "public"
    assert made.rate_limit is not None
    assert made.rate_limit.limit == 750
    assert client.characters.get(made.id).name == "Axel"
    changed = client.characters.update(made.id, description="A retired racer", age=None)
    assert (changed.description, changed.age) == ("A retired racer", None)
    with_image = client.characters.update(made.id, image=png(color=(0, 0, 200)))
    assert with_image.image_url
    assert with_image.image_url != made.image_url
    assert client.characters.like(made.id).likes == 1
    assert client.characters.like(made.id).likes == 1  # liking twice counts once
    assert client.characters.unlike(made.id).likes == 0
    gone = client.characters.delete(made.id)
    assert gone.id == made.id
    assert gone.response is not None
    assert gone.response.status_code == 200
    with pytest.raises(NotFoundError) as missing:
        client.characters.get(made.id)
    assert missing.value.status_code == 404
    assert missing.value.code == "not_found"


CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seren", "description": "A lighthouse keeper\r\nof the north", "personality": "Quiet",
        "scenario": "A storm", "first_mes": "Come in from the rain, {{user}}.", "mes_example": "",
        "creator_notes": "", "system_prompt": "Speak softly.", "post_history_instructions": "",
        "alternate_greetings": ["Shut the door!"], "tags": ["sea"], "creator": "someone",
        "character_version": "1.2", "extensions": {"depth_prompt": {"depth": 4, "prompt": "x"}},
        "character_book": {"entries": [
            {"keys": ["lamp"], "content": "The lamp has burned for ninety years.", "enabled": True,
             "insertion_order": 1},
        ]},
    },
}  # fmt: skip


def test_cards_import_export_and_lorebooks(client: Personae) -> None:
    seren = client.characters.import_card(CARD, visibility="private")
    assert (seren.name, seren.visibility, seren.system_prompt) == (
        "Seren",
        "private",
        "Speak softly.",
    )
    as_json = client.characters.export_card(seren.id, format="json")
    assert as_json.media_type == "application/json"
    assert json.loads(as_json.content) == CARD  # exactly what was imported
    as_png = client.characters.export_card(seren.id, spec="v3")
    assert as_png.content.startswith(b"\x89PNG")
    assert as_png.filename
    assert as_png.rate_limit is not None
    again = client.characters.import_card(as_png.content)  # the PNG, as a file
    assert again.name == "Seren"
    assert again.id != seren.id
    exported = json.loads(client.characters.export_card(again.id, format="json").content)
    assert exported["data"] == CARD["data"] | {"group_only_greetings": []}  # V3's, from the PNG

    book = client.characters.lorebook(seren.id)
    assert book.lorebook is not None
    assert [e["keys"] for e in book.lorebook["entries"]] == [["lamp"]]
    changed = client.characters.set_lorebook(
        seren.id, {"entries": [{"keys": ["storm"], "content": "Storms come from the west."}]}
    )
    assert changed.lorebook is not None
    assert changed.updated_at is not None
    assert changed.lorebook["entries"][0]["keys"] == ["storm"]
    assert client.characters.delete_lorebook(seren.id).id == seren.id
    assert client.characters.lorebook(seren.id).lorebook is None
    with pytest.raises(BadRequestError) as malformed:
        client.characters.import_card(b"not a card")
    assert malformed.value.code == "invalid_request"


def test_the_catalogue_iterates_every_page(client: Personae) -> None:
    tag = f"paged{time.monotonic_ns()}"
    made = [
        client.characters.create(
            name=f"Paged {i}", description="d", personality="p", background="b", tags=[tag]
        ).id
        for i in range(5)
    ]
    page = client.characters.list(tags=[tag], limit=2, sort="newest")
    assert len(page.data) == 2
    assert page.total == 5
    assert page.has_next_page()
    assert [c.id for c in page] == made[::-1]  # newest first, across three pages
    assert [len(p.data) for p in page.iter_pages()] == [2, 2, 1]
    by_page = client.characters.list(tags=tag, limit=2, page=3, sort="newest")
    assert [c.id for c in by_page.data] == made[:1]
    assert not by_page.has_next_page()


def test_chat_send_and_stream(client: Personae, vexa: Character) -> None:
    first = client.chat.send(vexa.id, "Who are you?", **TURN)
    assert isinstance(first, ChatMessage)
    assert first.is_character
    assert first.content
    stream = client.chat.send(
        vexa.id, "Where do you live?", first.conversation_id, stream=True, **TURN
    )
    assert isinstance(stream, Stream)
    assert stream.rate_limit.limit == 750
    events = list(stream)
    deltas, final = events[:-1], events[-1]
    assert deltas
    assert all(isinstance(d, Delta) for d in deltas)
    assert isinstance(final, ChatMessage)
    assert final.conversation_id == first.conversation_id
    assert "".join(d.content for d in deltas if isinstance(d, Delta)) == stream.text
    assert final.content == stream.text.strip()
    again = client.chat.send(vexa.id, "And then?", first.conversation_id, stream=True, **TURN)
    assert again.until_done().conversation_id == first.conversation_id


def test_chat_conversations_and_messages(client: Personae, vexa: Character) -> None:
    answer = client.chat.send(vexa.id, "Hello there", **TURN)
    conversation_id = answer.conversation_id
    listed = client.chat.conversations.list(character_id=vexa.id)
    assert conversation_id in [c.id for c in listed]
    summary = client.chat.conversations.get(conversation_id)
    assert summary.character is not None
    assert summary.character.id == vexa.id
    assert client.chat.conversations.update(conversation_id, title="Night run").title == "Night run"

    messages = client.chat.messages.list(conversation_id, limit=1)
    assert [m.id for m in messages.data] == [answer.id]  # newest first
    assert len(list(messages)) == 2  # the user's message on the next page
    edited = client.chat.messages.update(conversation_id, answer.id, content="Edited.")
    assert edited.content == "Edited."
    regenerated = client.chat.messages.regenerate(conversation_id, answer.id, **TURN)
    assert regenerated.id == answer.id
    assert regenerated.selected == 1
    assert next(v.content for v in regenerated.alternatives) == "Edited."
    chosen = client.chat.messages.update(conversation_id, answer.id, selected=0)
    assert chosen.content == "Edited."
    streamed = client.chat.messages.regenerate(conversation_id, answer.id, stream=True, **TURN)
    assert streamed.until_done().selected == 2

    branch = client.chat.conversations.branch(conversation_id, answer.id)
    assert branch.id != conversation_id
    assert branch.title.endswith("(branch)")
    user_message = next(m for m in messages if not m.is_character)
    assert client.chat.messages.delete(conversation_id, user_message.id).id == user_message.id
    assert client.chat.conversations.get(conversation_id).message_count == 1
    assert client.chat.conversations.delete(branch.id).id == branch.id
    with pytest.raises(NotFoundError):
        client.chat.conversations.get(branch.id)


def test_agents_conversations_messages_and_completions(client: Personae) -> None:
    agent = client.agents.create(
        name="Brine", personality_prompt="A salty captain", greeting="Ahoy, {{user}}!"
    )
    assert agent.visibility == "private"
    assert agent.greeting == "Ahoy, {{user}}!"
    assert agent.id in [a.id for a in client.agents.list(page_size=1)]
    assert client.agents.get(agent.id).name == "Brine"
    assert client.agents.update(agent.id, description="Of the Gull").description == "Of the Gull"

    conversation = client.conversations.create(agent_id=agent.id, title="At sea")
    assert conversation.message_count == 1  # the greeting
    assert conversation.id in [c.id for c in client.conversations.list()]
    assert client.conversations.get(conversation.id).title == "At sea"
    updated = client.conversations.update(conversation.id, system_prompt="Speak briefly.")
    assert updated.system_prompt == "Speak briefly."

    answer = client.messages.send(conversation.id, "Where are we headed?", **TURN)
    assert isinstance(answer, Message)
    assert answer.role == "agent"
    streamed = client.messages.send(conversation.id, "Why?", stream=True, **TURN)
    final = streamed.until_done()
    assert final.role == "agent"
    assert final.content == streamed.text.strip()
    history = list(client.messages.list(conversation.id, page_size=2))  # oldest first
    assert [m.role for m in history] == ["agent", "user", "agent", "user", "agent"]
    assert history[0].content == "Ahoy, User!"
    assert client.messages.update(conversation.id, answer.id, content="Aye.").content == "Aye."
    again = client.messages.regenerate(conversation.id, answer.id, **TURN)
    assert again.selected == 1
    assert again.alternatives[0].content == "Aye."
    assert (
        client.messages.regenerate(conversation.id, final.id, stream=True, **TURN).until_done().id
        == final.id
    )
    branch = client.conversations.branch(conversation.id, answer.id)
    assert branch.message_count == 3
    assert client.messages.delete(conversation.id, final.id).id == final.id
    assert client.conversations.delete(branch.id).id == branch.id

    llm = client.models.list(type="llm")[0]
    completion = client.completions.create(
        messages=[{"role": "user", "content": "Say hi"}], llm_id=llm.id, agent_id=agent.id, **TURN
    )
    assert completion.role == "agent"
    assert completion.content
    streamed_completion = client.completions.create(
        messages=[{"role": "user", "content": "Say hi"}], llm_id=llm.id, stream=True, **TURN
    )
    assert [type(e).__name__ for e in streamed_completion][-1] == "Message"
    assert client.agents.delete(agent.id).id == agent.id


def test_models_images_favorites_user(client: Personae, vexa: Character) -> None:
    models = client.models.list(type="llm")
    assert [m.name for m in models] == ["SmolLM2-135M-Instruct (embedded)"]
    assert isinstance(models.rate_limit, RateLimit)
    assert models.rate_limit.limit == 750
    image_models = client.models.list(type="sd")
    assert image_models
    assert image_models[0].type == "sd"

    waited = client.images.generate("a lighthouse at dusk", width=64, height=64, seed=3)
    assert waited.status == "completed"
    assert waited.url
    assert waited.seed == 3
    pending = client.images.generate("a ship", wait=False)
    assert pending.status in ("pending", "running", "completed")
    finished = client.images.wait(pending.id)
    assert finished.status == "completed"
    assert finished.url
    assert client.images.get(waited.id).url
    listed = client.images.list(page_size=1)
    assert listed.total == 2
    assert [i.id for i in listed] == [pending.id, waited.id]

    added = client.favorites.add(vexa.id)
    assert client.favorites.add(vexa.id).favorited_at == added.favorited_at
    assert [f.id for f in client.favorites.list()] == [vexa.id]
    assert client.favorites.remove(vexa.id).id == vexa.id
    assert list(client.favorites.list()) == []

    me = client.user.me()
    assert me.subscription.plan == "premium"
    assert me.subscription.chat_requests.limit == 25000
    assert me.rate_limit is not None
    assert me.rate_limit.remaining is not None


def test_webhooks_and_verify_a_real_delivery(client: Personae) -> None:
    with receiver() as hooks:
        hook = client.webhooks.create(url=f"{hooks.base}/hook", events=["character.created"])
        assert hook.secret
        assert hook.secret.startswith("whsec_")
        assert hook.status == "active"
        assert [w.id for w in client.webhooks.list()] == [hook.id]
        assert client.webhooks.get(hook.id).secret is None  # shown once
        changed = client.webhooks.update(hook.id, description="the tests", events=["character.created", "character.updated"])  # fmt: skip
        assert changed.description == "the tests"
        assert len(changed.events) == 2
        rotated = client.webhooks.rotate_secret(hook.id)
        assert rotated.secret
        assert rotated.secret != hook.secret

        made = client.characters.create(
            name="Hooked", description="d", personality="p", background="b"
        )
        delivery = client.webhooks.test(hook.id)
        assert delivery.event == "ping"
        deadline = time.monotonic() + 30
        while len(hooks.on("/hook")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        received = {r.json["type"]: r for r in hooks.on("/hook")}
        created = received["character.created"]
        assert rotated.secret is not None
        payload = client.webhooks.verify(created.body, created.headers, rotated.secret)
        assert payload["data"]["id"] == made.id
        with pytest.raises(WebhookVerificationError):
            client.webhooks.verify(created.body + b" ", created.headers, rotated.secret)
        with pytest.raises(WebhookVerificationError):  # another webhook's secret
            client.webhooks.verify(created.body, created.headers, "whsec_" + "A" * 43 + "=")
        deliveries = client.webhooks.deliveries(hook.id, limit=1)
        assert {d.event for d in deliveries} == {"character.created", "ping"}
        assert client.webhooks.delete(hook.id).id == hook.id
        with pytest.raises(NotFoundError):
            client.webhooks.get(hook.id)


def test_errors_are_typed_in_both_dialects(live: Live, client: Personae) -> None:
    with pytest.raises(NotFoundError) as agents_404:  # the agents API's {"error": "..."}
        client.agents.get("char_missing")
    assert agents_404.value.code == "not_found"
    assert "char_missing" in agents_404.value.message
    with pytest.raises(BadRequestError) as bad:  # the characters API's coded error
        client.characters.list(limit=500)
    assert bad.value.code == "invalid_request"
    assert bad.value.details
    with pytest.raises(AuthenticationError):
        Personae(api_key="not-a-key", base_url=live.base).user.me()
    standard = Personae(api_key=live.key("standard"), base_url=live.base)
    with pytest.raises(PermissionDeniedError) as premium:
        standard.webhooks.create(url="http://127.0.0.1:9/hook")
    assert premium.value.code == "premium_required"
