"""Catalogue latency: `GET /v1/characters` over 100,000 characters, SQLite and PostgreSQL.

Seeds 100,000 characters (owned by 1,000 accounts, ~90% public, 2-6 tags each from a
Zipf-like vocabulary of 200 tags where a few are very common) with Core bulk inserts,
then times the catalogue in-process (httpx over ASGI, so no network) for each sort, with
and without a tag filter (one common tag, one rare-ish tag, two tags at once, in turn).

Pages by number: half of the requests read pages 1-5, a fifth pages 6-50, and the rest
(the deep reading, where the tail is) any page from the first to the last of that list,
drawn evenly. Pages by cursor: chains of five pages, each chain started from a page drawn
the same way (that first request is not timed), so cursors are read at every depth too.
Each list is read once before the timed requests (checking that a cursor reads on where a
page ends), so the count of a filter of several tags is already remembered, as it is in a
server after that filter's first request (the first costs one index-only count more:
docs/architecture.md, "Catalogue query plans"). Figures, in milliseconds of wall time per
request:

    catalogue.<sqlite|postgres>.<popular|trending|newest>[.tagged][.cursor].<p50_ms|p99_ms>

The target is a p99 under 20 ms everywhere; it is reported, not asserted.

PostgreSQL: a fresh database on the server of `PERSONAE_TEST_POSTGRES_URL` (default
`postgresql://postgres@127.0.0.1:5432/test`, as the tests), dropped at the end.
SQLite: a file in a temporary directory.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import delete, insert, text

from personae.account.service import AccountService
from personae.app import create_app
from personae.character.repository import EVERY_TAG, other_tags
from personae.config import Settings
from personae.models import Account, CatalogueCount, Character, CharacterActivity, CharacterTag
from personae.state import AppState
from pg_scratch import create_database, drop_database

SEED = 42
CHARACTERS = 100_000
ACCOUNTS = 1_000
BATCH = 5_000
PUBLIC_SHARE = 0.9
HISTORY = timedelta(days=730)

WARMUP = 20
REQUESTS = 200
LIMIT = 20
CHAIN = 5  # cursor pages read one after another from each starting page
SORTS = ("popular", "trending", "newest")
# The tagged variant cycles through: one common tag, one rare-ish tag, two tags at once.
COMMON_TAG = "male"
TWO_TAGS = "female,fantasy"
RARE_SHARE = 0.01  # the rare-ish tag is the one carried by closest to 1% of characters

# Tags with a fixed share of characters; "female" and "male" exclude each other.
GENDER = (("female", 0.45), ("male", 0.40))
THEMES = (("fantasy", 0.20), ("romance", 0.15))
# The rest, most common first, drawn with Zipf-like weights 1 / (rank + 6) ** 1.3.
ZIPF_TAGS = """
anime; adventure; drama; comedy; sci-fi; mystery; horror; slice of life; action; modern;
historical; supernatural; school; magic; villain; hero; royalty; vampire; elf; demon;
angel; werewolf; dragon; robot; android; cyberpunk; steampunk; post-apocalyptic;
dystopian; space; pirate; ninja; samurai; knight; wizard; witch; assassin; mercenary;
detective; doctor; teacher; student; maid; butler; chef; musician; artist; writer;
scientist; soldier; spy; thief; bounty hunter; princess; prince; queen; king; noble;
monster; ghost; zombie; mermaid; fairy; goblin; orc; dwarf; catgirl; kemonomimi; furry;
mecha; superhero; antihero; tsundere; yandere; kuudere; dandere; childhood friend; rivals;
enemies to lovers; slow burn; fluff; angst; comfort; wholesome; dark; gothic; cozy; funny;
sarcastic; shy; confident; flirty; stoic; cheerful; grumpy; mysterious; protective; loyal;
chaotic; nerdy; gamer; athlete; rockstar; idol; celebrity; ceo; office; roommate;
neighbor; mentor; companion; therapist; coach; boyfriend; girlfriend; best friend;
sibling; rpg; dungeon master; text adventure; simulator; game; quiz; language tutor;
mythology; greek mythology; norse mythology; japanese folklore; medieval; victorian;
wild west; noir; 1920s; 1980s; futuristic; alien; time travel; isekai; reincarnation;
survival; military; police; hospital; college; magic academy; kingdom; empire; village;
forest; ocean; desert; mountain; winter; halloween; christmas; cooking; music; books;
poetry; philosophy; science; hacker; ai; virtual reality; video games; sports;
martial arts; fitness; travel; nature; animals; cat; dog; fox; wolf; gardening; fashion;
dance; theatre; movies; fanfiction; parody; satire; politics; non-binary; monster hunter;
necromancer; paladin; bard; druid; alchemist; oracle; gladiator; viking; cowboy; sheriff
"""


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = words(
    "Aria Kai Luna Ren Mira Dante Sera Theo Yuki Nova Ezra Lyra Jin Iris Cassian Hana Rowan "
    "Selene Akira Vera Orion Nia Felix Ayla Silas Mei Lucien Zara Kael Elena Hiro Freya Rafe "
    "Sakura Alaric Tess Ivan Noor Caspian Lena Marcus Suki Damien Ophelia Ryu Elio Astrid "
    "Vale"
)
LAST = words(
    "Blackwood Ashford Moreau Tanaka Everhart Nightshade Vance Sterling Kuroda Winters "
    "Valentine Crowe Hale Ravencroft Okabe Lindqvist Marlowe Sinclair Draven Song Ito"
)
ROLES = (
    "wandering knight",
    "retired assassin",
    "shy librarian",
    "starship engineer",
    "cursed prince",
    "street musician",
    "forest witch",
    "detective",
    "dragon tamer",
    "barista",
    "rival student",
    "court mage",
    "android companion",
    "pirate captain",
    "vampire noble",
    "ghost",
)
PLACES = (
    "a floating city",
    "the northern kingdoms",
    "Neo-Tokyo",
    "a quiet seaside town",
    "the royal academy",
    "a derelict space station",
    "the enchanted forest",
    "a rainy metropolis",
)
HOOKS = (
    "is hiding a secret that could change everything",
    "has been waiting for you for a very long time",
    "never backs down from a challenge",
    "wants to show you around",
    "owes you a favour and hates it",
    "is searching for a lost sibling",
    "just moved in next door",
    "speaks only in riddles when nervous",
)
TRAITS = words(
    "kind curious stubborn witty loyal sarcastic gentle proud reckless calm playful brooding "
    "cheerful secretive protective clumsy ambitious honest dramatic patient"
)
BACKGROUNDS = (
    "Raised by {a} in {p}, {n} learned early to trust no one.",
    "{n} spent years as a {r} before everything fell apart.",
    "Nobody in {p} remembers where {n} came from.",
    "After the war, {n} swore never to pick up a sword again.",
    "{n} keeps a journal of every person they have ever met.",
    "A chance encounter in {p} set {n} on a path they never expected.",
)


@dataclass
class Seeded:
    public: int = 0
    tag_counts: Counter[str] = field(default_factory=Counter)  # public characters per tag


def vocabulary() -> list[str]:
    tags = [t.strip() for t in ZIPF_TAGS.replace("\n", " ").split(";")]
    fixed = {t for t, _ in GENDER + THEMES}
    assert len(tags) == len(set(tags)), "duplicate tag"
    assert not fixed & set(tags), "a fixed-share tag in the Zipf list"
    return tags


def heavy_tail(rng: random.Random, alpha: float, scale: float, cap: int) -> int:
    """0, 1, 2... with a Pareto tail: most small, a few very large."""
    return min(cap, int((rng.paretovariate(alpha) - 1.0) * scale))


def choose_tags(rng: random.Random, zipf: list[str], cum_weights: list[float]) -> list[str]:
    tags: list[str] = []
    r = rng.random()
    for tag, share in GENDER:
        if r < share:
            tags.append(tag)
            break
        r -= share
    tags += [tag for tag, share in THEMES if rng.random() < share]
    want = rng.randint(2, 6)
    while len(tags) < want:
        tag = rng.choices(zipf, cum_weights=cum_weights)[0]
        if tag not in tags:
            tags.append(tag)
    return tags


def character_rows(
    rng: random.Random, owners: list[str], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], Seeded]:
    """Rows of `characters`, `character_tags` and `character_activity`, and what was made."""
    zipf = vocabulary()
    cum_weights: list[float] = []
    total = 0.0
    for rank in range(len(zipf)):
        total += 1.0 / (rank + 6) ** 1.3
        cum_weights.append(total)
    # Some creators are prolific: owners drawn with weights 1 / (i + 1) ** 0.8.
    owner_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(owners))]
    today = now.date()
    ids: set[str] = set()
    chars: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    activity: list[dict[str, Any]] = []
    seeded = Seeded()
    owner_ids = rng.choices(owners, weights=owner_weights, k=CHARACTERS)
    for owner_id in owner_ids:
        cid = f"char_{rng.getrandbits(96):024x}"
        while cid in ids:
            cid = f"char_{rng.getrandbits(96):024x}"
        ids.add(cid)
        public = rng.random() < PUBLIC_SHARE
        visibility = "public" if public else "private"
        tags = choose_tags(rng, zipf, cum_weights)
        name = rng.choice(FIRST) + (f" {rng.choice(LAST)}" if rng.random() < 0.6 else "")
        role, place = rng.choice(ROLES), rng.choice(PLACES)
        # Growth: more characters were made recently than two years ago.
        created = now - HISTORY * rng.random() ** 1.5
        updated = created + (now - created) * rng.random() if rng.random() < 0.3 else created
        likes = heavy_tail(rng, 1.1, 3.0, 250_000) if public else 0
        chat_count = likes * rng.randint(2, 12) + heavy_tail(rng, 1.2, 4.0, 1_000_000)
        chats_7d = heavy_tail(rng, 1.3, 8.0, 50_000) + 1 if rng.random() < 0.25 else 0
        chars.append(
            {
                "id": cid,
                "owner_id": owner_id,
                "name": name,
                "description": (
                    f"A {rng.choice(TRAITS)} {role} from {place} who {rng.choice(HOOKS)}."
                ),
                "personality": ", ".join(rng.sample(TRAITS, rng.randint(3, 5))),
                "background": " ".join(
                    t.format(n=name, r=role, p=place, a=rng.choice(ROLES) + "s")
                    for t in rng.sample(BACKGROUNDS, rng.randint(1, 3))
                ),
                "appearance_prompt": (
                    f"{role}, {rng.choice(TRAITS)} expression, detailed"
                    if rng.random() < 0.5
                    else ""
                ),
                "age": None,
                "tags": tags,
                "sd_model_id": None,
                "image_key": None,
                "visibility": visibility,
                "created_at": created,
                "updated_at": updated,
                "likes_count": likes,
                "chat_count": chat_count,
                "followers_count": int(likes * rng.uniform(0.05, 0.5)),
                "chats_7d": chats_7d,
            }
        )
        # As the repository writes them: the character's sort keys copied onto each row.
        keys: dict[str, Any] = {
            "visibility": visibility,
            "created_at": created,
            "likes_count": likes,
            "chat_count": chat_count,
            "chats_7d": chats_7d,
        }
        tag_rows += [
            {"character_id": cid, "tag": t, "other_tags": other_tags(tags, t)} | keys for t in tags
        ]
        if chats_7d:
            # The daily bucket chats_7d was computed from, so the app's trending refresh
            # (run at start-up) recomputes the very same value.
            day: date = today - timedelta(days=rng.randint(0, 4))
            activity.append({"character_id": cid, "day": day, "chats": chats_7d})
        if public:
            seeded.public += 1
            seeded.tag_counts.update(tags)
    return chars, tag_rows, activity, seeded


async def bulk(session: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(table), rows[start : start + BATCH])


async def seed(state: AppState) -> tuple[str, Seeded]:
    """Seed the catalogue in one transaction; the API key of an enterprise account."""
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    owners = [
        {
            "id": f"user_{rng.getrandbits(96):024x}",
            "username": f"creator{i:04d}",
            "email": None,
            "plan_name": "free",
            "balance_micros": 0,
            "rate_limit_per_minute": None,
            "chat_requests_per_month": None,
            "created_at": now - HISTORY * rng.random(),
        }
        for i in range(ACCOUNTS)
    ]
    chars, tag_rows, activity, seeded = character_rows(rng, [o["id"] for o in owners], now)
    async with state.sessionmaker.begin() as session:
        await bulk(session, Account.__table__, owners)
        await bulk(session, Character.__table__, chars)
        await bulk(session, CharacterTag.__table__, tag_rows)
        await bulk(session, CharacterActivity.__table__, activity)
        # The counts the repository keeps, replacing the empty catalogue's the migration made.
        await session.execute(delete(CatalogueCount.__table__))
        counts = [{"tag": EVERY_TAG, "public_characters": seeded.public}]
        counts += [{"tag": t, "public_characters": n} for t, n in seeded.tag_counts.items()]
        await bulk(session, CatalogueCount.__table__, counts)
        service = AccountService(session)
        credentials = await service.create_account("bench", None, "enterprise", Decimal(0))
        await service.set_plan(credentials.account, "enterprise", rate_limit_per_minute=10_000_000)
    log(f"  rows: {len(chars)} characters ({seeded.public} public), {len(tag_rows)} tags")
    return credentials.plaintext, seeded


async def analyze(state: AppState) -> None:
    if state.engine.dialect.name == "postgresql":
        # VACUUM as well as ANALYZE: autovacuum would soon do it on a live server, and
        # index-only scans (the counts) need the visibility map it sets.
        autocommit = state.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with state.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))


def percentile_ms(cuts: list[float], p: int) -> float:
    return round(cuts[p - 1] * 1000, 2)


@dataclass(frozen=True)
class Listing:
    """One list of the catalogue: its tag filter (None: untagged) and how many pages it has."""

    tags: str | None
    pages: int

    def query(self, sort: str, **more: str | int) -> dict[str, str | int]:
        query: dict[str, str | int] = {"sort": sort, "limit": LIMIT, **more}
        return query | ({"tags": self.tags} if self.tags else {})


def draw_page(rng: random.Random, pages: int) -> int:
    """Mostly the first pages, as people read; a third anywhere, the last page included."""
    r = rng.random()
    if r < 0.5:
        return min(rng.randint(1, 5), pages)
    if r < 0.7:
        return min(rng.randint(6, 50), pages)
    return rng.randint(1, pages)


async def get(
    client: httpx.AsyncClient, query: dict[str, str | int]
) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one `GET /v1/characters`, and its body."""
    started = time.perf_counter()
    response = await client.get("/v1/characters", params=query)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(
            f"GET /v1/characters {query}: {response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return elapsed, body


async def measure_pages(
    client: httpx.AsyncClient, rng: random.Random, sort: str, listings: list[Listing]
) -> list[float]:
    """Wall seconds of each timed request by page number (after the warm-up ones)."""
    samples: list[float] = []
    for i in range(WARMUP + REQUESTS):
        listing = listings[i % len(listings)]
        elapsed, _ = await get(client, listing.query(sort, page=draw_page(rng, listing.pages)))
        samples.append(elapsed)
    return samples[WARMUP:]


async def measure_cursors(
    client: httpx.AsyncClient, rng: random.Random, sort: str, listings: list[Listing]
) -> list[float]:
    """Wall seconds of each timed request by cursor: chains of CHAIN pages, each from a
    page drawn as `draw_page` does (that request, which hands out the first cursor, is not
    timed)."""
    samples: list[float] = []
    chain = 0
    while len(samples) < WARMUP + REQUESTS:
        listing = listings[chain % len(listings)]
        chain += 1
        _, body = await get(client, listing.query(sort, page=draw_page(rng, listing.pages)))
        cursor = body["pagination"]["next_cursor"]
        for _ in range(CHAIN):
            if cursor is None:
                break
            elapsed, body = await get(client, listing.query(sort, cursor=cursor))
            samples.append(elapsed)
            cursor = body["pagination"]["next_cursor"]
    return samples[WARMUP : WARMUP + REQUESTS]


async def listing(client: httpx.AsyncClient, tags: str | None) -> Listing:
    """The list of `tags`, checked: by cursor, page 2 is what it is by number."""
    pages = 0
    for sort in SORTS:
        base = Listing(tags, 0)
        _, first = await get(client, base.query(sort))
        _, second = await get(client, base.query(sort, page=2))
        _, after = await get(client, base.query(sort, cursor=first["pagination"]["next_cursor"]))
        if [c["id"] for c in after["data"]] != [c["id"] for c in second["data"]]:
            raise RuntimeError(f"{sort} {tags}: the cursor after page 1 is not page 2")
        pages = first["pagination"]["pages"]
    return Listing(tags, pages)


async def bench_backend(backend: str, database_url: str | None, data_dir: Path) -> dict[str, float]:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        public_url="http://bench",
        trending_refresh_seconds=86_400,  # only the start-up refresh, never mid-measurement
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init option
    )
    app = create_app(settings)
    figures: dict[str, float] = {}
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        state: AppState = app.state.personae
        started = time.perf_counter()
        key, seeded = await seed(state)
        seeding = time.perf_counter() - started
        await analyze(state)
        analyzing = time.perf_counter() - started - seeding
        log(f"  seeded in {seeding:.1f} s, analyzed in {analyzing:.1f} s")

        target = CHARACTERS * RARE_SHARE
        rare = min(
            (t for t in seeded.tag_counts if t not in [*TWO_TAGS.split(","), COMMON_TAG]),
            key=lambda t: (abs(seeded.tag_counts[t] - target), t),
        )
        tag_sets = [COMMON_TAG, rare, TWO_TAGS]
        counts = ", ".join(f"{t}={seeded.tag_counts[t]}" for t in [*TWO_TAGS.split(","), rare])
        log(
            f"  tag filters: {tag_sets} (public characters: {COMMON_TAG}="
            f"{seeded.tag_counts[COMMON_TAG]}, {counts})"
        )

        transport = httpx.ASGITransport(app=app)
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            # Sanity: the catalogue sees exactly the public characters seeded.
            response = await client.get("/v1/characters", params={"limit": LIMIT})
            response.raise_for_status()
            total = response.json()["pagination"]["total"]
            if total != seeded.public:
                raise RuntimeError(f"catalogue total {total}, seeded {seeded.public} public")

            untagged = [await listing(client, None)]
            tagged = [await listing(client, tags) for tags in tag_sets]
            rng = random.Random(SEED)
            for sort in SORTS:
                for listings in (untagged, tagged):
                    for by, measure in (("", measure_pages), (".cursor", measure_cursors)):
                        samples = await measure(client, rng, sort, listings)
                        cuts = statistics.quantiles(samples, n=100, method="inclusive")
                        name = f"catalogue.{backend}.{sort}"
                        name += (".tagged" if listings is tagged else "") + by
                        figures[f"{name}.p50_ms"] = percentile_ms(cuts, 50)
                        figures[f"{name}.p99_ms"] = percentile_ms(cuts, 99)
                        log(
                            f"  {name}: p50 {figures[f'{name}.p50_ms']} ms, "
                            f"p99 {figures[f'{name}.p99_ms']} ms, "
                            f"max {max(samples) * 1000:.2f} ms"
                        )
    return figures


async def bench_sqlite() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        return await bench_backend("sqlite", None, Path(tmp) / "data")


async def bench_postgres() -> dict[str, float]:
    name, url = await create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
            return await bench_backend("postgres", url, Path(tmp) / "data")
    finally:
        await drop_database(name)


def log(message: str) -> None:
    print(f"#{message}", file=sys.stderr, flush=True)


def main() -> dict[str, float]:
    figures: dict[str, float] = {}
    for backend, bench in (("sqlite", bench_sqlite), ("postgres", bench_postgres)):
        log(f" catalogue on {backend}")
        figures.update(asyncio.run(bench()))
    return figures


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
