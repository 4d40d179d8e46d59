"""Embedding (bi-encoder) folders made from causal-LM folders: SmolLM2-135M with last-token or mean pooling.

SmolLM2 is not an embedding model: these folders give it sentence-transformers' modules (``Transformer`` on the
causal-LM folder, ``Pooling``, ``Normalize``) so that the harness infers ``kind: bi_encoder`` (``modules.json``
lists a Pooling module) and both backends run it as ``SentenceTransformer`` / ``MLXEmbedder`` do; the suites then
evaluate it zero-shot or fine-tune it with InfoNCE + LoRA (``harness.train.bi_encoder_worker``). Built by
``sentence_transformers.SentenceTransformer.save`` (bare backbone weights, float32), registered as
``local:smollm2-135m-bi-lasttoken`` / ``local:smollm2-135m-bi-mean`` in ``harness.localmodels`` (``build_smollm2_bi``).
"""

from __future__ import annotations

from pathlib import Path

#: truncation written into the folders (``sentence_bert_config.json`` max_seq_length), as all-MiniLM-L6-v2's
MAX_SEQ_LENGTH = 256


def build_decoder_embedding_folder(source: str | Path, out: Path, pooling: str, normalize: bool = True) -> Path:
    """``out``: a sentence-transformers folder of the causal-LM folder ``source`` with ``pooling``
    (``lasttoken`` / ``mean``) and, when ``normalize``, a ``Normalize`` module."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    encoder = Transformer(str(source), max_seq_length=MAX_SEQ_LENGTH)
    modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode=pooling)]
    SentenceTransformer(modules=modules + ([Normalize()] if normalize else []), device="cpu").save(str(out))
    return Path(out)


def build_smollm2_bi(out: Path, pooling: str) -> Path:
    """``out``: SmolLM2-135M (``local:smollm2-135m-instruct``) as a bi-encoder folder with ``pooling``."""
    from ..localmodels import resolve_model

    return build_decoder_embedding_folder(resolve_model("local:smollm2-135m-instruct"), out, pooling)
