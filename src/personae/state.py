"""What the running app holds: settings, the database, the rate limiter, file storage."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from personae.config import Settings
from personae.conversation.prompt import PromptTemplate
from personae.db.session import create_engine, create_sessionmaker
from personae.engines.llm.registry import LLMEngines
from personae.image.storage import LocalStorage
from personae.ratelimit import RateLimiter


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    storage: LocalStorage
    llm_engines: LLMEngines
    prompt_template: PromptTemplate

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        engine = create_engine(settings)
        return cls(
            settings,
            engine,
            create_sessionmaker(engine),
            RateLimiter(settings.redis_url),
            LocalStorage(settings.data_dir / "files", settings.resolved_public_url),
            LLMEngines(),
            PromptTemplate.from_file(settings.prompt_template_file),
        )

    async def close(self) -> None:
        await self.llm_engines.close()
        await self.limiter.close()
        await self.engine.dispose()
