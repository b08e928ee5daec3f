"""Finding the programs a card transaction qualifies for through indexes, not a scan."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter

from rules.conditions import Condition, compile_conditions
from rules.explain import Decision, decide
from rules.programs import ProgramDefinition, ProgramStatus
from rules.transactions import CardTransaction, TransactionType

# Rule fields a program can be indexed under, most selective first: a program naming
# merchants and MCCs is found through its merchants and has its MCCs checked.
INDEXED_FIELDS = ("merchant_ids", "brand_ids", "mccs")
# Conditions the events of one purchase may meet differently: an auth before the tip is
# added, or a minute before the hour its clearing falls in. An event that meets every other
# condition of a program belongs to a purchase the program may count (`Matcher.judge`).
# The window stands for `status` here: the indexes hold active programs only.
MAY_DIFFER_WITHIN_A_PURCHASE = frozenset({"status", "min_amount", "max_amount", "days_of_week"})

Check = Callable[[CardTransaction], bool]
# What the indexes hold per program: the checks left once the index has found it (bound
# methods of plain objects, so the hot loop touches no pydantic model), split into those
# every event of a purchase meets alike and those its events may meet differently, and
# the program. A bare tuple, because every object the hot loop visits is a likely cache
# miss at 100k.
Entry = tuple[tuple[Check, ...], tuple[Check, ...], ProgramDefinition]
Group = tuple[Entry, ...]
_BY_ID = attrgetter("id")


@dataclass(frozen=True, slots=True)
class _Compiled:
    program: ProgramDefinition
    conditions: tuple[Condition, ...]
    entry: Entry
    index_field: str | None
    keys: tuple[str, ...]


def _compile(program: ProgramDefinition) -> _Compiled:
    conditions = compile_conditions(program)
    field = next((f for f in INDEXED_FIELDS if getattr(program.rules, f) is not None), None)
    keys: tuple[str, ...] = getattr(program.rules, field) if field else ()
    # The index proves the condition it is keyed on, and the partition proves the type.
    proven = {field, "stamp_on"}
    left = [condition for condition in conditions if condition.field not in proven]
    alike = tuple(c.holds for c in left if c.field not in MAY_DIFFER_WITHIN_A_PURCHASE)
    differing = tuple(c.holds for c in left if c.field in MAY_DIFFER_WITHIN_A_PURCHASE)
    return _Compiled(program, conditions, (alike, differing, program), field, keys)


class _Index:
    """Programs by merchant, brand and MCC, plus the bucket of those that name none of them."""

    __slots__ = ("by_brand", "by_field", "by_mcc", "by_merchant", "keyless")

    def __init__(self) -> None:
        # Tuples, rebuilt for the keys a change touches, because iterating a tuple is the
        # cheapest thing the hot loop can do.
        self.by_merchant = _new_index()
        self.by_brand = _new_index()
        self.by_mcc = _new_index()
        self.by_field = dict(
            zip(INDEXED_FIELDS, (self.by_merchant, self.by_brand, self.by_mcc), strict=True)
        )
        self.keyless: Group = ()

    def add(self, compiled: _Compiled) -> None:
        if compiled.index_field is None:
            self.keyless = (*self.keyless, compiled.entry)
            return
        index = self.by_field[compiled.index_field]
        for key in compiled.keys:
            index[key] = (*index.get(key, ()), compiled.entry)

    def discard(self, compiled: _Compiled) -> None:
        if compiled.index_field is None:
            self.keyless = _without(self.keyless, compiled)
            return
        index = self.by_field[compiled.index_field]
        for key in compiled.keys:
            rest = _without(index[key], compiled)
            if rest:
                index[key] = rest
            else:
                del index[key]

    def groups(self, tx: CardTransaction) -> tuple[Group, ...]:
        merchant, brand = tx.merchant, tx.merchant.brand_id
        return (
            self.by_merchant.get(merchant.id, ()),
            () if brand is None else self.by_brand.get(brand, ()),
            self.by_mcc.get(merchant.mcc, ()),
            self.keyless,
        )


def _collect(index: _Index, tx: CardTransaction, found: list[ProgramDefinition]) -> bool:
    """Append the programs of `index` whose remaining checks all hold for `tx`; whether some
    program's checks hold but for those the events of one purchase may meet differently."""
    merchant, brand = tx.merchant, tx.merchant.brand_id
    related = False
    # Inlined rather than calling index.groups(): this loop is the worker's hot path.
    for candidates in (
        index.by_merchant.get(merchant.id, ()),
        () if brand is None else index.by_brand.get(brand, ()),
        index.by_mcc.get(merchant.mcc, ()),
        index.keyless,
    ):
        for alike, differing, program in candidates:
            for check in alike:
                if not check(tx):
                    break
            else:
                related = True
                for check in differing:
                    if not check(tx):
                        break
                else:
                    found.append(program)
    return related


