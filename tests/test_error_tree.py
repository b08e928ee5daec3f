"""The error tree drawn in `ledger/errors.py` is the tree of classes, no more and no less."""

from __future__ import annotations

import importlib
import pkgutil
import re

import ledger.errors
from ledger.errors import AutostampError

PACKAGES = ("ledger", "rules", "streams", "publisher_api", "webhooks", "autostamp")
_BRANCH = re.compile(r"^    ([│ ]*)[├└]── ([\w.]+)")


def drawn_parents() -> dict[str, str]:
    """Each class of the drawing, by short name, with the short name of its parent."""
    parents: dict[str, str] = {}
    stack = ["AutostampError"]
    for line in (ledger.errors.__doc__ or "").splitlines():
        match = _BRANCH.match(line)
        if match is None:
            continue
        depth = len(match.group(1)) // 4 + 1
        name = match.group(2).rsplit(".", 1)[-1]
        del stack[depth:]
        parents[name] = stack[-1]
        stack.append(name)
    return parents


def actual_parents() -> dict[str, str]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            skipped = (".migrations", "__main__", "autostamp.bench")
            if not any(part in info.name for part in skipped):
                importlib.import_module(info.name)
    found: dict[str, str] = {}
    pending = [AutostampError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in PACKAGES:
                found[sub.__name__] = cls.__name__
                pending.append(sub)
    return found


def test_every_error_class_is_drawn_under_its_parent_and_nothing_else_is() -> None:
    assert drawn_parents() == actual_parents()
