"""Text-to-image with diffusers: the loading and serving code users point at a real checkpoint.

`RAGLOOP_IMAGE_GEN_CHECKPOINT` names a local diffusers pipeline folder (an SD-Turbo snapshot, or
anything `DiffusionPipeline.from_pretrained` reads); nothing is ever downloaded, and without a
folder generation is off: `load_image_generator` raises `ImageGenerationOff` with the setting to
set, and every entry point (API, worker, agent tool) passes that message on. Requests are checked
against the bounds (`check_request`) before any work, so a prompt or size beyond them is a 422
naming the limit, never a GPU out-of-memory; `concurrency` bounds how many images one process
renders at once (the rest wait on a semaphore).

    generator = load_image_generator(settings.image_gen)
    png = generator.generate(check_request("a red bicycle", settings.image_gen))
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from schemas.settings_sections import ImageGenSettings

OFF_MESSAGE = ("image generation is off: set RAGLOOP_IMAGE_GEN_CHECKPOINT to a local diffusers text-to-image pipeline folder "
               "(e.g. an SD-Turbo snapshot) and run a worker of the `images` role")


class ImageGenerationOff(RuntimeError):
    """No checkpoint is configured (or it cannot be read): say which setting turns generation on."""


class ImageRequest(BaseModel):
    """One image to render, already within the configured bounds."""

    prompt: str = Field(min_length=1)
    width: int
    height: int
    steps: int
    seed: int | None = None


def parse_size(size: str | None, default: int) -> tuple[int, int]:
    """`"512x512"` → (512, 512); None → the default square. ValueError says the expected shape."""
    if size is None:
        return default, default
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"size must look like `512x512` (width x height in pixels), not {size!r}")
    return int(width), int(height)


def check_request(prompt: str, limits: ImageGenSettings, *, size: str | None = None, steps: int | None = None,
                  seed: int | None = None) -> ImageRequest:
    """The request, if it is within `limits`; ValueError naming the limit (and its setting) otherwise."""
    if not prompt.strip():
        raise ValueError("prompt is empty: say what the image should show")
    if len(prompt) > limits.max_prompt_chars:
        raise ValueError(f"prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars} (RAGLOOP_IMAGE_GEN_MAX_PROMPT_CHARS)")
    width, height = parse_size(size, limits.size)
    for name, value in (("width", width), ("height", height)):
        if value < 64 or value > limits.max_size or value % 8:
            raise ValueError(f"{name} {value} is out of bounds: a multiple of 8 from 64 to {limits.max_size} (RAGLOOP_IMAGE_GEN_MAX_SIZE)")
    chosen = limits.steps if steps is None else steps
    if chosen < 1 or chosen > limits.max_steps:
        raise ValueError(f"steps {chosen} is out of bounds: 1 to {limits.max_steps} (RAGLOOP_IMAGE_GEN_MAX_STEPS)")
    return ImageRequest(prompt=prompt, width=width, height=height, steps=chosen, seed=seed)


class ImageGenerator:
    """A loaded pipeline behind a semaphore: `generate` returns PNG bytes."""

    def __init__(self, pipeline: Any, *, concurrency: int = 1, guidance_scale: float = 0.0) -> None:
        self.pipeline = pipeline
        self.guidance_scale = guidance_scale
        self._slots = threading.BoundedSemaphore(concurrency)

    def generate(self, request: ImageRequest) -> bytes:
        import torch

        device = getattr(self.pipeline, "device", torch.device("cpu"))
        generator = torch.Generator(device=device).manual_seed(request.seed) if request.seed is not None else None
        with self._slots:
            output = self.pipeline(request.prompt, width=request.width, height=request.height, num_inference_steps=request.steps,
                                   guidance_scale=self.guidance_scale, generator=generator, output_type="pil")
        buffer = io.BytesIO()
        output.images[0].save(buffer, format="PNG")
        return buffer.getvalue()


def load_image_generator(settings: ImageGenSettings) -> ImageGenerator:
    """The pipeline in `settings.checkpoint`, loaded from local files only, on the GPU when there is one."""
    if settings.checkpoint is None:
        raise ImageGenerationOff(OFF_MESSAGE)
    folder = Path(settings.checkpoint).expanduser()
    if not (folder / "model_index.json").is_file():
        raise ImageGenerationOff(f"RAGLOOP_IMAGE_GEN_CHECKPOINT={folder} is not a diffusers pipeline folder (no model_index.json)")
    import torch
    from diffusers import DiffusionPipeline

    cuda = torch.cuda.is_available()
    pipeline = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True,
                                                 dtype=torch.float16 if cuda else torch.float32)
    pipeline = pipeline.to("cuda" if cuda else "cpu")
    pipeline.set_progress_bar_config(disable=True)
    return ImageGenerator(pipeline, concurrency=settings.concurrency, guidance_scale=settings.guidance_scale)
