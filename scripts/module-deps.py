#!/usr/bin/env python3
"""Module dependency graph of a Rust crate from its `use crate::…`, `crate::…`, `super::…` and
child-module references; prints the modules in dependency order (each after everything it uses)
and exits 1 on a cycle. Usage: scripts/module-deps.py [agent/src] [--tests] [--edges]
Test code (`#[cfg(test)] mod tests { … }` at the end of a file) is left out unless --tests; with
--tests it is resolved as the child module `<file's module>::tests` (so `super::x` in it names the
file's own module and `super::super::x` its parent), and its edges count as the file's.

Rules: a parent's `mod child;` alone is no edge; a parent naming a child's item (`pub use
child::X`, `child::f()`) is a parent→child edge; a child naming an item through its parent
(`super::X`, `crate::parent::X`, even a re-export) is a child→parent edge. So a parent that both
re-exports its children and is reached through by them is a cycle: children import siblings
directly (`super::sibling::X`) and the parent is declarations + re-exports for the rest of the
crate. A crate with both lib.rs and main.rs: main.rs is the binary, a separate crate that uses the
library by name, so only lib.rs is the crate root here."""
import os, re, sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
root = args[0] if args else "agent/src"
with_tests, show_edges = "--tests" in sys.argv, "--edges" in sys.argv

def module_of(rel):
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "main", "lib"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"

files = {}
for d, _, names in os.walk(root):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel == "main.rs" and os.path.exists(os.path.join(root, "lib.rs")):
                continue
            files[module_of(rel)] = open(p).read()
mods = set(files)

def strip(src):
    """(code, test code): comments, strings and char literals blanked."""
    src = re.sub(r'r(#+)".*?"\1', '""', src, flags=re.S)
    src = re.sub(r"'(?:\\.|[^'\\\n])'", "' '", src)
    src = re.sub(r'"(?:\\.|[^"\\])*"', '""', src)
    src = re.sub(r"//[^\n]*", "", src)
    i = src.find("#[cfg(test)]\nmod tests")
    return (src, "") if i < 0 else (src[:i], src[i:] if with_tests else "")

def expand(path):
    """`a::{b, c::{self, d}}` -> [`a::b`, `a::c`, `a::c::d`] (enough for module resolution)."""
    m = re.match(r"^([\w:]*?)::\{(.*)\}$", path, re.S)
    if not m:
        return [path]
    head, body = m.groups()
    out, depth, cur = [], 0, ""
    for ch in body + ",":
        if ch == "," and depth == 0:
            cur = cur.strip()
            if cur:
                out += expand(head + "::" + ("" if cur == "self" else cur))
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    return [o.rstrip(":") for o in out]

def resolve(mod, path):
    """The module a path names, from inside `mod`: the longest known module prefix."""
    segs = [s.split(" as ")[0].strip() for s in path.split("::")]
    if segs[0] == "crate":
        base = []
    elif segs[0] == "super":
        base = mod.split("::")[:-1] if mod != "crate" else []
        while segs and segs[0] == "super":
            segs = segs[1:]
            if segs and segs[0] == "super":
                base = base[:-1]
        segs = ["_"] + segs
    else:  # a child module named relatively
        base = [] if mod == "crate" else mod.split("::")
        segs = ["_"] + segs
    best = None
    for i in range(1, len(segs) + 1):
        cand = "::".join(base + segs[1:i]) or "crate"
        if cand in mods:
            best = cand
    return best

edges = {m: set() for m in mods}
for mod, raw in files.items():
    src, tests = strip(raw)
    children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", src, re.M))
    # Test code is resolved from `<mod>::tests`: there `super` is the file's own module.
    for code, at in ((src, mod), (tests, ("" if mod == "crate" else mod + "::") + "tests")):
        paths = []
        for u in re.findall(r"\buse\s+([^;]+);", code):
            paths += expand(re.sub(r"\s+", " ", u).replace(" ", "").replace("as", " as "))
        paths += re.findall(r"\b((?:crate|super)(?:::\w+)+)", code)
        if code is src:
            for c in children:
                paths += [c + "::" + x for x in re.findall(r"\b" + c + r"::(\w+)", code)]
        for p in paths:
            first = p.split("::")[0]
            if first not in ("crate", "super") and (code is not src or first not in children):
                continue
            t = resolve(at, p)
            if t and t != mod:
                edges[mod].add(t)

# Dependency order (Kahn), leaves first; what is left over is in a cycle.
order, done = [], set()
while True:
    ready = sorted(m for m in mods if m not in done and edges[m] <= done)
    if not ready:
        break
    order.append(ready)
    done |= set(ready)
for i, layer in enumerate(order):
    print(f"{i:2}: " + "  ".join(layer))
if show_edges:
    for m in sorted(mods):
        print(f"{m} -> {', '.join(sorted(edges[m]))}")
left = mods - done
if left:
    print("CYCLE among: " + ", ".join(sorted(left)))
    for m in sorted(left):
        print(f"  {m} -> {', '.join(sorted(edges[m] & left))}")
    sys.exit(1)
print("no cycle")
