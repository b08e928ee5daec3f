"""Which lines of a backtest's input can matter to one program, decided before validation.

Full validation costs about 10 µs a transaction; most lines of a bank's file are at merchants
a program never looks at. A line is **skipped** unvalidated when its decoded JSON proves that
it can neither qualify, nor be a near miss, nor undo a qualifying purchase:

- it is a JSON object whose `type` is not `refund` or `reversal`, and
- the program is found through an index (`merchant_ids`, else `brand_ids`, else `mccs`: the
  matcher's `INDEXED_FIELDS`), and the line's merchant holds, in that field, a string the
  program does not name (or, for `brand_id`, no brand at all).

Validation keeps a string exactly as the JSON spells it, so such a line, if valid, is not
reached by the matcher's index: it qualifies for nothing and is no near miss, and the planner
forgets it. An undo is kept when its `(member_id, original_id)` is an `id` or `purchase_id` of
a kept line (whichever comes first in the input): only a remembered, hence kept, event or a
kept purchase id can link an undo to a stamp. The ledger records an undo once per member and
id, whatever it names, so an undo that shares its `id` with a kept undo is kept too: it may
come first. A line that meets every condition of the program but the amount or the time is
at one of its merchants, so it is never skipped: the ledger remembers it for its purchase.
Every other line is validated; one that fails is refused with its reason. A skipped line is
never validated, so it is never counted refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from rules import (
    CardTransaction,
    InvalidTransaction,
    ProgramDefinition,
    parse_transaction,
)

UNDO_TYPES = frozenset({"refund", "reversal"})
# The merchant field each rule field of the matcher's index reads.
_MERCHANT_FIELD = {"merchant_ids": "id", "brand_ids": "brand_id", "mccs": "mcc"}
Name = tuple[str, str]


@dataclass
class Selection:
    """The valid transactions that matter to the program, in input order, and the rest."""

    transactions: list[tuple[int, CardTransaction]] = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    refused: int = 0
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (where, reason), first few


@dataclass(frozen=True)
class Sieve:
    """The necessary condition of one program: the merchant field it is indexed on, and keys."""

    merchant_field: str | None
    keys: frozenset[str]

    @classmethod
    def of(cls, program: ProgramDefinition) -> Sieve:
        for rule_field, merchant_field in _MERCHANT_FIELD.items():
            keys = getattr(program.rules, rule_field)
            if keys is not None:
                return cls(merchant_field, frozenset(keys))
        return cls(None, frozenset())  # the program names no merchant: every line may matter

    def skips(self, item: object) -> bool:
        """Whether the decoded line provably cannot matter (undos are judged by name)."""
        if self.merchant_field is None or not isinstance(item, dict):
            return False
        merchant = item.get("merchant")
        if item.get("type") in UNDO_TYPES or not isinstance(merchant, dict):
            return False
        value = merchant.get(self.merchant_field)
        if value is None:
            return self.merchant_field == "brand_id"
        return isinstance(value, str) and value not in self.keys


def _names(item: dict[str, Any]) -> Iterator[Name]:
    member, own = item.get("member_id"), item.get("id")
    purchase = item.get("purchase_id")
    purchase = own if purchase is None else purchase
    if isinstance(member, str):
        yield from ((member, n) for n in (own, purchase) if isinstance(n, str))


def _undo_name(item: object) -> Name | None:
    """An undo's (member, original id), or None when the line is no undo or names nothing."""
    if not isinstance(item, dict) or item.get("type") not in UNDO_TYPES:
        return None
    member, original = item.get("member_id"), item.get("original_id")
    if isinstance(member, str) and isinstance(original, str):
        return member, original
    return None  # refused by validation: kept, to be counted


def _id(item: object) -> object:
    return item.get("id") if isinstance(item, dict) else None


class _Selector:
    def __init__(self, sieve: Sieve, sift: bool, shown: int) -> None:
        self.sieve, self.sift, self.shown = sieve, sift, shown
        self.selection = Selection()
        self.kept_names: set[Name] = set()
        self.waiting: dict[Name, list[tuple[int, str, bytes, object]]] = defaultdict(list)
        self.kept_undo_ids: set[object] = set()

    def line(self, where: str, raw: bytes) -> None:
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.selection.read += 1
            self._validate(where, raw, self.selection.read)
            return
        self.item(where, decoded, raw)

    def item(self, where: str, item: object, raw: bytes) -> None:
        self.selection.read += 1
        seq = self.selection.read
        if self.sieve.skips(item):
            self.selection.skipped += 1
            if not self.sift:
                self._validate(where, raw, seq, count_refusal=False)
            return
        name = _undo_name(item)
        if name is not None and name not in self.kept_names and self.sieve.merchant_field:
            self.waiting[name].append((seq, where, raw, _id(item)))
            return
        if name is not None:
            self.kept_undo_ids.add(_id(item))
        if isinstance(item, dict) and name is None:
            self._keep_names(item)
        self._validate(where, raw, seq)

    def _keep_names(self, item: dict[str, Any]) -> None:
        for name in _names(item):
            if name not in self.kept_names:
                self.kept_names.add(name)
                for seq, where, raw, undo_id in self.waiting.pop(name, ()):
                    self.kept_undo_ids.add(undo_id)
                    self._validate(where, raw, seq)

    def finish(self) -> Selection:
        # Undos whose purchase no kept line names are inert, but for their id: the ledger
        # records an undo id once, so one that shares a kept undo's id is kept too.
        for waiting in self.waiting.values():
            for seq, where, raw, undo_id in waiting:
                if undo_id in self.kept_undo_ids:
                    self._validate(where, raw, seq)
                    continue
                self.selection.skipped += 1
                if not self.sift:
                    self._validate(where, raw, seq, count_refusal=False)
        self.waiting.clear()
        self.selection.transactions.sort(key=lambda pair: pair[0])
        return self.selection

    def _validate(self, where: str, raw: bytes, seq: int, count_refusal: bool = True) -> None:
        try:
            tx = parse_transaction(raw)
        except InvalidTransaction as exc:
            if count_refusal:
                self.selection.refused += 1
                if len(self.selection.reasons) < self.shown:
                    self.selection.reasons.append((where, str(exc)))
            return
        self.selection.transactions.append((seq, tx))


def select(
    lines: Iterable[tuple[str, bytes]],
    program: ProgramDefinition,
    sift: bool = True,
    shown: int = 5,
) -> Selection:
    """The transactions of `lines` that matter to `program`, validated; see the module docstring.

    With `sift` false every line is validated, and the lines the sieve would skip are kept
    when valid (they change nothing) and not counted when not: the reference the fast path is
    tested against.
    """
    selector = _Selector(Sieve.of(program), sift, shown)
    for where, raw in lines:
        selector.line(where, raw)
    return selector.finish()
