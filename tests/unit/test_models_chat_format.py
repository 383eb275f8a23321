"""models.llm.chat_format: the single prompt format shared by serving and training."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoTokenizer

from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage
from models.llm.chat_format import encode_prompt, end_of_turn_token_id, render_prompt

MESSAGES = [
    ChatMessage(role="system", content="Answer from the context."),
    ChatMessage(role="user", content="Context:\n[1] Quenvale is a city.\n\nQuestion: What is Quenvale?"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ensure_smollm2())


def test_prompt_is_chatml_ending_with_the_assistant_header(tokenizer):
    assert render_prompt(tokenizer, MESSAGES) == (
        "<|im_start|>system\nAnswer from the context.<|im_end|>\n"
        "<|im_start|>user\nContext:\n[1] Quenvale is a city.\n\nQuestion: What is Quenvale?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_encoded_prompt_keeps_special_tokens_whole_and_adds_none(tokenizer):
    ids = encode_prompt(tokenizer, MESSAGES)
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[0] == im_start
    assert ids.count(im_start) == 3
    assert tokenizer.decode(ids) == render_prompt(tokenizer, MESSAGES)


def test_end_of_turn_is_im_end(tokenizer):
    assert tokenizer.convert_ids_to_tokens(end_of_turn_token_id(tokenizer)) == "<|im_end|>"


def test_empty_conversation_is_rejected(tokenizer):
    with pytest.raises(ValueError):
        render_prompt(tokenizer, [])
