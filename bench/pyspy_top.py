"""Top frames of a py-spy raw profile (``py-spy record -f raw``), restricted to the samples
inside a gunicorn request: inclusive share (a frame anywhere on the stack) and self share (the
innermost frame), with site-packages paths and line numbers dropped.

    .venv/bin/python bench/pyspy_top.py PROFILE.txt [TOP]
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_SITE = re.compile(r"\(/[^()]*?/site-packages/")
_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str, root: str) -> str:
    return _LINE.sub(")", _SITE.sub("(", frame.replace(f"({root}/", "(")))


def summarise(lines: list[str], root: str) -> tuple[int, Counter, Counter]:
    total, inclusive, innermost = 0, Counter(), Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if "handle_request" not in stack or not count.isdigit():
            continue  # idle threads, the pool publisher, the arbiter
        samples = int(count)
        frames = [frame_name(frame, root) for frame in stack.split(";")]
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        innermost[frames[-1]] += samples
    return total, inclusive, innermost


def main() -> None:
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    root = str(__import__("pathlib").Path(__file__).resolve().parent.parent)
    with open(path) as profile:
        total, inclusive, innermost = summarise(profile.read().splitlines(), root)
    if not total:
        sys.exit("no samples inside a request")
    print(f"{total} samples inside requests")
    print("inclusive (on the stack):")
    for name, samples in inclusive.most_common(top):
        print(f"  {samples / total:6.1%}  {name}")
    print("self (innermost frame):")
    for name, samples in innermost.most_common(15):
        print(f"  {samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
