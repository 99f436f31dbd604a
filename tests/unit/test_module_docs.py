"""Every module documents itself fully, and its examples call it by its fully qualified name."""

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py"))


def _docs(path):
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                out[node.targets[0].id] = yaml.safe_load(node.value.value)
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_documentation(path):
    docs = _docs(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    doc = docs["DOCUMENTATION"]
    assert doc["module"] == path.stem
    assert doc["short_description"] and doc["description"]
    fragments = doc.get("extends_documentation_fragment", [])
    # check mode and diff support are declared, by the module or by one of the two fragments that declare them
    assert "attributes" in doc or {"metal.kafka.read_only", "metal.kafka.changes"} & set(fragments)
    for name, option in (doc.get("options") or {}).items():
        assert option.get("description"), f"option {name} has no description"
        assert option.get("type"), f"option {name} has no type"
    assert all(f"metal.kafka.{path.stem}" in task for task in docs["EXAMPLES"]), "examples must use the FQCN"
