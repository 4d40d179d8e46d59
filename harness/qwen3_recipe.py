"""The official Qwen3-Reranker recipe (model card, transformers usage), as a reusable PyTorch reference.

What the model card does, step by step:

* ``tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")``,
  ``model = AutoModelForCausalLM.from_pretrained(path).eval()``;
* ``token_false_id = convert_tokens_to_ids("no")``, ``token_true_id = convert_tokens_to_ids("yes")``;
* ``prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)``, likewise ``suffix_tokens``;
* the body ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}`` is tokenized on its own with
  ``truncation="longest_first"`` and ``max_length = max_length - len(prefix_tokens) - len(suffix_tokens)``,
  which keeps the body's first tokens (cuts the document's end);
* ids = ``prefix_tokens + body + suffix_tokens``, ``tokenizer.pad(..., padding=True)`` (left padding, with the
  attention mask);
* ``logits[:, -1, :]`` -> ``[no, yes]`` -> ``log_softmax`` -> ``exp`` of the "yes" column.

One deliberate deviation: the body is tokenized with ``add_special_tokens=False``. The model card calls the
tokenizer with its default, which for Qwen's tokenizer adds nothing, so this is the same for Qwen3-Reranker; for a
tokenizer that adds a BOS it keeps the BOS from landing in the middle of the prompt.

Other yes/no rerankers: pass ``prefix``/``body``/``suffix``/``yes``/``no`` (or a ``template`` object that has
those attributes). GGUF checkpoints: ``path`` is the folder and ``gguf_file`` the file name; transformers then
dequantizes the weights to ``dtype``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


class Qwen3RerankerTorch:
    """Args: path (model folder or Hub id), instruction (None: the default), max_length (tokens per pair,
    template included), device ("cpu", "cuda", "mps"), dtype (torch dtype or "float32"/"bfloat16"/"float16"),
    gguf_file (file name inside ``path``), tokenizer (a transformers tokenizer or a folder to load one from,
    instead of ``path``'s), template or prefix/body/suffix/yes/no (another prompt)."""

    def __init__(
        self,
        path: str | os.PathLike,
        instruction: str | None = None,
        max_length: int = 8192,
        device: str = "cpu",
        dtype: Any = "float32",
        gguf_file: str | None = None,
        *,
        tokenizer: Any = None,
        template: Any = None,
        prefix: str | None = None,
        body: str | None = None,
        suffix: str | None = None,
        yes: str | None = None,
        no: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(dtype, str):
            dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.torch = torch
        self.device = device
        self.instruction = instruction if instruction is not None else DEFAULT_INSTRUCTION
        self.max_length = max_length
        self.prefix = prefix or getattr(template, "prefix", None) or PREFIX
        self.body = body or getattr(template, "body", None) or BODY
        self.suffix = suffix if suffix is not None else getattr(template, "suffix", SUFFIX)
        yes = yes or getattr(template, "yes", "yes")
        no = no or getattr(template, "no", "no")

        gguf = {"gguf_file": gguf_file} if gguf_file else {}
        if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
            source, kwargs = (path, gguf) if tokenizer is None else (tokenizer, {})
            tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left", **kwargs)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            raise ValueError(f"the tokenizer of {path} has no pad token; the recipe pads batches")
        self.tokenizer = tokenizer
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **gguf).to(device).eval()

        self.token_false_id = tokenizer.convert_tokens_to_ids(no)
        self.token_true_id = tokenizer.convert_tokens_to_ids(yes)
        self.prefix_tokens = tokenizer.encode(self.prefix, add_special_tokens=False)
        self.suffix_tokens = tokenizer.encode(self.suffix, add_special_tokens=False)
        if max_length <= len(self.prefix_tokens) + len(self.suffix_tokens):
            raise ValueError(f"max_length {max_length} leaves no room for the body")

    def format_instruction(self, query: str, doc: str) -> str:
        return self.body.format(instruction=self.instruction, query=query, doc=doc)

    def input_ids(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Token ids of each pair as the recipe feeds them (before padding)."""
        inputs = self.tokenizer(
            [self.format_instruction(q, d) for q, d in pairs],
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
            add_special_tokens=False,
        )
        return [self.prefix_tokens + ids + self.suffix_tokens for ids in inputs["input_ids"]]

    def process_inputs(self, pairs: Sequence[tuple[str, str]]):
        with warnings.catch_warnings():  # the model card passes max_length with padding=True; transformers warns
            warnings.filterwarnings("ignore", message="`max_length` is ignored")
            inputs = self.tokenizer.pad(
                {"input_ids": self.input_ids(pairs)}, padding=True, return_tensors="pt", max_length=self.max_length
            )
        return {key: value.to(self.device) for key, value in inputs.items()}

    def compute_logits(self, inputs) -> list[float]:
        with self.torch.no_grad():
            batch_scores = self.model(**inputs).logits[:, -1, :]
            true_vector = batch_scores[:, self.token_true_id]
            false_vector = batch_scores[:, self.token_false_id]
            batch_scores = self.torch.stack([false_vector, true_vector], dim=1)
            batch_scores = self.torch.nn.functional.log_softmax(batch_scores.float(), dim=1)
            return batch_scores[:, 1].exp().tolist()

    def last_logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``(n, 2)`` float32 [no, yes] logits at the last position (one batch)."""
        with self.torch.no_grad():
            logits = self.model(**self.process_inputs(pairs)).logits[:, -1, :]
            both = self.torch.stack([logits[:, self.token_false_id], logits[:, self.token_true_id]], dim=1)
        return both.float().cpu().numpy()

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> np.ndarray:
        """P(yes) per pair, in input order, batches in input order (as the model card)."""
        pairs = [tuple(p) for p in pairs]
        scores: list[float] = []
        for start in range(0, len(pairs), batch_size):
            scores += self.compute_logits(self.process_inputs(pairs[start : start + batch_size]))
        return np.asarray(scores, dtype=np.float32)

    def token_counts(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids(pairs)], dtype=np.int64)
