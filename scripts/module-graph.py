#!/usr/bin/env python3
"""Prints the dependency graph of `src/`'s top-level modules and its cycles.

An edge `a -> b` means some file under module `a` names `crate::b` (in a
`use`, a path or a macro call). Files directly in `src/` are their own
module (`src/app.rs` is `app`). Run from the repository root:

    python3 scripts/module-graph.py          # edges, then cycles
    python3 scripts/module-graph.py --check  # exit 1 if there is a cycle

Only top-level modules are nodes; `--depth 2` splits them one level further
(`jobs::runner`, `auth::access`, ...), which shows cycles inside a module.
"""

import argparse
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
USE = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)?)")
SUPER = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
SUPER_GROUP = re.compile(r"\bsuper::\{([^}]*)\}", re.S)
ROOT_FILES = {"main.rs", "lib.rs"}


def module_of(path: pathlib.Path, depth: int) -> str | None:
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "mod":
        parts = parts[:-1]
    if not parts or (len(parts) == 1 and path.name in ROOT_FILES):
        return None
    return "::".join(parts[:depth])


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def file_parts(path: pathlib.Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def targets(text: str, depth: int, known: set[str], parts: list[str]) -> set[str]:
    names = set()
    for match in USE.finditer(text):
        names.add(match.group(1))
    # `super::x` names a sibling of this file's module.
    for match in SUPER.finditer(text):
        names.add("::".join(parts[:-1] + [match.group(1)]))
    for group in SUPER_GROUP.finditer(text):
        for item in group.group(1).split(","):
            item = item.strip().split("::")[0].split(" as ")[0].strip()
            if item and item != "self":
                names.add("::".join(parts[:-1] + [item]))
    for group in GROUP.finditer(text):
        for item in group.group(1).split(","):
            item = item.strip().split(" as ")[0]
            if item:
                names.add(item.replace("{", "").strip())
    found = set()
    for name in names:
        parts = name.split("::")
        for cut in range(min(depth, len(parts)), 0, -1):
            candidate = "::".join(parts[:cut])
            if candidate in known:
                found.add(candidate)
                break
    return found


def graph(depth: int) -> dict[str, set[str]]:
    files = [p for p in SRC.rglob("*.rs")]
    modules = {m for p in files if (m := module_of(p, depth))}
    # With depth 2, a top-level module is also a node for its own mod.rs.
    modules |= {m.split("::")[0] for m in modules}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for path in files:
        source = module_of(path, depth)
        if source is None:
            continue
        text = strip_comments(path.read_text())
        for target in targets(text, depth, modules, file_parts(path)):
            if target != source and not target.startswith(source + "::") and not source.startswith(target + "::"):
                edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--src", type=pathlib.Path, help="another tree's src/ (e.g. an old checkout)")
    args = parser.parse_args()
    global SRC
    if args.src:
        SRC = args.src.resolve()
    edges = graph(args.depth)
    if not args.check:
        for source in sorted(edges):
            print(f"{source} -> {', '.join(sorted(edges[source])) or '(nothing)'}")
    found = cycles(edges)
    if found:
        print(f"\n{len(found)} cycle(s):")
        for component in found:
            inner = [f"{a} -> {b}" for a in component for b in sorted(edges[a]) if b in component]
            print(f"  {{{', '.join(component)}}}: {'; '.join(inner)}")
    else:
        print("\nno cycles")
    return 1 if (args.check and found) else 0


if __name__ == "__main__":
    sys.exit(main())
