"""HTTP routes grouped by resource; each module exposes `router(ctx) -> APIRouter`."""
