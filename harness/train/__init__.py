"""Training inside a suite: a ``train:`` section becomes trained rerankers that are then measured like any other.

One concern per module: ``data`` (labeled pairs, dev split by query, held-out check, sampling), ``plan`` (one job
per (model, backend): data files, trainer, settings), ``worker`` (``python -m harness.train.worker``: one
training in its own process), and the PyTorch baselines that train with the MLX trainers' settings:
``torch_common`` (settings, dev selection, losses), ``torch_encoder`` (sentence-transformers cross-encoders) and
``torch_llm`` (transformers + peft LLM rerankers). Nothing is imported here: the measuring parent loads only
what it uses.
"""
