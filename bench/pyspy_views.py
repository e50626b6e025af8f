"""The workers' CPU by view in a py-spy raw profile (``py-spy record -f raw``, all workers'
files concatenated): the DRF handler method each sample was in (``ListModelMixin.list``,
``WalletView.get`` ...), the lean hit path, or outside any view (middleware, Django's handler,
gunicorn). Shares of the samples inside gunicorn requests.

    .venv/bin/python bench/pyspy_views.py PROFILE.txt [TOP]
"""

from __future__ import annotations

import sys
from collections import Counter

_WRAPPERS = ("wrapper", "inner", "ContextDecorator")  # decorators around the handler method


def view_of(frames: list[str]) -> str:
    dispatch = [i for i, frame in enumerate(frames) if frame.startswith("APIView.dispatch (")]
    if dispatch:
        rest = [frame.split(" (")[0] for frame in frames[dispatch[-1] + 1 :]]
        rest = [name for name in rest if not any(word in name for word in _WRAPPERS)]
        if rest:
            name = rest[0]
            return f"DRF {name}" if name.startswith("APIView.") or ".initial" in name else name
        return "DRF dispatch"
    if any(frame.startswith(("HitPathMiddleware.attempt (", "HitFront._answer (")) for frame in frames):
        return "lean hit path"
    return "outside views (middleware, Django, gunicorn)"


def main() -> None:
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15
    shares, total = Counter(), 0
    with open(path) as profile:
        for line in profile:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if "handle_request" not in stack or not count.isdigit():
                continue  # idle threads, the pool publisher, the arbiter
            total += int(count)
            shares[view_of(stack.split(";"))] += int(count)
    print(f"{total} samples inside requests; share of the workers' CPU by view:")
    for name, samples in shares.most_common(top):
        print(f"  {samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
