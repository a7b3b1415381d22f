"""The package's layers: no import cycle between its modules (function-level imports included) nor
between its packages, the models know nothing of the layers above them (conversion, training,
evaluation, Hub, search), the cards nothing above models/data/evaluation, and only the command
line imports the command line."""

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "rs_retrieval"
ABOVE_MODELS = ("convert", "training", "evaluation", "hub", "search", "data", "quickstart", "cli")
#: What the cards (written by the Hub, the converters and training runs) must not import.
ABOVE_CARDS = ("app", "cli", "convert", "hub", "index", "quickstart", "search", "training", "zeroshot")


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
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
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
    assert {f"rs_retrieval.models.{m}" for m in ("amfmn", "cmpagl", "galr", "msa")} <= graph[
        "rs_retrieval.models"
    ]  # from . import a, b
    assert (
        "rs_retrieval.models.amfmn_family.family" in graph["rs_retrieval.models.amfmn.modeling_amfmn"]
    )  # from ..amfmn_family.x import y
    assert "rs_retrieval.evaluation.evaluator" in graph["rs_retrieval.training.trainer"]  # imported inside a function
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


def package_of(module: str) -> str:
    """`rs_retrieval.<first component>`: a subpackage or a top-level module (the root is its own node)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    """(package -> packages it imports, (package, package) -> the module edges "a -> b" behind it)."""
    packages = {package_of(module): set() for module in graph}
    edges: dict[tuple[str, str], list[str]] = {}
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source, dest = package_of(module), package_of(target)
            if source != dest:
                packages[source].add(dest)
                edges.setdefault((source, dest), []).append(f"{module} -> {target}")
    return packages, edges


def cycle_report(graph: dict[str, set[str]]) -> list[str]:
    """One line per package cycle: its packages, then every module edge between two of them."""
    packages, edges = package_graph(graph)
    lines = []
    for cycle in cycles(packages):
        members = set(cycle)
        behind = [edge for (a, b), found in sorted(edges.items()) if a in members and b in members for edge in found]
        lines.append(f"{' <-> '.join(cycle)}: " + "; ".join(behind))
    return lines


def test_package_graph_names_the_module_edges_of_a_cycle():
    graph = {
        "rs_retrieval.a.x": {"rs_retrieval.b.y"},
        "rs_retrieval.b.y": set(),
        "rs_retrieval.b.z": {"rs_retrieval.a"},
        "rs_retrieval.a": set(),
        "rs_retrieval.top": {"rs_retrieval.a.x"},
    }
    assert cycle_report(graph) == [
        "rs_retrieval.a <-> rs_retrieval.b: rs_retrieval.a.x -> rs_retrieval.b.y; rs_retrieval.b.z -> rs_retrieval.a"
    ]
    assert cycle_report({"rs_retrieval.top": {"rs_retrieval.a.x"}, "rs_retrieval.a.x": set()}) == []


def test_no_package_cycles():
    report = cycle_report(import_graph())
    assert not report, "package import cycles:\n" + "\n".join(report)


def test_only_the_command_line_imports_the_command_line():
    offending = {
        module: sorted(t for t in targets if package_of(t) == "rs_retrieval.cli")
        for module, targets in import_graph().items()
        if package_of(module) != "rs_retrieval.cli"
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_cards_import_nothing_above_models_data_and_evaluation():
    above = {f"rs_retrieval.{layer}" for layer in ABOVE_CARDS}
    offending = {
        module: sorted(t for t in targets if package_of(t) in above)
        for module, targets in import_graph().items()
        if package_of(module) == "rs_retrieval.cards"
    }
    assert {m: t for m, t in offending.items() if t} == {}
