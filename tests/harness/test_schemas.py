"""JSON Schema of suites and results: generated from the records, committed up to date, and it accepts every
shipped suite and committed results file (checked by jsonschema, an independent validator) and refuses bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.cli import main
from harness.results import load_results
from harness.schemas import SCHEMAS, schema_text

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_committed_schemas_are_up_to_date(kind):
    committed = REPO / "docs" / "schemas" / f"{kind}.schema.json"
    assert committed.read_text() == schema_text(kind), f"run: harness schema {kind} --output {committed}"


def test_schema_command_prints_it(capsys):
    assert main(["schema", "suite"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(schema_text("suite"))


@pytest.mark.parametrize("path", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_follows_the_schema(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(schema_text("suite")))


@pytest.mark.parametrize("path", sorted((REPO / "results").glob("*.json")), ids=lambda p: p.name)
def test_every_committed_results_file_follows_the_schema(path):
    jsonschema.validate(load_results(path), json.loads(schema_text("results")))  # schema 1 read as 2


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x", "datasets": [{"name": "d", "candidates": "c.json", "topk": 3}], "rerankers": []},  # unknown key
        {"name": "x", "datasets": [{"name": "d", "top_k": 0}], "rerankers": []},
        {"name": "x", "datasets": [], "rerankers": [{"name": "r", "backend": "onnx", "model": "m"}]},
        {"datasets": []},
    ],
)
def test_the_suite_schema_refuses_what_the_loader_refuses(bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(schema_text("suite")))
