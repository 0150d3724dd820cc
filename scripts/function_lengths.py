#!/usr/bin/env python3
"""The house rule "no function over 80 lines", checked: lists the functions of src/ and apps/ (definitions that open at
the start of a line, as clang-format lays out petseg's code) longer than the limit, longest first, and exits 1 when
there is one that is not allowed. The pickle machine's opcode switch is the one allowed exception: it is one flat
dispatch, clearest whole.
  scripts/function_lengths.py [--limit 80] [--top N] [ROOT]
"""
import argparse
import os
import re
import sys

ALLOWED = {("src/model/pickle.cpp", "run")}
OPENS = re.compile(r"^( {0,2})(?!namespace|struct|class|enum|union|extern|#|//|return|if|for|while|switch|else|do)[A-Za-z~][^;]*\)\s*(const)?\s*(noexcept)?\s*(override)?\s*\{\s*$")
NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_:~]*)\s*\(")


def functions(path, rel):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        # A signature may span lines: join until the line that opens the body.
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent in (0, 2) and re.match(r"^[A-Za-z~]", body) and not re.match(
                r"^(namespace|struct|class|enum|using|typedef|template|return|if|for|while|switch|else|do|case)\b", body):
            j, text = i, line
            while not text.rstrip().endswith("{") and not text.rstrip().endswith(";") and j + 1 < len(lines) and j - i < 6:
                j += 1
                text += " " + lines[j].strip()
            if text.rstrip().endswith("{") and OPENS.match(text):
                end = j + 1
                close = " " * indent + "}"
                while end < len(lines) and not (lines[end].startswith(close) and
                                                 len(lines[end]) - len(lines[end].lstrip(" ")) == indent):
                    end += 1
                name = NAME.findall(text.split("(")[0] + "(")
                yield (rel, name[-1].split("::")[-1] if name else "?", start + 1, end - j - 1)
                i = end
        i += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    p.add_argument("--limit", type=int, default=80)
    p.add_argument("--top", type=int, default=5)
    args = p.parse_args()
    found = []
    for area in ("src", "apps"):
        for d, _, files in os.walk(os.path.join(args.root, area)):
            for f in sorted(files):
                if f.endswith((".cpp", ".h")):
                    path = os.path.join(d, f)
                    found += functions(path, os.path.relpath(path, args.root))
    found.sort(key=lambda x: -x[3])
    for rel, name, line, n in found[: args.top]:
        print(f"{n:4d} lines  {rel}:{line}  {name}")
    over = [f for f in found if f[3] > args.limit and (f[0], f[1]) not in ALLOWED]
    for rel, name, line, n in over:
        print(f"over {args.limit} lines: {rel}:{line} {name} ({n} lines)", file=sys.stderr)
    print(f"{len(found)} functions; {len(over)} over {args.limit} lines (allowed: {sorted(ALLOWED)})")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
