#!/usr/bin/env python3
"""Fails on an import cycle between sibling modules of any workspace crate.

Sibling modules are the children of one module (`chain::state` and `chain::validate`, or the
top-level modules of a crate). A module depends on a sibling when any code in it or under it
names the sibling by path: `use super::b::X`, `crate::a::b::f()`, `use super::{b::X, c}`,
a name the parent re-exports from the sibling (`pub use b::X;`, then `super::X`). Tests
count: a sibling a test needs is a dependency too. Shared pieces belong in a leaf module
below both (quickwit-config's `serde_utils.rs` is the model), so the graph of every module's
children must have no cycle.

Usage: layers.py [WORKSPACE_ROOT]   (default: the repository holding this script)
Prints each cycle as `sibling import cycle in CRATE (PARENT): a <-> b`, then for each edge
of it the first line that makes it, and exits 1 if there is any.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Comments, string and char literals are blanked before paths are read, so a path in a doc
# comment or a log message is not a dependency. Raw strings are rare here; r"..." without
# hashes is covered by the plain string rule.
LEXEMES = re.compile(
    r"""//[^\n]*|/\*.*?\*/|r(\#+)".*?"\1|b?"(?:\\.|[^"\\])*"|b?'(?:\\.|[^'\\])'""",
    re.S,
)
INLINE_MOD = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")
PATH_START = re.compile(r"(?<![A-Za-z0-9_$:])(crate|super|self)\s*::")
PUB_USE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+(?:self\s*::\s*)?")


