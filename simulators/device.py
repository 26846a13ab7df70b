"""A served device: its physics model, its faults, and the clock the two share."""

from __future__ import annotations

from collections.abc import Callable

from devices.clock import Clock
from simulators.faults import Faults
from simulators.model import DeviceModel


class ServedDevice:
    """What a server exposes of one device: values (frozen while `stuck`) and commands
    (dropped while `ignore_commands`). Both transports go through here."""

    def __init__(
        self,
        device_id: str,
        model: DeviceModel,
        clock: Clock,
        faults: Faults | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.id = device_id
        self.model = model
        self.clock = clock
        self._faults = Faults()
        self._frozen: dict[str, float] | None = None
        self.commands_applied = 0
        # Brings the physics up to the present before any look or command (the site's
        # catch-up), so answers do not depend on which task woke first.
        self._before = before or (lambda: None)
        self.set_faults(faults or Faults())

    @property
    def faults(self) -> Faults:
        """Faults in force."""
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Change faults; turning `stuck` on freezes the values of this moment."""
        self._before()
        if faults.stuck and self._frozen is None:
            self._frozen = self.model.read()
        if not faults.stuck:
            self._frozen = None
        self._faults = faults

    def values(self) -> dict[str, float]:
        """Point values as the device reports them now (engineering units)."""
        self._before()
        self.model.check_watchdog(self.clock.monotonic())
        if self._frozen is not None:
            return dict(self._frozen)
        return self.model.read()

    def command(self, values: dict[str, float]) -> None:
        """Apply validated point values (all or nothing is the caller's concern)."""
        if self._faults.ignore_commands:
            return
        self._before()
        now_s = self.clock.monotonic()
        self.model.check_watchdog(now_s)
        for point, value in values.items():
            self.model.write(point, value, now_s)
        self.commands_applied += 1