def _new_index() -> dict[str | None, Group]:
    # The never-matching None key makes CPython keep each key's hash beside it (a dict of
    # only strings does not), so a probe that passes other keys does not read their string
    # objects: with 100,000 programs those reads are cache misses, and lookups get ~15% faster.
    return {None: ()}


def _without(group: Group, leaving: _Compiled) -> Group:
    return tuple(entry for entry in group if entry is not leaving.entry)


class Matcher:
    """The programs, indexed by merchant, brand and MCC, with a bucket for those naming none.

    Active programs are partitioned by the transaction type that stamps them, so an auth never
    looks at clearing programs; paused and archived ones are kept aside, only to be explained.
    Each program sits under one index, so a transaction costs a few dictionary lookups plus
    the remaining checks of the programs found, however many programs there are.
    Not thread-safe: update it from the thread that matches.
    """

    def __init__(self, programs: Iterable[ProgramDefinition] = ()) -> None:
        self._programs: dict[str, _Compiled] = {}
        self._stamping = {TransactionType.AUTH: _Index(), TransactionType.CLEARING: _Index()}
        self._dormant = _Index()
        for program in programs:
            self.upsert(program)

    def __len__(self) -> int:
        return len(self._programs)

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._programs

    def get(self, program_id: str) -> ProgramDefinition | None:
        """The program with this id, if the matcher holds it."""
        compiled = self._programs.get(program_id)
        return None if compiled is None else compiled.program

    def upsert(self, program: ProgramDefinition) -> None:
        """Add a program, or replace the one with the same id."""
        self.remove(program.id)
        compiled = _compile(program)
        self._programs[program.id] = compiled
        self._home(program).add(compiled)

    def remove(self, program_id: str) -> bool:
        """Forget a program; return whether it was there."""
        compiled = self._programs.pop(program_id, None)
        if compiled is not None:
            self._home(compiled.program).discard(compiled)
        return compiled is not None

    def match(self, tx: CardTransaction) -> list[ProgramDefinition]:
        """Programs the transaction stamps, by id; refunds and reversals never stamp."""
        index = self._stamping.get(tx.type)
        if index is None:
            return []
        found: list[ProgramDefinition] = []
        _collect(index, tx, found)
        if len(found) > 1:
            found.sort(key=_BY_ID)
        return found

    def qualifying(self, tx: CardTransaction) -> list[ProgramDefinition]:
        """Active programs the purchase event meets every condition of but the type, by id.

        An auth qualifies for a program that stamps on clearing when the clearing would.
        Refunds and reversals qualify for nothing.
        """
        return self.judge(tx)[0]

    def judge(self, tx: CardTransaction) -> tuple[list[ProgramDefinition], bool]:
        """The programs `tx` qualifies for (as `qualifying`), and whether it belongs to a
        purchase some active program may count: it meets every condition of one but those
        the events of a purchase may meet differently (`MAY_DIFFER_WITHIN_A_PURCHASE`).

        The ledger remembers such an event as part of its purchase, so that a refund naming
        it still finds the purchase: an auth of £18 whose clearing of £21 meets a minimum of
        £20, say.
        """
        if tx.type not in self._stamping:
            return [], False
        found: list[ProgramDefinition] = []
        related = False
        for index in self._stamping.values():
            related = _collect(index, tx, found) or related
        if len(found) > 1:
            found.sort(key=_BY_ID)
        return found, related

    def explain(self, tx: CardTransaction) -> list[Decision]:
        """A decision for each program the indexes lead to, by id; empty when none was reached."""
        indexes = (*self._stamping.values(), self._dormant)
        reached = [
            program for index in indexes for group in index.groups(tx) for _, _, program in group
        ]
        reached.sort(key=_BY_ID)
        return [decide(p.id, self._programs[p.id].conditions, tx) for p in reached]

    def _home(self, program: ProgramDefinition) -> _Index:
        if program.status is not ProgramStatus.ACTIVE:
            return self._dormant
        return self._stamping[TransactionType(program.rules.stamp_on)]
