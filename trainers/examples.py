"""What a tenant's next adapter learns from: that tenant's corrections (refused and folded as
`trainers/folding.py` says) and, to keep what worked, that tenant's up-voted answers — split into
rehearsal (trained on) and guard (held out for the gate). Nothing of another tenant's ever enters,
so one tenant's correction never becomes another tenant's answer.

Requests asked with principals are never trained on: their prompts may hold restricted passages.
"""

from __future__ import annotations

from pydantic import BaseModel

from models.llm.base import ChatMessage
from schemas.tables import TaskRecord
from trainers.dataset import TrainingExample
from trainers.feedback_store import FeedbackStore
from trainers.folding import Correction, Dropped, fold


class TenantExamples(BaseModel):
    corrections: list[TrainingExample]
    rehearsal: list[TrainingExample]
    guard: list[TrainingExample]
    dropped: list[Dropped] = []
    untrainable: int = 0  # corrections of requests asked with principals


def served_prompt(task: TaskRecord) -> list[ChatMessage] | None:
    """The prompt the model saw for this task, as recorded with its result."""
    turns = task.result.response.prompt if task.result else []
    return [ChatMessage(role=t.role, content=t.content) for t in turns] or None


def trainable(task: TaskRecord) -> bool:
    return not task.request.get("principals")


def tenant_corrections(store: FeedbackStore, tenant: str, *, unclaimed: bool = False) -> tuple[list[Correction], dict[str, list[ChatMessage]], int]:
    """The tenant's trainable corrections (oldest first), the prompt each corrects, and how many were untrainable."""
    corrections: list[Correction] = []
    prompts: dict[str, list[ChatMessage]] = {}
    untrainable = 0
    for feedback, task in store.corrections_with_tasks(tenant, unclaimed=unclaimed):
        prompt = served_prompt(task)
        if not trainable(task) or prompt is None:
            untrainable += 1
            continue
        corrections.append(Correction(id=feedback.id, question=prompt[-1].content, text=feedback.correction or ""))
        prompts[feedback.id] = prompt
    return corrections, prompts, untrainable


def choose_examples(store: FeedbackStore, tenant: str, *, rehearsal_n: int, guard_n: int, fold_similarity: float,
                    max_correction_chars: int) -> TenantExamples:
    """Every correction the tenant gave so far (an adapter is trained from the base model, so it must relearn the older
    facts too), folded, plus its latest up-voted answers: the newest `guard_n` held out, the next `rehearsal_n` rehearsed."""
    corrections, prompts, untrainable = tenant_corrections(store, tenant)
    kept, dropped = fold(corrections, similarity=fold_similarity, max_chars=max_correction_chars)
    liked = [TrainingExample(messages=prompt, target=task.result.answer)
             for task in store.approved_tasks(4 * (guard_n + rehearsal_n), tenant)  # room for the ones left out below
             if trainable(task) and (prompt := served_prompt(task)) and task.result and task.result.answer]
    return TenantExamples(corrections=[TrainingExample(messages=prompts[c.id], target=c.text) for c in kept],
                          rehearsal=liked[guard_n:guard_n + rehearsal_n], guard=liked[:guard_n], dropped=dropped, untrainable=untrainable)
