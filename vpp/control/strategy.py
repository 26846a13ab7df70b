"""How a site responds to demand response: a strategy object, chosen by name (`--strategy`,
a scenario's `strategy:`) from one registry.

- `optimiser`: plans the horizon with the events (Pyomo + HiGHS), opts in to what the plan
  expects to deliver, dispatches the plan and closes the loop on the event's target;
- `rules`: no plan; opts in to what is asked and closes the loop on the event's target;
- `none`: opts out of every event and only re-asserts setpoints (a site that does not
  respond, for comparison in replay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # type only: the CLI reads REGISTRY at start, without pydantic
    from vpp.grid.messages import Event


@dataclass(frozen=True)
class OptIn:
    """Take part, expecting to deliver `expected_kw` per interval (kW)."""

    expected_kw: Sequence[float]


@dataclass(frozen=True)
class OptOut:
    """Decline, saying why."""

    reason: str


class Strategy(Protocol):
    """A response strategy."""

    name: str
    plans: bool
    """The optimiser plans the site; its steps are followed and its plan answers events."""
    dispatches: bool
    """The dispatcher runs every cycle; False: setpoints are only re-asserted."""

    def answer(self, event: Event, expected_kw: Sequence[float] | None) -> OptIn | OptOut:
        """How to answer `event`; `expected_kw` is the plan's delivery when `plans`."""
        ...


class Optimiser:
    """Opts out of a curtailment when the plan expects less than `opt_out_below` of it."""

    name = "optimiser"
    plans = True
    dispatches = True

    def __init__(self, opt_out_below: float = 0.5) -> None:
        self.opt_out_below = opt_out_below

    def answer(self, event: Event, expected_kw: Sequence[float] | None) -> OptIn | OptOut:
        if expected_kw is None:
            raise ValueError("the optimiser strategy answers from a plan")
        asked = [iv.value for iv in event.intervals]
        if event.signal == "curtail_kw" and sum(expected_kw) < self.opt_out_below * sum(asked):
            return OptOut(
                f"the plan expects {sum(expected_kw) / len(expected_kw):.0f} kW of the "
                f"{sum(asked) / len(asked):.0f} kW asked: not enough flexibility"
            )
        return OptIn(expected_kw)


class Rules:
    """Opts in to what is asked (nothing for a price or carbon signal), follows the target
    by rule."""

    name = "rules"
    plans = False
    dispatches = True

    def answer(self, event: Event, expected_kw: Sequence[float] | None) -> OptIn | OptOut:
        asks = event.signal not in ("price", "carbon")
        return OptIn([iv.value if asks else 0.0 for iv in event.intervals])


class NoResponse:
    """Opts out of everything; devices keep their last setpoints."""

    name = "none"
    plans = False
    dispatches = False

    def answer(self, event: Event, expected_kw: Sequence[float] | None) -> OptIn | OptOut:
        return OptOut("this site does not respond (strategy none)")


REGISTRY: dict[str, Callable[[], Strategy]] = {
    Optimiser.name: Optimiser,
    Rules.name: Rules,
    NoResponse.name: NoResponse,
}
"""Strategies by name, in the order the CLI lists them."""


def strategy_named(name: str) -> Strategy:
    """The strategy called `name`; ValueError naming the choices otherwise."""
    make = REGISTRY.get(name)
    if make is None:
        raise ValueError(f"strategy: expected one of {', '.join(REGISTRY)}, got {name!r}")
    return make()
