"""`GET /metrics`: the Prometheus exposition (observability/metrics.py), for a scraper.

Unauthenticated, like `/health`: it names routes, models and counts, never an account or a
key. Expose it to the monitoring network only (docs/operations.md);
`PERSONAE_METRICS_ENABLED=false` turns it off (404).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from personae.api.deps import SettingsDep
from personae.errors import NotFound
from personae.observability import metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape(settings: SettingsDep) -> Response:
    if not settings.metrics_enabled:
        raise NotFound("Not found: metrics are off (PERSONAE_METRICS_ENABLED)")
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
