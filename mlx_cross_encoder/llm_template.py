"""The prompt of an LLM yes/no reranker (:class:`RerankTemplate`) and the official Qwen3-Reranker one.

Plain Python (no MLX): the torch baseline and the trainers format prompts with the very same template.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

_BODY_FIELDS = {"instruction", "query", "doc"}


@dataclass(frozen=True)
class RerankTemplate:
    """The prompt of an LLM yes/no reranker: ``prefix + body.format(instruction, query, doc) + suffix``.

    ``body`` must contain ``{query}`` and ``{doc}`` and may contain ``{instruction}`` (filled with
    ``default_instruction`` unless one is passed). ``yes`` / ``no`` name the two answer tokens, each of which must
    be a single token of the tokenizer.
    """

    prefix: str
    body: str
    suffix: str
    yes: str = "yes"
    no: str = "no"
    default_instruction: str | None = DEFAULT_INSTRUCTION

    def __post_init__(self):
        for name in ("prefix", "body", "suffix", "yes", "no"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"RerankTemplate.{name} must be a string, got {type(getattr(self, name)).__name__}")
        if not self.yes or not self.no or self.yes == self.no:
            raise ValueError(f"RerankTemplate needs two different answer tokens, got yes={self.yes!r} no={self.no!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.body) if f is not None]
        except ValueError as exc:
            raise ValueError(f"RerankTemplate.body is not a valid format string: {exc}") from exc
        unknown = sorted(set(fields) - _BODY_FIELDS)
        if unknown:
            raise ValueError(
                f"RerankTemplate.body has unknown fields {unknown}; use only {{instruction}}, {{query}} and {{doc}}"
            )
        missing = [f"{{{f}}}" for f in ("query", "doc") if f not in fields]
        if missing:
            raise ValueError(
                f"RerankTemplate.body must contain {{query}} and {{doc}}; missing {', '.join(missing)} in {self.body!r}"
            )

    @property
    def uses_instruction(self) -> bool:
        return any(f == "instruction" for _, f, _, _ in string.Formatter().parse(self.body))

    def format_body(self, query: str, doc: str, instruction: str | None = None) -> str:
        if self.uses_instruction:
            instruction = instruction if instruction is not None else self.default_instruction
            if instruction is None:
                raise ValueError("this template's body has {instruction} but no instruction was given")
        return self.body.format(instruction=instruction, query=query, doc=doc)


#: the official Qwen3-Reranker prompt (model card), byte for byte
QWEN3_TEMPLATE = RerankTemplate(QWEN3_PREFIX, QWEN3_BODY, QWEN3_SUFFIX)

__all__ = ["DEFAULT_INSTRUCTION", "QWEN3_BODY", "QWEN3_PREFIX", "QWEN3_SUFFIX", "QWEN3_TEMPLATE", "RerankTemplate"]
