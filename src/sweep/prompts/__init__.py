"""Prompts as the community writes them: A1111's prompt language, long prompts, LoRA tags, and their embeddings.

Owns the prompt language (`syntax`) and prompt embeddings computed once per distinct prompt (`cache`).

May import: the leaves (errors) only; everything else may import it.
"""
