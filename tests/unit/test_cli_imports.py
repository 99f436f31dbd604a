"""The command line's modules import each other's public names only, and without circles."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "cli" / "kafka_metal"


def imports():
    """module -> [(imported module, names)] for every relative import, nested ones included."""
    out = {}
    for path in PACKAGE.glob("*.py"):
        found = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.append((node.module, [a.name for a in node.names]))
                else:
                    found += [(a.name, []) for a in node.names if (PACKAGE / f"{a.name}.py").exists()]
        out[path.stem] = found
    return out


def test_no_module_imports_anothers_private_names():
    private = [(m, target, n) for m, found in imports().items() for target, names in found for n in names
               if n.startswith("_") and n != "__version__"]
    assert private == []


def test_the_modules_import_each_other_without_circles():
    graph = {m: {t for t, _ in found if t != "__init__" and (PACKAGE / f"{t}.py").exists()}
             for m, found in imports().items()}

    def cycle_from(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*seen, nxt]
            if nxt not in seen:
                found = cycle_from(start, nxt, [*seen, nxt])
                if found:
                    return found
        return None

    cycles = [c for m in graph if (c := cycle_from(m, m, [m]))]
    assert cycles == []
