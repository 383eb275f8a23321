"""The text-to-image jobs' rows: accepted with their event, settled by the `images` worker, read by their tenant.

A job is created with its `images.generate` outbox entry in one transaction (so an accepted job
is always announced), and settled once: `done` with the image's URI, or `failed` with why. A
redelivered event finds the job settled and does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import ImageGenerationRecord, OutboxRecord


class ImageJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job: ImageGenerationRecord, *, outbox: Sequence[OutboxRecord] = ()) -> None:
        with self.db.session() as s:
            s.add_all(outbox)
            s.add(job)
            s.commit()

    def get(self, job_id: str, tenant: str) -> ImageGenerationRecord | None:
        """The job if it belongs to `tenant`; another tenant's job is None, exactly like an unknown one."""
        with self.db.session() as s:
            job = s.get(ImageGenerationRecord, job_id)
        return job if job is not None and job.tenant == tenant else None

    def settle(self, job_id: str, *, status: str, image_uri: str | None = None, document_id: str | None = None,
               error: str | None = None) -> bool:
        """Move a queued job to `done` or `failed`; False when it was settled already (a redelivery)."""
        with self.db.session() as s:
            job = s.get(ImageGenerationRecord, job_id)
            if job is None or job.status != "queued":
                return False
            job.status, job.image_uri, job.document_id, job.error, job.updated_at = status, image_uri, document_id, error, utcnow()
            s.add(job)
            s.commit()
        return True
