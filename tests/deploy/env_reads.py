"""Run as a script: load the settings and gunicorn's config with the environment given on stdin
(JSON) and print, as JSON, every variable name they looked up. Used by test_packaging.py to check
that each variable a deployment file sets is one the app reads (a misspelt name is otherwise
silently ignored)."""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import MutableMapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class RecordingEnviron(MutableMapping):
    """os.environ's mapping, remembering every name looked up by name."""

    def __init__(self, values: dict[str, str]):
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, name):
        self.read.add(name)
        return self._values[name]

    def __contains__(self, name):
        self.read.add(name)
        return name in self._values

    def get(self, name, default=None):
        self.read.add(name)
        return self._values.get(name, default)

    def __setitem__(self, name, value):
        self._values[name] = value

    def __delitem__(self, name):
        del self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    # Whole-mapping reads (a library copying the environment for a subprocess) look nothing up.
    def copy(self):
        return dict(self._values)

    def items(self):
        return self._values.items()

    def keys(self):
        return self._values.keys()

    def values(self):
        return self._values.values()


def main() -> None:
    given = json.load(sys.stdin)
    recording = RecordingEnviron({"PATH": os.environ.get("PATH", ""), **given})
    os.environ = recording  # noqa: B003 (the point: every lookup goes through the recorder)
    sys.path.insert(0, str(ROOT))
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "bountyexpo.settings"
    django.setup()
    runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    print(json.dumps(sorted(recording.read)))


if __name__ == "__main__":
    main()
