"""What both dialects do with image jobs inside a request: wait for one, make an avatar."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from personae.errors import EngineFailed
from personae.image.service import ImageOrder, ImageService, wait_for_image
from personae.models import Account, Character, Image
from personae.models.image import ImageStatus
from personae.state import AppState


async def finish_image(state: AppState, session: AsyncSession, image: Image) -> Image:
    """Commit the request's transaction (which queues the job), then wait for the image up
    to `image_wait_seconds`. A job that failed meanwhile is the engine's error (502)."""
    image_id = image.id
    await session.commit()
    done = await wait_for_image(
        state.sessionmaker, state.job_events, image_id, state.settings.image_wait_seconds
    )
    if done.status == ImageStatus.FAILED:
        raise EngineFailed(f"Image {image_id} failed: {done.error}", details={"id": image_id})
    return done


async def generate_avatar(
    state: AppState,
    session: AsyncSession,
    images: ImageService,
    account: Account,
    character: Character,
    sd_model_id: str,
) -> None:
    """Generate the character's avatar from its appearance (age included) and wait for it.
    The job sets the character's image; if the wait runs out, it appears later."""
    prompt = character.full_appearance_prompt or f"portrait of {character.name}"
    order = ImageOrder(prompt=prompt, sd_model_id=sd_model_id)
    avatar = await images.order(account, order, purpose="avatar", character_id=character.id)
    done = await finish_image(state, session, avatar)
    # The job wrote the row; reflect it without marking the character as changed here.
    set_committed_value(character, "image_key", done.image_key)
