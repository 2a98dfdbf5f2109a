"""The layering rules of docs/architecture.md, checked by reading every import of the project's own code.

Layers, bottom up; a module imports only from its own layer or below, and no two modules import each other, directly
or in a loop. Imports inside functions count too: hiding one there does not change the graph.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data_prep", "vlm_dpo")
# (layer, the modules in it: a name covers its submodules), bottom up, as docs/architecture.md lists them.
LAYERS = [
    ("data", ("data_prep",)),
    ("models", ("vlm_dpo.errors", "vlm_dpo.models")),
    ("eval", ("vlm_dpo.eval",)),
    ("report", ("vlm_dpo.report",)),
    ("training", ("vlm_dpo.training",)),
    ("commands", ("vlm_dpo.app", "vlm_dpo.inference", "vlm_dpo.export", "vlm_dpo.prepare", "vlm_dpo.benchmark")),
    ("cli", ("vlm_dpo.cli", "vlm_dpo")),
    ("entry points", ("train", "infer", "benchmarks")),
]
# Optional libraries a module may load at its top; a project import of such a module may wait inside the function
# that needs it, so that the commands that never use the library do not need it installed.
OPTIONAL = {"gradio"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    files = [*ROOT.glob("data_prep/**/*.py"), *ROOT.glob("vlm_dpo/**/*.py"), *ROOT.glob("benchmarks/*.py"),
             ROOT / "train.py", ROOT / "infer.py"]
    return {module_name(path): path for path in files}


def layer_of(module: str) -> int:
    """Index of the most specific layer entry naming ``module``."""
    best = None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[1]):
                best = (index, len(name))
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best[0]


def imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(project module imported, line, inside a function or class) for each import of the project in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from package import module" imports the module, not only the package
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in (*PACKAGES, "train", "infer"):
                found.append((name, node.lineno, id(node) not in top))
    return found


def graph() -> dict[str, set[str]]:
    modules = sources()
    known = set(modules)
    edges = {}
    for module, path in modules.items():
        targets = set()
        for name, _, _ in imports(path, known):
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def test_no_import_runs_up_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module) and not module.startswith(target + ".")
              and not target.startswith(module + ".")]
    assert upward == []


def test_no_modules_import_each_other():
    edges = graph()
    # a package's __init__ may import its own submodules, which import siblings by their full names
    edges = {module: {t for t in targets if not (t.startswith(module + ".") or module.startswith(t + "."))}
             for module, targets in edges.items()}
    loops = []
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                loops.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert loops == []


def loads_optional(path: Path) -> bool:
    """Whether the module at ``path`` imports an ``OPTIONAL`` library at its top."""
    tree = ast.parse(path.read_text())
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module]
    return any(name.split(".")[0] in OPTIONAL for name in names)


def test_project_imports_sit_at_module_top():
    """The project's own modules are imported at the top, where the graph can be read; only a module that loads an
    optional library may be imported inside the function that needs it. (Heavy third-party libraries, such as torch
    or trl, may be imported inside functions: docs/architecture.md.)"""
    modules = sources()
    hidden = [f"{path.relative_to(ROOT)}:{line} imports {name}" for module, path in modules.items()
              if module.split(".")[0] in PACKAGES for name, line, inside in imports(path, set(modules))
              if inside and not (name in modules and loads_optional(modules[name]))]
    assert hidden == []


def test_data_prep_imports_nothing_from_vlm_dpo():
    below = [f"{module} imports {target}" for module, targets in graph().items() if module.startswith("data_prep")
             for target in targets if target.startswith("vlm_dpo")]
    assert below == []


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_every_layer_is_documented(layer):
    assert f"| {layer} |" in (ROOT / "docs" / "architecture.md").read_text()
