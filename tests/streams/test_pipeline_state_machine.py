"""The whole pipeline as a state machine (FAULTS.md 7.5): a real worker process, broker and ledger.

Each example has its own programs, merchants, members and event ids (a prefix), so examples
share one worker process, broker and database without meeting. Steps:

- enroll a member in a program (most are enrolled before the first purchase);
- buy: one to four purchases (an auth and a clearing sharing a purchase id, a lone clearing,
  or a lone auth whose clearing a later step sends), each with zero to two refunds or
  reversals naming its purchase id, auth or clearing, all their events in any order;
- clear an earlier lone auth; undo an earlier purchase; redeliver an event at a new offset;
- SIGKILL the worker while it may be stamping a burst just produced, and start a new one;
- lower a program's threshold, edit it otherwise (threshold raised, other merchants, reward
  type, daily cap, time zone, partial-refund policy, resumed) or pause it: each a new
  version on the programs topic;
- send a second clearing of an earlier purchase, later (a split shipment); send another
  member's purchase under the ids of an earlier one (a second bank reusing ids);
- unenroll a member and enroll them again; erase a member, whose later events still count.

A step ends once the worker's consumer group has committed the whole transactions topic and
the ledger holds the program versions sent. The worker commits an offset only after the ledger
committed its batch, so the ledger then holds every event produced: a worker that committed
earlier would show here as a difference from the model. Then, after every step:

- `ledger.reconcile` finds no difference (and `autostamp reconcile --json`, run as an operator
  would, at the end of each example);
- one stamp per collection and purchase, one reward per collection and cycle;
- every collection's `unredeemed_purchases` is below its program's threshold;
- every collection of the example is what both reference models (`tests.ledger.model`, and
  `tests.ledger.contract_model`, written from the contract alone) say, fed the events in the
  order they were produced, redeliveries included: its counters
  (unredeemed, owed, cycle), each stamp (status, the event that made it, the undo that voided
  it) and each reward (cycle, amount, currency, the event it pays for).

The model stays exact across program edits. A batch is matched against the programs the
ledger holds when it is applied (invariant 7), and a step waits until the ledger holds an
edit, so the model takes each edit at the same point of the event order as the worker; events
of one member keep their order (one partition), and members share nothing. A raised threshold,
a merchant list, a pause and a resume then mean the same to both. A lowered threshold rewards
at once (invariant 8): the model settles each of the program's collections as
docs/stamping.md says, down to which purchase each reward pays for.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from ledger.memory import Enrollment
from rules import CardTransaction, ProgramDefinition
from tests.ledger.contract_model import ContractModel
from tests.ledger.histories import T0, program
from tests.ledger.model import Model
from tests.ledger.test_planner_against_model import model_state
from tests.streams.pipeline import QUICK, Pipeline
from tests.streams.pipeline_examples import (
    HOURS,
    MAX_THRESHOLD,
    MEMBERS,
    MERCHANT,
    PROGRAM,
    PROGRAMS,
    TIP,
    UNDO,
    Till,
    describe,
)
from tests.streams.worker import WorkerProcess, worker_environment
from tests.support.reconciling import assert_reconciled

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

# Budgets of the slow steps. A restart costs a rejoin of both consumer groups (seconds); an
# edit, a round through the programs agent (about half a second).
KILLS_PER_EXAMPLE = 1
EDITS_PER_EXAMPLE = 6
ERASURES_PER_EXAMPLE = 1
ZONES = ("UTC", "Europe/London", "Pacific/Auckland", "America/Los_Angeles")
FIXED = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}

SETTINGS = settings(max_examples=8, stateful_step_count=25, deadline=None)


@pytest.fixture
def pipeline(
    engine: Engine, database_url: str, kafka_bootstrap: str, topics: TopicSettings, tmp_path: Path
) -> Iterator[Pipeline]:
    env = worker_environment(database_url, kafka_bootstrap, topics) | QUICK
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    pipeline = Pipeline(worker, kafka_bootstrap, topics, database_url)
    try:
        yield pipeline
    finally:
        worker.stop()
        pipeline.close()


class PipelineMachine(RuleBasedStateMachine):
    """One example's programs and members, driven through the pipeline and the model alike."""

    def __init__(self, pipeline: Pipeline, prefix: str) -> None:
        super().__init__()
        self.pipeline, self.prefix = pipeline, prefix
        if not pipeline.worker.running():  # a failed example may have left it dead
            pipeline.worker.start()
        pipeline.forget_other_examples()
        self.till = Till(prefix)
        self.programs = {self._program_id(role): self._program(role) for role in PROGRAMS}
        self.model = Model(self.programs, ())
        self.contract = ContractModel(self.programs, ())
        self.sent: list[CardTransaction] = []
        self.kills = self.edits = self.erasures = 0
        self.erased: set[str] = set()
        pipeline.apply(self.programs.values())

    # --- steps --------------------------------------------------------------------------

    @initialize(data=st.data())
    def enroll_most_members(self, data: st.DataObject) -> None:
        for member, program_id in self._pairs():
            if data.draw(st.integers(0, 3), label=f"{member} in {program_id} (0: not yet)"):
                self._enroll(member, program_id, T0 - timedelta(days=1))

    @precondition(
        lambda self: any(
            p not in {(c.member, c.program_id) for c in self.model.collections}
            and p[0] not in self.erased
            for p in self._pairs()
        )
    )
    @rule(data=st.data())
    def enroll(self, data: st.DataObject) -> None:
        """A member joins late: only purchases from now on count."""
        enrolled = {(c.member, c.program_id) for c in self.model.collections}
        pairs = [p for p in self._pairs() if p not in enrolled and p[0] not in self.erased]
        self._enroll(*data.draw(st.sampled_from(pairs)), self.till.clock)

    @rule(data=st.data(), purchases=st.integers(1, 4))
    def buy(self, data: st.DataObject, purchases: int) -> None:
        events = {describe(e): e for _ in range(purchases) for e in self.till.purchase(data)}
        order = data.draw(st.permutations(list(events)), label="sent in this order")
        self._send([events[e] for e in order])

    @precondition(lambda self: self.till.authorised)
    @rule(data=st.data(), tip=TIP)
    def clear(self, data: st.DataObject, tip: int) -> None:
        """The clearing of a purchase whose auth came in an earlier step."""
        bought = data.draw(st.sampled_from(self.till.authorised))
        self.till.authorised.remove(bought)
        assert bought.clearing is not None
        self._send([self.till.event(bought, bought.clearing, "clearing", bought.amount + tip)])

    @precondition(lambda self: self.till.purchases)
    @rule(data=st.data(), undo=UNDO)
    def undo(self, data: st.DataObject, undo: tuple[str, str, int]) -> None:
        self._send([self.till.undo(data.draw(st.sampled_from(self.till.purchases)), *undo)])

    @precondition(lambda self: self.till.purchases)
    @rule(data=st.data(), hours=HOURS)
    def ship_again(self, data: st.DataObject, hours: int) -> None:
        """A second clearing of an earlier purchase, later: it counts only where the first
        event of the purchase could."""
        bought = data.draw(st.sampled_from(self.till.purchases))
        self._send([self.till.second_shipment(bought, hours)])

    @precondition(lambda self: self.till.purchases)
    @rule(data=st.data(), hours=HOURS)
    def reuse_ids(self, data: st.DataObject, hours: int) -> None:
        """Another member's purchase under the ids of an earlier one: a second bank's feed."""
        bought = data.draw(st.sampled_from(self.till.purchases))
        others = [m for m in self._members() if m != bought.member]
        member = data.draw(st.sampled_from(others), label="reused by")
        self._send(self.till.under_their_ids(bought, member, hours))

    @precondition(lambda self: self._live_collections())
    @rule(data=st.data())
    def leave_and_enroll_again(self, data: st.DataObject) -> None:
        """A member unenrolls, then enrolls again: purchases made before count for neither."""
        collection_id = data.draw(st.sampled_from(self._live_collections()))
        c = self.model.collection(collection_id)
        self.pipeline.unenroll(collection_id, self.till.clock)
        self.model.unenroll(collection_id, self.till.clock)
        self.contract.unenroll(collection_id, self.till.clock)
        self.till.clock += timedelta(minutes=30)
        again = f"{collection_id}_{len(self.model.collections)}"
        self._enroll(c.member, c.program_id, self.till.clock, again)

    @precondition(lambda self: self.erasures < ERASURES_PER_EXAMPLE)
    @precondition(lambda self: any(c.member not in self.erased for c in self.model.collections))
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        """A member is erased: their collections end; their later refunds still void."""
        members = sorted({c.member for c in self.model.collections} - self.erased)
        member = data.draw(st.sampled_from(members), label="erased")
        self.pipeline.erase(member, self.till.clock)
        self.model.erase(member, self.till.clock)
        self.contract.erase(member, self.till.clock)
        self.erased.add(member)
        self.erasures += 1

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """An event already sent, again, at a new offset."""
        sent = {describe(e): e for e in self.sent}
        event = sent[data.draw(st.sampled_from(list(sent)), label="again")]
        self.pipeline.produce([event])
        self.model.apply([event])
        self.contract.apply([event])
        self.pipeline.wait_until_applied()

    @precondition(lambda self: self.kills < KILLS_PER_EXAMPLE)
    @rule(data=st.data(), purchases=st.integers(0, 6), after_s=st.sampled_from([0, 0.1, 0.3]))
    def kill_and_restart(self, data: st.DataObject, purchases: int, after_s: float) -> None:
        """SIGKILL while the worker may be stamping a burst just produced; then a new worker."""
        events = [e for _ in range(purchases) for e in self.till.purchase(data)]
        self.pipeline.produce(events)
        time.sleep(after_s)
        self.pipeline.worker.kill()
        self.kills += 1
        self.pipeline.worker.start()
        self._record(events)
        self.pipeline.wait_until_applied()

    @precondition(lambda self: self.edits < EDITS_PER_EXAMPLE)
    @rule(data=st.data())
    def edit_program(self, data: st.DataObject) -> None:
        """A new version: its threshold raised, other merchants, another reward type, daily
        cap, time zone or partial-refund policy, or active again."""
        current = self.programs[self._program_id(data.draw(PROGRAM))]
        threshold = current.qualifying_threshold
        edits = ["merchants", "reward", "cap", "timezone", "partial_refunds"]
        edits += ["raise"] if threshold < MAX_THRESHOLD else []
        edits += ["resume"] if current.status == "paused" else []
        edit = data.draw(st.sampled_from(edits))
        rules = current.rules.model_dump(mode="json")
        if edit == "raise":
            raised = data.draw(st.integers(threshold + 1, MAX_THRESHOLD))
            self._edit(current, qualifying_threshold=raised)
        elif edit == "merchants":
            keys = data.draw(st.lists(MERCHANT, min_size=1, max_size=3, unique=True))
            self._edit(
                current, rules=rules | {"merchant_ids": [self.till.merchant(k) for k in keys]}
            )
        elif edit == "reward":
            refunds = current.reward_config.type == "refund"
            self._edit(current, reward_config=FIXED if refunds else {"type": "refund"})
        elif edit == "cap":
            cap = data.draw(st.sampled_from([None, 1, 2]), label="daily cap")
            self._edit(current, rules=rules | {"daily_cap_per_member": cap})
        elif edit == "timezone":
            zone = data.draw(st.sampled_from(ZONES), label="time zone")
            self._edit(current, rules=rules | {"timezone": zone})
        elif edit == "partial_refunds":
            flipped = "void" if rules["partial_refunds"] == "keep" else "keep"
            self._edit(current, rules=rules | {"partial_refunds": flipped})
        else:
            self._edit(current, status="active")

    @precondition(lambda self: self.edits < EDITS_PER_EXAMPLE)
    @precondition(lambda self: any(p.qualifying_threshold > 1 for p in self.programs.values()))
    @rule(data=st.data())
    def lower_threshold(self, data: st.DataObject) -> None:
        """The ledger must reward at once every collection whose count reaches the new one."""
        lowerable = [p.id for p in self.programs.values() if p.qualifying_threshold > 1]
        counting = {c.program_id for c in self.model.collections if c.progress > 0}
        # A program with stamps to settle if there is one: one without shows little.
        candidates = [p for p in lowerable if p in counting] or lowerable
        current = self.programs[data.draw(st.sampled_from(candidates))]
        lowered = data.draw(st.integers(1, current.qualifying_threshold - 1))
        self._edit(current, qualifying_threshold=lowered)

    @precondition(lambda self: self.edits < EDITS_PER_EXAMPLE)
    @precondition(lambda self: any(p.status == "active" for p in self.programs.values()))
    @rule(data=st.data())
    def pause(self, data: st.DataObject) -> None:
        """A paused program stamps nothing new; undos of its stamps still apply."""
        active = [p.id for p in self.programs.values() if p.status == "active"]
        self._edit(self.programs[data.draw(st.sampled_from(active))], status="paused")

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def reconcile_finds_no_difference(self) -> None:
        assert self.pipeline.differences() == []

    @invariant()
    def no_purchase_stamps_a_collection_twice_and_no_cycle_pays_twice(self) -> None:
        twice = "SELECT collection_id, {key} FROM {table} GROUP BY 1, 2 HAVING count(*) > 1"
        assert self.pipeline.rows(twice.format(key="purchase_id", table="stamps")) == []
        assert self.pipeline.rows(twice.format(key="cycle", table="rewards")) == []

    @invariant()
    def every_count_is_below_its_threshold(self) -> None:
        at_threshold = self.pipeline.rows(
            "SELECT c.id, c.unredeemed_purchases, p.qualifying_threshold "
            "FROM stamp_collections c JOIN programs p ON p.id = c.program_id "
            "WHERE c.unredeemed_purchases >= p.qualifying_threshold"
        )
        assert at_threshold == []

    @invariant()
    def the_ledger_holds_what_the_model_holds(self) -> None:
        assert self._ledger_state() == model_state(self.model)

    @invariant()
    def the_ledger_holds_what_the_contract_says(self) -> None:
        assert self._ledger_state() == self.contract.state()

    def teardown(self) -> None:
        if sys.exc_info()[0] is None:  # else a step failed: its error is the one to report
            assert_reconciled(self.pipeline.database_url)

    # --- this example's names, purchases and edits --------------------------------------

    def _program_id(self, role: str) -> str:
        return f"lp_{self.prefix}_{role}"

    def _program(self, role: str) -> ProgramDefinition:
        spec = dict(PROGRAMS[role])
        merchants = tuple(self.till.merchant(m) for m in spec.pop("merchants"))
        threshold, reward = spec.pop("threshold"), spec.pop("reward", None)
        return program(self._program_id(role), threshold, reward, merchants, **spec)

    def _pairs(self) -> list[tuple[str, str]]:
        return [(f"{self.prefix}_{m}", self._program_id(r)) for m in MEMBERS for r in PROGRAMS]

    def _members(self) -> list[str]:
        return [f"{self.prefix}_{m}" for m in MEMBERS]

    def _live_collections(self) -> list[str]:
        return [c.id for c in self.model.collections if c.live and c.member not in self.erased]

    def _enroll(
        self, member: str, program_id: str, at: datetime, collection_id: str | None = None
    ) -> None:
        collection_id = collection_id or f"sc_{program_id}_{member}"
        self.pipeline.rows(
            "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
            "VALUES (:id, :program, :member, :at)",
            id=collection_id,
            program=program_id,
            member=member,
            at=at,
        )
        enrollment = Enrollment(collection_id, program_id, member, at)
        self.model.enroll(enrollment)
        self.contract.enroll(enrollment)

    def _send(self, events: Sequence[CardTransaction]) -> None:
        self.pipeline.produce(events)
        self._record(events)
        self.pipeline.wait_until_applied()

    def _record(self, events: Sequence[CardTransaction]) -> None:
        self.model.apply(events)
        self.contract.apply(events)
        self.sent += events

    def _edit(self, current: ProgramDefinition, **changes: Any) -> None:
        """A new version of the program, applied through the topic, then to the model."""
        edited = ProgramDefinition.model_validate(
            {**current.model_dump(mode="json"), **changes, "version": current.version + 1}
        )
        self.pipeline.apply([edited])
        self.edits += 1
        self.programs[edited.id] = edited
        self.model.apply_program(edited, self.till.clock)
        self.contract.apply_program(edited, self.till.clock)

    def _ledger_state(self) -> dict[str, Any]:
        """This example's collections as `model_state` shows the model's."""
        return self.pipeline.collections_state([c.id for c in self.model.collections])


def test_the_pipeline_keeps_every_invariant_through_crashes_redeliveries_and_edits(
    pipeline: Pipeline,
) -> None:
    examples = itertools.count()

    class OneExample(PipelineMachine):
        def __init__(self) -> None:
            super().__init__(pipeline, f"x{next(examples)}")

    run_state_machine_as_test(OneExample, settings=SETTINGS)
