"""Which partitions a worker holds, read from what its consumer logs (the benchmark and the
fault tests watch workers this way)."""

from streams.consumer import held_partitions

LOG = """\
[INFO] Revoking previously assigned partitions set() for group bench-1-programs
[INFO] partitions assigned: tx[0], tx[1], tx[2], tx[3]
[INFO] partitions revoked: tx[1], tx[3]
[INFO] partitions assigned: none
"""


def test_incremental_assignments_and_revocations_add_up() -> None:
    assert held_partitions(LOG) == {"tx[0]", "tx[2]"}


def test_a_worker_that_lost_its_partitions_holds_none() -> None:
    log = LOG + "[WARNING] partitions lost (their batches are read again elsewhere): tx[0], tx[2]\n"

    assert held_partitions(log) == set()


def test_a_worker_not_yet_in_the_group_holds_none() -> None:
    assert held_partitions("[INFO] starting\n") == set()
