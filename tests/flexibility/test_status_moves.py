"""The three lifecycles of flexibility/lifecycle.py: each move is allowed by its table, the tables
are the ones the module's docstring shows, and no other module writes a status."""

from __future__ import annotations

import ast
import itertools
import re
from datetime import timedelta
from pathlib import Path

import pytest

from flexibility import lifecycle, services
from flexibility.lifecycle import ACTIVATION_TRANSITIONS, CAP_TRANSITIONS, SIGNAL_TRANSITIONS
from flexibility.models import Activation, Curtailment, Signal
from tests.conftest import T0

FLEXIBILITY = Path(lifecycle.__file__).parent
REDUCE = "reduce_consumption"


def _docstring_table(title: str) -> dict[str, frozenset[str]]:
    """The table under `title` in the module docstring: `a -> b, c` lines and `x, y: final`."""
    section = lifecycle.__doc__.split(f"\n{title} ", 1)[1].split("\n\n", 1)[0]
    table: dict[str, frozenset[str]] = {}
    for line in section.splitlines()[1:]:
        if " -> " in line:
            source, targets = line.strip().split(" -> ")
            table[source] = frozenset(targets.split(", "))
        elif line.strip().endswith(": final"):
            table.update(dict.fromkeys(line.strip().removesuffix(": final").split(", "), frozenset()))
    return table


@pytest.mark.parametrize(("title", "table"), [("Signal", SIGNAL_TRANSITIONS), ("Activation", ACTIVATION_TRANSITIONS),
                                              ("Curtailment", CAP_TRANSITIONS)])
def test_the_docstring_shows_the_tables_the_code_uses(title, table):
    assert _docstring_table(title) == {str(k): frozenset(map(str, v)) for k, v in table.items()}


@pytest.mark.parametrize(("model", "table", "first"), [
    (Signal, SIGNAL_TRANSITIONS, {"received"}), (Activation, ACTIVATION_TRANSITIONS, {"dispatching"}),
    (Curtailment, CAP_TRANSITIONS, set()),  # a planned cap comes back to planned for a retry
])
def test_every_status_is_in_its_table_and_only_the_first_is_never_entered(model, table, first):
    assert set(table) == set(model.Status.values)
    assert set(table) - set(itertools.chain.from_iterable(table.values())) == first


def _signals(brp, n: int) -> list[Signal]:
    return [services.receive_signal(brp, f"s-{i}", REDUCE).signal for i in range(n)]


@pytest.mark.parametrize("source", list(SIGNAL_TRANSITIONS))
def test_a_signal_moves_only_as_its_table_says(brp, source):
    moves = {Signal.Status.RELAYED: lifecycle.relay_signal, Signal.Status.EXPIRED: lifecycle.expire_signal,
             Signal.Status.CANCELLED: lifecycle.cancel_signal,
             Signal.Status.VETOED: lambda pk: lifecycle.veto_signal(pk, "grid works")}
    for signal, (target, move) in zip(_signals(brp, len(moves)), moves.items(), strict=True):
        Signal.objects.filter(pk=signal.pk).update(status=source, veto_reason="grid works")
        moved = move(signal.pk)
        signal.refresh_from_db()
        assert moved == (target in SIGNAL_TRANSITIONS[source]), (source, target)
        assert signal.status == (target if moved else source)


@pytest.mark.parametrize("source", list(ACTIVATION_TRANSITIONS))
def test_an_activation_and_its_signal_move_together(brp, source):
    signal = _signals(brp, 1)[0]
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RELAYED)
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0 + timedelta(minutes=11),
                                           status=source)
    active = lifecycle.activation_dispatched(activation.pk)
    assert active == (source == Activation.Status.DISPATCHING)
    signal.refresh_from_db()
    assert signal.status == (Signal.Status.ACTIVE if active else Signal.Status.RELAYED)
    restored = lifecycle.activation_restored(activation.pk, T0, dispatched_kw=2.5)
    activation.refresh_from_db()
    signal.refresh_from_db()
    assert restored == (source != Activation.Status.RESTORED)
    assert (activation.status, signal.status) == (Activation.Status.RESTORED, Signal.Status.RESTORED)
    assert activation.dispatched_kw == (2.5 if restored else 0.0)


def test_a_cancelled_signal_stays_cancelled_when_its_activation_ends(brp):
    signal = _signals(brp, 1)[0]
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.CANCELLED)
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0)
    assert lifecycle.activation_restored(activation.pk, T0)
    signal.refresh_from_db()
    assert signal.status == Signal.Status.CANCELLED


def test_a_move_outside_the_table_is_a_bug_not_a_no_op(db):
    with pytest.raises(ValueError, match="not in the table"):
        lifecycle._move(Curtailment.objects.all(), Curtailment.Status.PENDING, only_from=[Curtailment.Status.PLANNED])


def _status_writes(path: Path) -> list[int]:
    """Lines that write a status: `.update(status=...)`, `x.status = ...`, `save(update_fields=[.."status"..])`."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "update" and "status" in keywords:
                lines.append(node.lineno)
            fields = keywords.get("update_fields")
            if node.func.attr == "save" and fields is not None and re.search(r"'status'", ast.dump(fields)):
                lines.append(node.lineno)
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "status" for t in node.targets):
            lines.append(node.lineno)
    return lines


def test_no_module_but_the_lifecycle_writes_a_status():
    modules = [p for p in FLEXIBILITY.rglob("*.py") if "migrations" not in p.parts and p.name != "lifecycle.py"]
    assert len(modules) > 10
    writes = {str(p.relative_to(FLEXIBILITY)): lines for p in modules if (lines := _status_writes(p))}
    assert writes == {}
    assert _status_writes(FLEXIBILITY / "lifecycle.py")  # the check sees the writes where they are
