"""A handful of labeled (query, document) pairs for the examples (replace them with your own data:
``[{"query": str, "document": str, "label": 0 or 1}]``, or a .jsonl file of such records / triplets / groups)."""

import json
from pathlib import Path

TRAIN = [
    {
        "query": "authentication token exchange flow",
        "document": "OAuth2 PKCE flow exchanges authorization code for access token",
        "label": 1,
    },
    {
        "query": "authentication token exchange flow",
        "document": "CSS grid layout provides two-dimensional positioning",
        "label": 0,
    },
    {
        "query": "authentication token exchange flow",
        "document": "JWT tokens are signed with HMAC-SHA256 for API auth",
        "label": 0,
    },
    {
        "query": "two dimensional page layout",
        "document": "CSS grid layout provides two-dimensional positioning",
        "label": 1,
    },
    {
        "query": "two dimensional page layout",
        "document": "JWT tokens are signed with HMAC-SHA256 for API auth",
        "label": 0,
    },
    {"query": "two dimensional page layout", "document": "The river flows through the mountain city", "label": 0},
    {"query": "signed api tokens", "document": "JWT tokens are signed with HMAC-SHA256 for API auth", "label": 1},
    {"query": "signed api tokens", "document": "The cat and the dog sleep in the house", "label": 0},
    {"query": "signed api tokens", "document": "CSS grid layout provides two-dimensional positioning", "label": 0},
    {
        "query": "cause of the disease",
        "document": "A study of the drug treatment and the cause of the disease",
        "label": 1,
    },
    {"query": "cause of the disease", "document": "Music and film history of the country", "label": 0},
    {
        "query": "cause of the disease",
        "document": "OAuth2 PKCE flow exchanges authorization code for access token",
        "label": 0,
    },
]
EVAL = TRAIN[:6]


def read_records(path: str | None, default: list[dict]) -> list[dict] | str:
    """The records of a .jsonl file (or the file path itself for .jsonl, which the trainers read), else ``default``."""
    if path is None:
        return default
    if Path(path).suffix == ".json":
        return json.loads(Path(path).read_text())
    return path
