#!/usr/bin/env python3
"""The shape of the binfmtctl package, for the architecture's limits (ARCHITECTURE.md).

Prints, from an ``ast`` walk of ``binfmtctl/`` (no import of the package):
the largest modules, the longest functions, every click command's body length, import
cycles among the package's own modules, and which modules import click or subprocess.

    python benchmarks/shape.py            # a table
    python benchmarks/shape.py --json     # the same, for scripts and tests
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "binfmtctl"


@dataclass(frozen=True)
class Shape:
    modules: dict[str, int]  # module -> lines
    functions: list[tuple[int, str]]  # (lines, "module:line name"), longest first
    commands: list[tuple[int, str]]  # (body lines, "module:line name"), longest first
    cycles: list[list[str]]
    imports_click: list[str]
    imports_subprocess: list[str]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
            return True
    return False


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring is help text, not code
    if not body:
        return 0
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def measure(root: Path = PKG) -> Shape:
    trees: dict[str, tuple[ast.Module, bool]] = {}
    modules: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        src = path.read_text()
        trees[name] = (ast.parse(src), path.name == "__init__.py")
        modules[name] = src.count("\n") + (0 if src.endswith("\n") else 1)
    graph: dict[str, set[str]] = {m: set() for m in trees}
    functions: list[tuple[int, str]] = []
    commands: list[tuple[int, str]] = []
    click_users: list[str] = []
    subprocess_users: list[str] = []
    for mod, (tree, is_pkg) in trees.items():
        external: set[str] = set()
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in trees else base for a in node.names
                ]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                end = node.end_lineno or node.lineno
                functions.append((end - node.lineno + 1, f"{mod}:{node.lineno} {node.name}"))
                if _is_command(node):
                    commands.append((_body_lines(node), f"{mod}:{node.lineno} {node.name}"))
            for t in targets:
                external.add(t.split(".")[0])
                while t and t not in trees and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in trees and t != mod:
                    graph[mod].add(t)
        if "click" in external:
            click_users.append(mod)
        if "subprocess" in external:
            subprocess_users.append(mod)
    functions.sort(reverse=True)
    commands.sort(reverse=True)
    return Shape(modules, functions, commands, _cycles(graph), click_users, subprocess_users)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("package", nargs="?", type=Path, default=PKG, help="default: this binfmtctl/")
    args = ap.parse_args(argv)
    s = measure(args.package.resolve())
    if args.json:
        print(json.dumps(asdict(s), indent=2))
        return 0
    largest = sorted(s.modules.items(), key=lambda kv: -kv[1])[: args.top]
    print(f"modules: {len(s.modules)}; largest: " + ", ".join(f"{m} {n}" for m, n in largest))
    print("longest functions: " + ", ".join(f"{f} ({n})" for n, f in s.functions[: args.top]))
    over = [c for c in s.commands if c[0] > 25]
    print(
        f"click commands: {len(s.commands)}; longest body {s.commands[0][0] if s.commands else 0} lines; over 25: {len(over)}"
    )
    for n, c in over:
        print(f"  {n:4d}  {c}")
    print(f"import cycles: {s.cycles or 'none'}")
    print("import click: " + ", ".join(s.imports_click))
    print("import subprocess: " + ", ".join(s.imports_subprocess))
    return 0


if __name__ == "__main__":
    sys.exit(main())
