"""Ctrl-C during a cleanup that must not stop half-way (``interrupts_held``, around ``stack_down``):
held until the block is done, then raised, wherever it lands."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from salespulse.stack_processes import interrupts_held


def busy(seconds: float) -> None:
    """Python code running (not a sleep): the interpreter checks for signals all along."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_ctrl_c_in_the_block_is_raised_at_its_end() -> None:
    done: list[str] = []

    def cleanup() -> None:
        with interrupts_held():
            signal.raise_signal(signal.SIGINT)
            done.append("the rest of the block")

    with pytest.raises(KeyboardInterrupt):
        cleanup()
    assert done == ["the rest of the block"]


def test_a_ctrl_c_from_another_thread_during_the_block_is_raised_at_its_end() -> None:
    sent = threading.Event()
    done: list[str] = []

    def ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    def cleanup() -> None:
        with interrupts_held():
            threading.Thread(target=ctrl_c).start()
            # Until the signal was sent, however slowly the other thread runs.
            assert sent.wait(30), "no Ctrl-C sent"
            busy(0.05)
            done.append("the rest of the block")

    with pytest.raises(KeyboardInterrupt):
        cleanup()
    assert done == ["the rest of the block"]


def test_a_ctrl_c_from_another_thread_is_raised_once_wherever_it_lands() -> None:
    """As from the terminal, the signal comes at a moment of its own: in the block, while the
    handler is put back, or just after. Each is raised, never in the middle of the block; none
    is lost. (A loaded machine moves the moments around, not the outcome.)"""
    rng = random.Random(0)
    tries = 100
    raised = 0
    for _ in range(tries):
        go = threading.Event()
        delay = rng.uniform(0, 0.004)

        def ctrl_c(delay: float = delay, go: threading.Event = go) -> None:
            go.wait()
            time.sleep(delay)
            os.kill(os.getpid(), signal.SIGINT)

        sender = threading.Thread(target=ctrl_c)
        sender.start()
        block_done = False
        try:
            with interrupts_held():
                go.set()
                busy(0.002)
                block_done = True
            sender.join()
            busy(0.05)  # sent by now: raised here if it came after the block
        except KeyboardInterrupt:
            assert block_done, "raised in the middle of the block"
            raised += 1
        sender.join()
    assert raised == tries
