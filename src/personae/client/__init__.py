"""The Python client of the Personae API: `pip install 'personae[client]'`.

```python
from personae.client import Personae

client = Personae()  # PERSONAE_API_KEY, PERSONAE_BASE_URL
character = client.characters.create(name="Vexa", description="A courier",
                                     personality="Defiant", background="The slums")
answer = client.chat.send(character.id, "Who are you?")
```

It needs only httpx and pydantic: nothing of the server is imported. docs/sdk-python.md
is the guide.
"""

from personae.client._client import AsyncPersonae, Personae
from personae.client._response import ObjectList, RateLimit, ResponseInfo
from personae.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PersonaeError,
    RateLimitError,
    WebhookVerificationError,
)
from personae.client.pagination import AsyncPage, SyncPage
from personae.client.resources import verify as verify_webhook
from personae.client.streaming import AsyncStream, Stream
from personae.client.types import Delta

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncPersonae",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Delta",
    "InternalServerError",
    "NotFoundError",
    "ObjectList",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Personae",
    "PersonaeError",
    "RateLimit",
    "RateLimitError",
    "ResponseInfo",
    "Stream",
    "SyncPage",
    "WebhookVerificationError",
    "verify_webhook",
]
