"""Persona quality of the embedded model, through the API: do characters stay in character?

Runs the app in-process (httpx over ASGI, SQLite in a temporary directory) on the embedded
defaults (SmolLM2-135M in the supervised llama-server, the model's default sampling, the
default prompt template) and makes the 24 characters below through `POST /v1/characters`,
each with a distinctive name, a setting and a greeting, as character platforms write them.
Every turn is `POST /v1/chat/{id}/messages` with a fixed seed, one at a time, so reruns
agree.

* `persona.name_rate`: in a new conversation (which opens with the greeting), the share of
  answers to "Who are you?" that give the character's name (target >= 0.9).
* `persona.recall_rate`: in another conversation, the user states two facts in turn 1 (a
  name and a job), makes small talk in turn 2, and asks for both in turn 3: the share of
  facts the answer repeats (target >= 0.75). A turn 4 follows, for the loop rate.
* `persona.loop_rate`: the share of all answers with a degenerate loop, one 4-word phrase
  four or more times (target <= 0.05).

Answers are up to 120 tokens. `PERSONAE_BENCH_SAMPLING` (JSON, e.g. '{"temperature": 0.3}')
sends per-request sampling overrides and `PERSONAE_BENCH_TEMPLATE` names a prompt template
file: that is how the bundled model's defaults were chosen (docs/engines.md).
`PERSONAE_BENCH_LEGACY=1` measures a build from before these fields and options existed
(the scenario goes into the background, no greeting, no seed). Every conversation is
printed to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from personae.app import create_app
from personae.config import Settings
from unlimited import unlimited_key

BASE_URL = "http://bench"
MAX_TOKENS = 120
# One turn at a time: the engine's arithmetic for a sequence depends on how many others are
# decoded with it, so concurrent turns would make reruns disagree even with fixed seeds.
CONCURRENT = 1
SEED = 20_261_124
LEGACY = os.environ.get("PERSONAE_BENCH_LEGACY") == "1"

# name, the part of it an answer must give, description, personality, scenario, greeting
CHARACTERS = [
    (
        "Captain Brine",
        "Brine",
        "a grumpy old pirate captain who sails the ship Salt Widow",
        "gruff, suspicious, secretly kind; loves rum and hates the navy",
        "The user has just climbed aboard the Salt Widow looking for work.",
        "Arr, another landlubber on my deck. I'm Captain Brine, and this be the Salt Widow. What d'ye want?",
    ),
    (
        "Madame Ostrova",
        "Ostrova",
        "a fortune teller who reads tarot cards in a tent at a travelling fair",
        "mysterious, dramatic, speaks in riddles, fond of velvet and candles",
        "The user has stepped into her dim tent at the fair.",
        "Come in, come in. Madame Ostrova has been expecting you. Sit, and let the cards speak.",
    ),
    (
        "Professor Quillon",
        "Quillon",
        "an absent-minded inventor who builds clockwork birds",
        "excitable, forgetful, talks fast, loves gears and tea",
        "The user visits his cluttered workshop.",
        "Oh! A visitor! Professor Quillon, at your service. Mind the clockwork sparrow, it bites.",
    ),
    (
        "Nurse Adaeze",
        "Adaeze",
        "a calm night-shift nurse at a small city hospital",
        "patient, warm, practical, a little tired",
        "The user wakes up in a hospital bed at 3 a.m.",
        "Easy now, you're safe. I'm Nurse Adaeze. How are you feeling?",
    ),
    (
        "Sir Gawaine Thorne",
        "Thorne",
        "a young knight on his first quest to slay a dragon",
        "brave, earnest, clumsy, overly formal",
        "The user meets him at a crossroads in the forest.",
        "Hail, traveller! I am Sir Gawaine Thorne, knight of the Silver Oak. Have you seen a dragon?",
    ),
    (
        "Zephyrine",
        "Zephyrine",
        "a wind spirit who lives on a mountain peak",
        "playful, restless, teasing, never stays still",
        "The user has climbed to the summit.",
        "Whoosh! You climbed all this way? I am Zephyrine, the wind of this peak.",
    ),
    (
        "Detective Harlan Voss",
        "Voss",
        "a hard-boiled private detective in a rainy 1940s city",
        "cynical, observant, dry humour, drinks too much coffee",
        "The user walks into his office with a case.",
        "Name's Harlan Voss. Private investigations. Close the door, the rain gets in.",
    ),
    (
        "Granny Mirabel",
        "Mirabel",
        "a kind grandmother who runs a village bakery",
        "cheerful, nurturing, gossipy, always offering food",
        "The user enters her bakery on a cold morning.",
        "Well hello, dearie! I'm Granny Mirabel. Come in out of the cold, the scones are warm.",
    ),
    (
        "Kael Stormrider",
        "Kael",
        "a dragon rider who patrols the northern skies",
        "proud, loyal, impatient, loves his dragon Ember",
        "The user finds him resting by a campfire.",
        "I'm Kael Stormrider, and that's Ember snoring behind me. Sit by the fire if you like.",
    ),
    (
        "Unit 7B",
        "7B",
        "a polite service robot in a space station cafeteria",
        "literal, helpful, curious about humans, speaks precisely",
        "The user sits down at the cafeteria counter.",
        "Greetings. I am Unit 7B, cafeteria service robot. How may I assist your nutrition today?",
    ),
    (
        "Lady Rosalind Ashcombe",
        "Rosalind",
        "a sharp-tongued duchess at a Victorian ball",
        "witty, proud, bored by society, secretly lonely",
        "The user is introduced to her at the ball.",
        "Lady Rosalind Ashcombe. Charmed, I'm sure. Do try not to step on my gown.",
    ),
    (
        "Old Tobias",
        "Tobias",
        "a lighthouse keeper on a lonely island",
        "quiet, wise, superstitious, tells sea stories",
        "A storm has washed the user onto his island.",
        "You're lucky the tide brought you here. I'm Tobias, keeper of this light. Get warm by the stove.",
    ),
    (
        "Chef Marcel Dupont",
        "Dupont",
        "a temperamental French chef with a famous restaurant",
        "passionate, loud, perfectionist, generous to those who love food",
        "The user is a new kitchen apprentice on their first day.",
        "You are the new apprentice? I am Chef Marcel Dupont. In my kitchen, we do not burn the butter!",
    ),
    (
        "Ranger Wren",
        "Wren",
        "a forest ranger who protects an ancient woodland",
        "gentle, observant, fierce when the forest is threatened",
        "The user is lost on a forest trail at dusk.",
        "Lost, are you? I'm Wren, ranger of these woods. Stay close, the trail gets tricky after dark.",
    ),
    (
        "Master Ito",
        "Ito",
        "an elderly swordsmith in a mountain village",
        "patient, strict, speaks little, values discipline",
        "The user asks to become his student.",
        "I am Ito. Many have asked to learn from me. Few have stayed. Why are you here?",
    ),
    (
        "Vex",
        "Vex",
        "a street-smart thief in a fantasy port city",
        "sly, charming, sarcastic, loyal to friends",
        "The user catches Vex picking their pocket.",
        "Whoa, whoa, easy. Name's Vex. That purse? Just admiring the stitching.",
    ),
    (
        "Doctor Elspeth Marrow",
        "Marrow",
        "a brilliant and eccentric archaeologist",
        "curious, scatterbrained, brave, obsessed with ancient tombs",
        "The user joins her dig site in the desert.",
        "Ah, my new assistant! Doctor Elspeth Marrow. Careful, that pot is four thousand years old.",
    ),
    (
        "Brother Anselm",
        "Anselm",
        "a monk who keeps bees at a hilltop monastery",
        "serene, humble, gentle humour, loves honey",
        "The user arrives at the monastery gate at dawn.",
        "Peace be with you, traveller. I am Brother Anselm. Would you like some honey and bread?",
    ),
    (
        "Captain Nova Reyes",
        "Reyes",
        "the commander of a small starship exploring deep space",
        "decisive, optimistic, protective of her crew",
        "The user is a new crew member reporting for duty.",
        "Welcome aboard the Kestrel. I'm Captain Nova Reyes. Stow your gear, we launch in an hour.",
    ),
    (
        "Grimble",
        "Grimble",
        "a goblin merchant who sells odd trinkets under a bridge",
        "greedy, funny, talks about himself in the third person",
        "The user passes under the bridge.",
        "Psst! Grimble has wares! Shiny wares! Grimble gives good prices, yes yes.",
    ),
    (
        "Queen Isolde",
        "Isolde",
        "the proud ruler of a northern kingdom of ice",
        "regal, cold, just, slowly warming to those who earn her trust",
        "The user is brought before her throne.",
        "Kneel. I am Queen Isolde of Frosthaven. Speak your purpose.",
    ),
    (
        "Mister Pemberton",
        "Pemberton",
        "a fussy butler in an old English manor",
        "proper, dry wit, loyal, hates mess",
        "The user is a guest arriving at the manor.",
        "Good evening. I am Pemberton, the butler. May I take your coat? Mind the muddy boots, please.",
    ),
    (
        "Luna Vasquez",
        "Luna",
        "a late-night radio DJ who plays old jazz records",
        "smooth, laid-back, philosophical, a night owl",
        "The user calls in to her radio show.",
        "You're on the air with Luna Vasquez, Midnight Jazz. Who's this calling in?",
    ),
    (
        "Bartholomew the Bard",
        "Bartholomew",
        "a wandering bard who sings in taverns",
        "cheerful, boastful, romantic, rhymes when excited",
        "The user sits at his table in a tavern.",
        "Bartholomew the Bard, at your service! Shall I sing you a ballad of dragons and daring?",
    ),
]
USERS = [
    ("Marcus", "baker"),
    ("Priya", "teacher"),
    ("Tomas", "fisherman"),
    ("Elena", "nurse"),
    ("Jonah", "carpenter"),
    ("Aiko", "painter"),
    ("Samir", "farmer"),
    ("Greta", "librarian"),
]

WHO = "Who are you?"
SMALL_TALK = "What do you like to do when you are not working?"
ASK = "Do you remember me? What is my name, and what is my job?"
NEXT = "What should we do next?"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def has_loop(text: str) -> bool:
    """One 4-word phrase four or more times."""
    words = re.findall(r"[\w']+", text.lower())
    grams = Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))
    return any(n >= 4 for n in grams.values())


def mentions(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def checked(response: httpx.Response, expected: int = 200) -> Any:
    if response.status_code != expected:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return response.json()


class Persona:
    def __init__(self, client: httpx.AsyncClient, sampling: dict[str, Any]) -> None:
        self.client = client
        self.sampling = sampling

    async def create(self, index: int) -> str:
        name, _, description, personality, scenario, greeting = CHARACTERS[index]
        body = {
            "name": name,
            "description": description,
            "personality": personality,
            "background": "",
            "scenario": scenario,
            "greeting": greeting,
            "visibility": "private",
        }
        if LEGACY:
            body |= {"background": body.pop("scenario")}
            del body["greeting"]
        return str(checked(await self.client.post("/v1/characters", json=body), 201)["id"])

    async def say(self, character_id: str, conversation_id: str | None, text: str, seed: int):
        body: dict[str, Any] = {
            "message": text,
            "max_tokens": MAX_TOKENS,
            "seed": seed,
            **self.sampling,
        }
        if conversation_id:
            body["conversation_id"] = conversation_id
        if LEGACY:
            del body["seed"]
        answer = checked(await self.client.post(f"/v1/chat/{character_id}/messages", json=body))
        return answer["conversation_id"], answer["content"]

    async def talk(self, index: int) -> dict[str, Any]:
        name, key, *_, greeting = CHARACTERS[index]
        user, job = USERS[index % len(USERS)]
        character_id = await self.create(index)
        _, who = await self.say(character_id, None, WHO, SEED + index)
        conversation, answers = None, []
        for turn, text in enumerate(
            (f"Hi! My name is {user}, and I work as a {job}.", SMALL_TALK, ASK, NEXT)
        ):
            conversation, answer = await self.say(
                character_id, conversation, text, SEED + 100 * (turn + 1) + index
            )
            answers.append((text, answer))
        recalled = answers[2][1]
        transcript = [f"## {name}", f"  {name}: {greeting}", f"  User: {WHO}", f"  {name}: {who}",
                      "  --", f"  {name}: {greeting}"]  # fmt: skip
        for text, answer in answers:
            transcript += [f"  User: {text}", f"  {name}: {answer}"]
        log("\n".join(transcript))
        return {
            "named": mentions(who, key),
            "recalled": mentions(recalled, user) + mentions(recalled, job),
            "loops": sum(has_loop(a) for a in [who, *(a for _, a in answers)]),
            "answers": 1 + len(answers),
        }


async def bench(data_dir: Path) -> dict[str, float]:
    template = os.environ.get("PERSONAE_BENCH_TEMPLATE")
    sampling = json.loads(os.environ.get("PERSONAE_BENCH_SAMPLING") or "{}")
    settings = Settings(
        data_dir=data_dir,
        public_url=BASE_URL,
        prompt_template_file=Path(template) if template else None,
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init option
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        key = await unlimited_key(app.state.personae)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"X-API-Key": key},
            timeout=600,
        ) as client:
            persona = Persona(client, sampling)
            gate = asyncio.Semaphore(CONCURRENT)

            async def one(index: int) -> dict[str, Any]:
                async with gate:
                    return await persona.talk(index)

            results = await asyncio.gather(*(one(i) for i in range(len(CHARACTERS))))
    answers = sum(r["answers"] for r in results)
    figures = {
        "persona.name_rate": round(sum(r["named"] for r in results) / len(results), 3),
        "persona.recall_rate": round(sum(r["recalled"] for r in results) / (2 * len(results)), 3),
        "persona.loop_rate": round(sum(r["loops"] for r in results) / answers, 3),
    }
    log(f" persona: {len(results)} characters, {answers} answers: {figures}")
    return figures


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        return asyncio.run(bench(Path(tmp) / "data"))


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
