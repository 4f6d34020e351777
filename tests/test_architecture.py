"""The module map of DESIGN.md holds: no import cycles, no reaching into private helpers."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "simclr_lib"


def _relative_imports():
    """(module, imported module, imported names) for every ``from .x import ...``."""
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                yield path.stem, node.module, [a.name for a in node.names]


def test_no_module_imports_another_modules_private_names():
    private = [f"{m} imports {name} from {target}" for m, target, names in _relative_imports()
               for name in names if name.startswith("_")]
    assert private == []


def _cycle(graph):
    state = {}

    def visit(node, path):
        state[node] = "active"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "active":
                return path + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return None

    for node in graph:
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = {}
    for module, target, _ in _relative_imports():
        graph.setdefault(module, set()).add(target)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_lower_modules_know_nothing_of_training_or_evaluation():
    lower = {"config", "shapes", "data", "augment", "models", "loss", "device"}
    upper = {"train", "evaluate", "baselines", "report", "cli", "bench", "checkpoint"}
    bad = [f"{m} -> {t}" for m, t, _ in _relative_imports() if m in lower and t in upper]
    assert bad == []
