"""The JSON body of an error answer, in the shape its client reads.

OpenAI clients read `error.message` (on `/v1/chat/completions`); everything else gets FastAPI's
usual `detail`. The app's HTTPException handler and the body-limit middleware (which answers
before the app runs) both build their bodies here, so the two shapes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

OPENAI_PATH = "/v1/chat/completions"


def error_body(path: str, status: int, detail: Any) -> dict[str, Any]:
    if path.startswith(OPENAI_PATH):
        return {"error": {"message": str(detail), "type": "invalid_request_error", "code": status}}
    return {"detail": detail}
