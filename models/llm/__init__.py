"""LLM engines behind one protocol: chat messages in, text (or text deltas) out."""

from models.llm.base import ChatMessage, Generation, GenerationParams, LLMEngine

__all__ = ["ChatMessage", "Generation", "GenerationParams", "LLMEngine"]
