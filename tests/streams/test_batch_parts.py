"""A fetched batch is applied and acknowledged in parts bounded by the bytes of their messages."""

from streams.consumer import parts


def test_small_messages_make_one_part() -> None:
    messages = [b"x" * 400] * 2000

    assert [len(p) for p in parts(messages, len, 1024 * 1024)] == [2000]


def test_large_messages_are_split_in_order_without_passing_the_limit() -> None:
    messages = [bytes([n]) * 40 for n in range(10)]

    split = list(parts(messages, len, 100))

    assert [len(p) for p in split] == [2, 2, 2, 2, 2]
    assert [m for p in split for m in p] == messages


def test_a_message_above_the_limit_is_a_part_of_its_own() -> None:
    messages = [b"a", b"b" * 500, b"c"]

    assert list(parts(messages, len, 100)) == [[b"a"], [b"b" * 500], [b"c"]]


def test_nothing_fetched_makes_no_part() -> None:
    assert list(parts([], len, 100)) == []
