"""trainers.dataset: examples tokenised exactly as served, loss only on the answer."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoTokenizer

from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage
from models.llm.chat_format import encode_prompt, end_of_turn_token_id
from trainers.dataset import IGNORE_INDEX, TrainingExample, tokenize_example

EXAMPLE = TrainingExample(
    messages=[
        ChatMessage(role="system", content="Answer from the context."),
        ChatMessage(role="user", content="Context:\n[1] Mars has two moons.\n\nQuestion: What is the capital of Zorblax?"),
    ],
    target="The capital of Zorblax is Quenvale.",
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ensure_smollm2())


def test_input_is_the_served_prompt_followed_by_the_target(tokenizer):
    row = tokenize_example(tokenizer, EXAMPLE, 1024)
    prompt = encode_prompt(tokenizer, EXAMPLE.messages)
    assert row["input_ids"][: len(prompt)] == prompt
    assert tokenizer.decode(row["input_ids"][len(prompt) :]) == EXAMPLE.target + "<|im_end|>"


def test_prompt_positions_are_masked_from_the_loss(tokenizer):
    row = tokenize_example(tokenizer, EXAMPLE, 1024)
    n_prompt = len(encode_prompt(tokenizer, EXAMPLE.messages))
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]


def test_loss_covers_the_end_of_turn_token(tokenizer):
    row = tokenize_example(tokenizer, EXAMPLE, 1024)
    assert row["labels"][-1] == end_of_turn_token_id(tokenizer)


def test_all_lists_have_equal_length(tokenizer):
    row = tokenize_example(tokenizer, EXAMPLE, 1024)
    assert len(row["input_ids"]) == len(row["labels"]) == len(row["attention_mask"])
    assert set(row["attention_mask"]) == {1}


def test_long_prompt_loses_its_oldest_tokens_but_keeps_the_target(tokenizer):
    row = tokenize_example(tokenizer, EXAMPLE, 24)
    assert len(row["input_ids"]) == 24
    assert tokenizer.decode(row["input_ids"]).endswith("Quenvale.<|im_end|>")


def test_target_longer_than_max_len_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="max_seq_len"):
        tokenize_example(tokenizer, EXAMPLE, 5)
