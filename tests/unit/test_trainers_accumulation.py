"""trainers.lora_common.accumulated_step: micro-batches bound memory without changing the step.

A batch of 8 RAG-shaped prompts in one pass held ~19 GB and was killed for memory during the learning
benchmark; splitting it must give the gradients and losses of the single pass, or training changes.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from trainers.dataset import IGNORE_INDEX
from trainers.lora_common import accumulated_step, collate, row_means, token_losses


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).float()


def rows() -> list[dict[str, list[int]]]:
    """Rows of different lengths, prompt tokens masked out of the loss, as tokenize_example makes them."""
    made = []
    for n, (length, prompt) in enumerate([(9, 5), (14, 6), (6, 2), (11, 8), (13, 4)]):
        ids = [(7 * n + 3 * i) % 64 for i in range(length)]
        made.append({"input_ids": ids, "attention_mask": [1] * length, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return made


def gradients(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("micro", [1, 2, 3])
def test_micro_batches_give_the_single_pass_gradients_and_losses(micro: int) -> None:
    whole = tiny_model()
    batch = collate(rows(), pad_id=0)
    output = whole(**batch)
    output.loss.backward()
    expected_rows = row_means(token_losses(output.logits.detach(), batch["labels"]), batch["labels"])

    split = tiny_model()
    loss, per_row = accumulated_step(split, rows(), pad_id=0, micro_batch_size=micro)

    assert loss == pytest.approx(float(output.loss), rel=1e-5)
    assert per_row == pytest.approx(expected_rows, rel=1e-5)
    for got, want in zip(gradients(split), gradients(whole), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
