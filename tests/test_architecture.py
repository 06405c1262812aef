"""The package's shape, checked: layers, import cycles, private imports, file sizes.

Every ``import`` in ``torchenergy/`` counts, function-local ones included (a cycle hidden in a
function is still a cycle). The layers are those of DESIGN.md: a room (a subpackage or a
top-level module) imports only rooms on lower floors, so the room graph has no cycle and no
upward arrow; no module imports itself back through others; no room imports another room's
private (``_``) module (the root's ``_checks`` and ``_ops`` are the shared floor 0); and no
file is over 500 lines. A module-level ``__getattr__`` that imports by name (a deprecated
alias kept for one release) is the one exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "torchenergy"

# floor of each room (lower floors never import higher ones)
FLOORS = {
    "types": 0,
    "_checks": 0,
    "_ops": 0,
    "metrics_images": 0,  # self-contained: metrics re-exports it
    "schedules": 1,
    "energies": 1,
    "data": 1,
    "metrics": 1,
    "diagnostics": 1,
    "samplers": 2,
    "features": 2,
    "losses": 3,
    "models": 4,
    "estimate": 5,
    "ood": 5,
    "image_tasks": 5,
    "diffusion": 6,
    "viz": 6,
    "train": 7,
    "cli": 8,
    "demos": 9,  # a deprecated alias of cli.demos
    "__main__": 9,
}
SHARED_PRIVATE = {"torchenergy._checks", "torchenergy._ops"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    # a module ``__getattr__`` that imports by name is a deprecation alias for one release
    # (the old public path keeps working, with a warning); it is not an import of the module
    shims = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
        for n in ast.walk(f)
    }
    for node in ast.walk(tree):
        if id(node) in shims and isinstance(node, ast.Call):
            continue
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets.append(mod)
            targets += [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        out |= {t for t in targets if t in mods and t != name}
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODS = _modules()
EDGES = {m: _imports(m, p, MODS) for m, p in MODS.items()}


def test_every_room_has_a_floor():
    rooms = {_room(m) for m in MODS} - {""}
    assert rooms <= set(FLOORS), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


def test_no_upward_or_sideways_arrow_between_rooms():
    bad = []
    for a, targets in EDGES.items():
        ra = _room(a)
        for b in targets:
            rb = _room(b)
            if ra and rb and ra != rb and FLOORS[rb] >= FLOORS[ra]:
                bad.append(f"{a} -> {b} (floor {FLOORS[ra]} -> {FLOORS[rb]})")
    assert not bad, "imports that go up or sideways:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    colour: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for b in sorted(EDGES[m]):
            if colour.get(b, 0) == 0:
                visit(b)
            elif colour[b] == 1:
                cycles.append([*stack[stack.index(b) :], b])
        stack.pop()
        colour[m] = 2

    for m in MODS:
        if colour.get(m, 0) == 0:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_cross_room_private_import():
    bad = []
    for a, targets in EDGES.items():
        for b in targets:
            private = any(p.startswith("_") and not p.startswith("__") for p in b.split(".")[1:])
            if private and b not in SHARED_PRIVATE and _room(a) != _room(b):
                bad.append(f"{a} -> {b}")
    assert not bad, "private modules imported from another room:\n" + "\n".join(bad)


def test_no_file_over_500_lines():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODS.items()}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not big, f"files over {MAX_LINES} lines: {big}"
