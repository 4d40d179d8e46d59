"""JSON Schema of suite files and results files, generated from their typed records (``harness schema``).

Editors read ``docs/schemas/suite.schema.json`` to complete and check suites (e.g. a ``# yaml-language-server:
$schema=...`` line); ``docs/schemas/results.schema.json`` describes results files. A test keeps the committed
files equal to what the records generate.
"""

from __future__ import annotations

import json
from typing import Any

from .results.models import ResultsFile
from .suite.models import Suite
from .suite.train import HARNESS_SET, OLD_NAMES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _input_only(schema: dict[str, Any]) -> dict[str, Any]:
    """The suite as written: derived fields dropped, a recipe's harness-set keys dropped and its older names added."""
    from .suite import models, train

    defs = schema.get("$defs", {})
    for record in (models.DatasetSpec, models.Suite, train.TrainSource):
        target = schema if record is models.Suite else defs.get(record.__name__, {})
        for name in record.derived_fields:
            target.get("properties", {}).pop(name, None)
            if name in target.get("required", []):
                target["required"].remove(name)
    recipe = defs.get("TrainRecipe", {})
    for name in HARNESS_SET:
        recipe.get("properties", {}).pop(name, None)
    for old, new in OLD_NAMES.items():
        recipe.setdefault("properties", {})[old] = {**recipe["properties"][new], "description": f"older name of {new}"}
    return schema


def suite_schema() -> dict[str, Any]:
    schema = _input_only(Suite.model_json_schema(by_alias=True))
    return {"$schema": SCHEMA_DIALECT, "title": "harness suite", **schema}


def results_schema() -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, "title": "harness results file", **ResultsFile.model_json_schema(by_alias=True)}


SCHEMAS = {"suite": suite_schema, "results": results_schema}


def schema_text(kind: str) -> str:
    return json.dumps(SCHEMAS[kind](), indent=1, sort_keys=True) + "\n"
