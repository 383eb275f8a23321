"""A tiny random-weight Stable Diffusion pipeline, built offline from diffusers' and transformers' own configs.

No diffusion weights can be downloaded here, so tests save this pipeline to a folder and load it
through `models.image_generator.load_image_generator`, the path users point at an SD-Turbo
snapshot. The CLIP tokenizer is built from the BPE vocabulary that open_clip ships in its wheel
(the same 49,408 ids as OpenAI's CLIP tokenizer). Two steps at 64x64 take well under a second.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def _clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """vocab.json and merges.txt in OpenAI CLIP's layout, from open_clip's `bpe_simple_vocab_16e6.txt.gz`."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as bpe:
        merges = bpe.read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(merge.split()) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def build_tiny_pipeline(folder: Path) -> Path:
    """Save a random-weight StableDiffusionPipeline (UNet ~1M, VAE ~0.7M, text encoder ~1.6M parameters) to `folder`."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, norm_num_groups=2)
    vae = AutoencoderKL(block_out_channels=(4, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=2)
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, hidden_size=32, intermediate_size=37,
                                                layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
                                                vocab_size=49408, max_position_embeddings=77))
    vocab, merges = _clip_tokenizer_files(folder / "_bpe")
    tokenizer = CLIPTokenizer(vocab=str(vocab), merges=str(merges), model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    target = folder / "tiny-sd"
    pipeline.save_pretrained(target)
    return target