def blank(source: str) -> str:
    """The source with comments and literals replaced by spaces (offsets kept)."""

    def spaces(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return LEXEMES.sub(spaces, source)


def parse_tree(text: str, i: int) -> tuple[list[list[str]], int]:
    """Parses a use-tree or plain path at `i`; returns every path it names and the end."""
    paths: list[list[str]] = []
    prefix: list[str] = []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if text.startswith("{", i):
            i += 1
            while True:
                subs, i = parse_tree(text, i)
                paths.extend(prefix + s for s in subs)
                while i < len(text) and text[i].isspace():
                    i += 1
                if text.startswith(",", i):
                    i += 1
                    continue
                if text.startswith("}", i):
                    i += 1
                break
            return paths, i
        if text.startswith("*", i):
            return paths + [prefix], i + 1
        m = IDENT.match(text, i)
        if not m:
            return ([prefix] if prefix else []), i
        prefix.append(m.group(0))
        i = m.end()
        n = i
        while n < len(text) and text[n].isspace():
            n += 1
        if text.startswith("::", n) and not text.startswith("::<", n):
            i = n + 2
            continue
        return paths + [prefix], i


def module_path_of(file: Path, src: Path) -> list[str]:
    """`src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` is the root."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts and parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def inline_modules(text: str) -> list[tuple[int, int, str]]:
    """Spans (start, end, name) of `mod name { ... }` blocks in blanked source."""
    spans = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        spans.append((m.start(), i, m.group(1)))
    return spans


def scope_at(base: list[str], spans: list[tuple[int, int, str]], pos: int) -> list[str]:
    """Module path of the code at `pos`: the file's module plus enclosing inline modules."""
    inner = [(s, name) for s, e, name in spans if s < pos < e]
    return base + [name for _, name in sorted(inner)]


def resolve(scope: list[str], path: list[str]) -> list[str] | None:
    """Absolute path of `crate::..`, `super::..`, `self::..` seen in module `scope`."""
    if not path:
        return None
    head, rest = path[0], path[1:]
    if head == "crate":
        return rest
    if head == "self":
        return scope + rest
    up = scope[:]
    while path and path[0] == "super":
        if not up:
            return None
        up.pop()
        path = path[1:]
    return up + path


class Crate:
    """The modules of one crate and the paths each names."""

    def __init__(self, name: str, src: Path, root: Path):
        self.name = name
        self.modules: set[tuple[str, ...]] = {()}
        # (module the code is in, absolute path it names, where: file:line)
        self.refs: list[tuple[list[str], list[str], str]] = []
        # (module, re-exported name) -> absolute path it stands for
        self.reexports: dict[tuple[tuple[str, ...], str], list[str]] = {}
        files = [f for f in sorted(src.rglob("*.rs")) if self._in_tree(f, src)]
        for f in files:
            base = module_path_of(f, src)
            for k in range(len(base) + 1):
                self.modules.add(tuple(base[:k]))
        for f in files:
            self._read(f, module_path_of(f, src), f.relative_to(root))

    @staticmethod
    def _in_tree(file: Path, src: Path) -> bool:
        # Binaries are crates of their own: `crate::` in them is not the library.
        rel = file.relative_to(src).parts
        if rel[0] == "bin":
            return False
        return rel != ("main.rs",) or not (src / "lib.rs").exists()

    def _read(self, file: Path, base: list[str], shown: Path) -> None:
        text = blank(file.read_text(encoding="utf-8"))
        spans = inline_modules(text)
        for _, _, name in spans:
            self.modules.add(tuple(base + [name]))
        for m in PATH_START.finditer(text):
            scope = scope_at(base, spans, m.start())
            paths, _ = parse_tree(text, m.start())
            for p in paths:
                target = resolve(scope, p)
                if target is not None:
                    line = text.count("\n", 0, m.start()) + 1
                    self.refs.append((scope, target, f"{shown}:{line}"))
        for m in PUB_USE.finditer(text):
            scope = scope_at(base, spans, m.start())
            paths, _ = parse_tree(text, m.end())
            for p in paths:
                if p and p[0] not in ("crate", "super", "self") and p[-1] != "*":
                    self.reexports[(tuple(scope), p[-1])] = scope + p

    def _canonical(self, target: list[str]) -> list[str]:
        """Follows one level of `pub use child::Name` so a re-export does not hide an edge."""
        for k in range(len(target), 0, -1):
            key = (tuple(target[: k - 1]), target[k - 1])
            if tuple(target[:k]) not in self.modules and key in self.reexports:
                return self.reexports[key] + target[k:]
        return target

    def graphs(self) -> dict[tuple[str, ...], dict[str, dict[str, str]]]:
        """For each parent module: child -> sibling it depends on -> first place it does."""
        out: dict[tuple[str, ...], dict[str, dict[str, str]]] = {}
        for scope, target, where in self.refs:
            target = self._canonical(target)
            k = 0
            while k < len(scope) and k < len(target) and scope[k] == target[k]:
                k += 1
            if k == len(scope) or k == len(target):
                continue  # an ancestor or a descendant, not a sibling
            parent = tuple(scope[:k])
            if parent + (target[k],) not in self.modules:
                continue  # an item of the parent, not a sibling module
            out.setdefault(parent, {}).setdefault(scope[k], {}).setdefault(target[k], where)
        return out


def cycles(graph: dict[str, set[str]] | dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each a set of modules
    that reach each other), members sorted, Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in nodes:
        if v not in index:
            connect(v)
    return sorted(found)


def workspace_crates(root: Path) -> list[tuple[str, Path]]:
    manifest = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    members = manifest.get("workspace", {}).get("members", ["."])
    crates = []
    for member in members:
        globbed = any(c in member for c in "*?[")
        for d in sorted(root.glob(member)) if globbed else [root / member]:
            toml = d / "Cargo.toml"
            if (d / "src").is_dir() and toml.exists():
                name = tomllib.loads(toml.read_text(encoding="utf-8"))["package"]["name"]
                crates.append((name, d / "src"))
    return crates


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    crates = workspace_crates(root)
    if not crates:
        print(f"layers: no workspace crate found under {root}", file=sys.stderr)
        return 1
    found = 0
    for name, src in crates:
        for parent, graph in sorted(Crate(name, src, root).graphs().items()):
            where = "::".join(parent) or "crate root"
            for comp in cycles(graph):
                found += 1
                print(f"sibling import cycle in {name} ({where}): {' <-> '.join(comp)}")
                for a in comp:
                    for b, at in sorted(graph.get(a, {}).items()):
                        if b in comp:
                            print(f"  {a} -> {b}  ({at})")
    if found:
        print(f"layers: {found} sibling import cycle(s); move shared pieces into a leaf module")
        return 1
    print(f"layers: no sibling import cycle in {', '.join(n for n, _ in crates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
