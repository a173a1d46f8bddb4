"""The minute book: what it keeps between reads, and when it asks for a manager in full."""

from __future__ import annotations

from queries.minute_book import Group, MinuteBook, fingerprint

CUT = {"msk": 600}
LATER = {"msk": 900}


def group(minute: int, digest: int, value: int = 1, department: str = "msk") -> Group:
    return Group(department, minute, digest, (value,))


def test_groups_before_the_cut_are_checked_by_the_servers_fingerprint() -> None:
    book = MinuteBook()
    book.fill("ivanova", [group(540, 11), group(300, 13), group(660, 17)], CUT)
    assert book.groups("ivanova") == [group(300, 13), group(540, 11), group(660, 17)]

    # The cut moves on: 660 is now before it. The server's fingerprint of everything before
    # the cut agrees with what the book holds, and the minutes from the cut on are taken.
    prints = {"ivanova": fingerprint([group(300, 13), group(540, 11), group(660, 17)])}
    stale, changed = book.advance(LATER, {"ivanova": [group(960, 19)]}, prints)
    assert (stale, changed) == (set(), {"ivanova"})
    held = [group(300, 13), group(540, 11), group(660, 17), group(960, 19)]
    assert book.groups("ivanova") == held

    # Nothing new: nothing changed.
    assert book.advance(LATER, {"ivanova": [group(960, 19)]}, prints) == (set(), set())

    # A late record changed a minute before the cut: the fingerprint differs, so the manager is
    # read in full again.
    late = {"ivanova": fingerprint([group(300, 13), group(540, 23, 2), group(660, 17)])}
    assert book.advance(LATER, {"ivanova": [group(960, 19)]}, late) == ({"ivanova"}, set())


def test_managers_appear_and_disappear() -> None:
    book = MinuteBook()
    book.fill("ivanova", [group(300, 13)], CUT)
    # Petrov has only recent minutes; Ivanova's only minute was attributed to someone else.
    stale, _ = book.advance(CUT, {"petrov": [group(700, 29)]}, {})
    assert stale == {"ivanova"}
    book.fill("ivanova", [], CUT)
    assert book.managers() == {"petrov"}
    # Minutes of a department the directory does not know are never before the cut.
    book.fill("sidorova", [group(10, 31, department="gone")], CUT)
    recent = {"sidorova": [group(10, 31, department="gone")]}
    assert book.advance(LATER, recent, {"petrov": 29}) == (set(), set())
