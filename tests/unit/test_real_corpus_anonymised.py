"""The real-data corpus stays anonymised: every phone number in it is one of our fakes.

``tests/samples/real/anonymise.py`` defines what a phone number is (any run of 7+ digits that
is not a Unix time, part of a hex id, a decimal number or a counter) and what its fakes look
like; a file added without running it through the anonymiser fails here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1] / "samples" / "real"


def _load_anonymise():
    spec = importlib.util.spec_from_file_location("real_corpus_anonymise", REAL / "anonymise.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


anonymise = _load_anonymise()
# Every data file and the README; the two scripts are tools, not samples.
CORPUS = sorted(p for p in REAL.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1251")  # a Master.csv with CP1251 caller names


def test_the_corpus_has_files():
    assert len([p for p in CORPUS if p.suffix != ".md"]) >= 15


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REAL)))
def test_every_phone_number_is_a_fake(path: Path):
    text = _text(path)
    leftovers = [
        run.plus + run.digits
        for run in anonymise.phone_runs(text)
        if not anonymise.is_fake(run.digits, run.plus)
    ]
    leftovers += [
        m.group() for m in anonymise.dashed_runs(text) if not anonymise.is_fake_dashed(*m.groups())
    ]
    assert not leftovers, f"not anonymised (run anonymise.py): {len(leftovers)} number(s)"


@pytest.mark.parametrize(
    "real",
    ["+79161234567", "79161234567", "89161234567", "9161234567", "+14155550123", "2125551234",
     "+4986517174963", "+380997717356", "00440123123", "86630648", "3214759", "%2B79161234567"],
)  # fmt: skip
def test_fakes_keep_the_shape_and_are_recognised(real: str):
    fake = anonymise.Anonymiser().text(f'"src":"{real}"')
    [run] = list(anonymise.phone_runs(fake))
    assert anonymise.is_fake(run.digits, run.plus)
    assert len(run.plus + run.digits) == len(real)
    plus = real[: len(run.plus)]
    _, real_prefix, _ = anonymise._shape(real[len(plus) :], plus)
    _, fake_prefix, _ = anonymise._shape(run.digits, run.plus)
    assert (run.plus, fake_prefix) == (plus, real_prefix)  # "+7" stays "+7", "8" stays "8"
    assert run.plus + run.digits != real


def test_the_same_number_gets_the_same_fake_in_every_spelling_and_run():
    text = "+79161234567 79161234567 89161234567 9161234567 SIP/79161234567-0000001a"
    once = anonymise.Anonymiser().text(text)
    assert once == anonymise.Anonymiser().text(text)
    bodies = {run.digits[-10:] for run in anonymise.phone_runs(once)}
    assert len(bodies) == 1
    assert next(iter(bodies)).startswith("9990")


def test_times_ids_and_counters_are_not_phone_numbers():
    text = (
        '"1497952162.13","start_uepoch":"1515666344534355","uduration":"70959914",'
        '"CALL_ID":"11018129443EB80D.1754478570.11438214","duration":0.5951778888702393,'
        '"member_id":"a223c6b3710f85df22e9377d6c4f7553","OPPORTUNITY":"1000000.00"'
    )
    assert list(anonymise.phone_runs(text)) == []


def test_a_dashed_nanp_number_becomes_555_01xx():
    fake = anonymise.Anonymiser().text('"""Client"" <791-445-9811>"')
    [m] = list(anonymise.dashed_runs(fake))
    assert anonymise.is_fake_dashed(*m.groups())
