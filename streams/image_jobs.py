"""Accept a text-to-image job: check it, write its row with its `images.generate` event, say where its image will be.

One function for every entry point (the HTTP API and the agent's image tool), so both refuse the
same way: `ImageGenerationOff` when no checkpoint is configured, ValueError naming the limit when
the request is beyond the bounds (the API answers 422 with it, the tool says it in the answer).
The event goes out through the transactional outbox: the caller may `send` it at once, and the
relay delivers it otherwise.
"""

from __future__ import annotations

from models.image_generator import OFF_MESSAGE, ImageGenerationOff, check_request
from models.image_jobs import ImageJobStore
from schemas.events import Event, ImageGenerate, TraceContext, new_id
from schemas.outbox_store import Aggregate, outbox_entry
from schemas.settings import Settings
from schemas.tables import ImageGenerationRecord, OutboxRecord
from streams.outbox_relay import check_size


def job_path(job_id: str) -> str:
    """Where the gateway serves a job to its tenant: the source of the image it generates."""
    return f"/v1/images/generations/{job_id}"


def image_path(job_id: str) -> str:
    """Where the gateway serves a job's image to its tenant (a path; the API makes it absolute)."""
    return f"{job_path(job_id)}/content"


class OutboxEntries:
    """Outbox rows, sized like the runtime's `Outbox.entry`, where no runtime is at hand (the agent's tool, the
    images worker's follow-up document): committed with their row, then published by the process's relay."""

    def __init__(self, settings: Settings) -> None:
        self.scope, self.max_message_bytes = settings.broker.topic_prefix, settings.broker.max_message_bytes

    def entry(self, event: Event, *, aggregate: Aggregate, aggregate_id: str, hint: str = "") -> OutboxRecord:
        row = outbox_entry(event, aggregate=aggregate, aggregate_id=aggregate_id, scope=self.scope)
        check_size(row.payload, self.max_message_bytes, hint)
        return row


def submit_image_job(jobs: ImageJobStore, settings: Settings, *, tenant: str, prompt: str, size: str | None = None,
                     steps: int | None = None, seed: int | None = None,
                     trace: TraceContext | None = None) -> tuple[ImageGenerationRecord, OutboxRecord]:
    """The accepted job and its outbox entry (already committed with it)."""
    if settings.image_gen.checkpoint is None:
        raise ImageGenerationOff(OFF_MESSAGE)
    checked = check_request(prompt, settings.image_gen, size=size, steps=steps, seed=seed)
    job_id = new_id()
    event = ImageGenerate(tenant=tenant, task_id=job_id, prompt=checked.prompt, width=checked.width, height=checked.height,
                          steps=checked.steps, seed=checked.seed, trace=trace or TraceContext())
    outbox = OutboxEntries(settings)
    entry = outbox.entry(event, aggregate="image", aggregate_id=job_id)
    job = ImageGenerationRecord(id=job_id, tenant=tenant, prompt=checked.prompt, width=checked.width, height=checked.height,
                                steps=checked.steps, seed=checked.seed)
    jobs.create(job, outbox=[entry])
    return job, entry
