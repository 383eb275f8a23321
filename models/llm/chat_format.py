"""The one place that turns chat messages into the model's prompt.

Serving (engines) and training (``trainers.dataset``) both call these functions, so an adapter
is trained on exactly the token sequence it later sees. A drift between the two would silently
cost recall, which is why nothing else may call ``apply_chat_template``.
"""

from __future__ import annotations

from typing import Any

from models.llm.base import ChatMessage


def render_prompt(tokenizer: Any, messages: list[ChatMessage]) -> str:
    """Prompt text ending with the assistant header, ready for the answer to follow."""
    if not messages:
        raise ValueError("render_prompt needs at least one message")
    return tokenizer.apply_chat_template(
        [m.model_dump() for m in messages], tokenize=False, add_generation_prompt=True
    )


def encode_prompt(tokenizer: Any, messages: list[ChatMessage]) -> list[int]:
    """Token ids of :func:`render_prompt`; the template already carries the special tokens."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def end_of_turn_token_id(tokenizer: Any) -> int:
    """Id of the token that closes an assistant turn (``<|im_end|>`` for ChatML models).

    Training puts loss on it so the model learns to stop; engines treat it as end of answer.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token; cannot tell where an assistant turn ends")
    return int(tokenizer.eos_token_id)
