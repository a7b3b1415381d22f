"""The package's layers: no import cycle between its modules (function-level imports included), and
the models know nothing of the layers above them (conversion, training, evaluation, Hub, search)."""

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "rs_retrieval"
ABOVE_MODELS = ("convert", "training", "evaluation", "hub", "search", "data", "quickstart", "cli")


def module_name(path: Path) -> str:
    parts = ["rs_retrieval", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> package modules it imports anywhere in its code (module or package targets)."""
    modules = {module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # `from x import y`: y is a module when x/y.py exists, else a name of module x.
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    if target in modules:
                        targets.add(target)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_import_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert {f"rs_retrieval.models.{m}" for m in ("amfmn", "cmpagl", "galr", "msa")} <= graph["rs_retrieval.models"]  # from . import a, b
    assert "rs_retrieval.models.amfmn_family.family" in graph["rs_retrieval.models.amfmn.modeling_amfmn"]  # from ..amfmn_family.x import y
    assert "rs_retrieval.evaluation.engine" in graph["rs_retrieval.training.trainer"]  # imported inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_models_import_no_layer_above_them():
    above = tuple(f"rs_retrieval.{layer}" for layer in ABOVE_MODELS)
    offending = {
        module: sorted(t for t in targets if t.startswith(above))
        for module, targets in import_graph().items()
        if module.startswith("rs_retrieval.models")
    }
    assert {m: t for m, t in offending.items() if t} == {}
