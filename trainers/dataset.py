"""Training examples and their tokenisation, in the exact prompt format the engines serve.

An example is the conversation the model saw (system + user with retrieved context and the
question) and the answer it should have given. Loss falls only on the answer and the
end-of-turn token, so the adapter learns what to say and when to stop, not to echo prompts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.llm.base import ChatMessage
from models.llm.chat_format import encode_prompt, end_of_turn_token_id

IGNORE_INDEX = -100  # label value that torch's cross-entropy skips


class TrainingExample(BaseModel):
    """A prompt (as served) and the target answer text."""

    messages: list[ChatMessage] = Field(min_length=1)
    target: str = Field(min_length=1)


def tokenize_example(tokenizer: Any, ex: TrainingExample, max_len: int) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` (prompt positions masked) for one example.

    Over-long prompts lose tokens from the left (oldest context first) so the question and the
    full target always survive; a target that alone exceeds ``max_len`` is an error.
    """
    prompt = encode_prompt(tokenizer, ex.messages)
    target = tokenizer(ex.target, add_special_tokens=False)["input_ids"]
    target = [*target, end_of_turn_token_id(tokenizer)]
    if len(target) >= max_len:
        raise ValueError(
            f"target of {len(target)} tokens does not fit max_seq_len={max_len}; "
            "shorten the answer or raise max_seq_len in the recipe"
        )
    prompt = prompt[-(max_len - len(target)) :]
    input_ids = prompt + target
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt) + target,
    }
