"""Build small checkpoints on disk with transformers (random init, fixed seed) for parity tests.

Nothing here downloads: tokenizers are built with ``tokenizers`` from a fixed vocabulary.
"""

from __future__ import annotations

import re
from pathlib import Path

TEXT = """
the a an of to in and or is are was were be been for on with as by at from that this these those it its
what how why when where who which query document passage answer relevant irrelevant search retrieve rank
token exchange flow oauth authorization code access jwt signed api auth css grid layout two dimensional
positioning machine learning model apple silicon metal memory speed fast slow neural network transformer
attention layer embedding vector database index bm25 dense sparse hybrid rerank rerankers score scores
cat dog house river mountain city country music film book history science physics chemistry biology
water fire earth air light dark night day year month week time people person world life health disease
treatment drug cause effect symptom doctor hospital patient study result results data method methods
""".split()

QUERIES = [
    "what is oauth authorization code flow",
    "how do rerankers score passages",
    "cause of disease",
    "apple silicon metal speed",
    "bm25",
]
DOCUMENTS = [
    "oauth authorization code flow exchanges code for access token",
    "css grid layout provides two dimensional positioning",
    "jwt tokens are signed for api auth",
    "the reranker scores each passage for the query with a transformer model and attention layers "
    "which is slow but relevant results are ranked first in the search index of the database",
    "river",
    "a study of drug treatment results in patients with the disease and its symptom",
    "the cat and the dog",
    "dense and sparse hybrid retrieval with bm25 and embedding vector index " * 3,
]


def pairs(n: int | None = None) -> list[tuple[str, str]]:
    """Padding-heavy mix of short and long (query, document) pairs."""
    out = [(q, d) for q in QUERIES for d in DOCUMENTS]
    return out[:n] if n else out


def vocabulary() -> list[str]:
    words = sorted(set(TEXT) | {w for t in QUERIES + DOCUMENTS for w in re.findall(r"\w+", t)})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]


def save_bert_tokenizer(directory: Path, model_max_length: int = 512) -> None:
    """A WordPiece tokenizer with BERT's pair template ([CLS] A [SEP] B [SEP], token types 0/1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length)
    fast.save_pretrained(directory)


def bert_cross_encoder(directory: Path, seed: int = 0, num_labels: int = 1, **config) -> Path:
    """Random-init ``BertForSequenceClassification`` + tokenizer saved as safetensors."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = Path(directory)
    defaults = dict(
        vocab_size=len(vocabulary()), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(**{**defaults, **config}))
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    save_bert_tokenizer(directory, model_max_length=defaults["max_position_embeddings"])
    return directory
