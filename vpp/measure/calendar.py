"""Working days and public holidays of a site, for like-day baselines.

The calendar is the `holidays` package's for the site's country and subdivision: it knows
each country's public holidays and, where a country moves working days around them (China's
调休, e.g. Sunday 4 January 2026 worked for the New Year holiday), which weekend days are
worked. A site without a country has a plain Monday–Friday week and no holidays, and says so.
The country defaults to the one the IANA time zone database gives the site's time zone
(`zone.tab`: Asia/Shanghai → CN, America/New_York → US).
"""

from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import holidays


@functools.cache
def _zone_countries() -> dict[str, str]:
    """IANA zone name → ISO 3166 country code, from the time zone database's `zone.tab`."""
    texts: list[str] = []
    for base in zoneinfo.TZPATH:
        p = Path(base) / "zone.tab"
        if p.is_file():
            texts.append(p.read_text(encoding="utf-8"))
            break
    if not texts:
        try:
            texts.append(
                importlib.resources.files("tzdata")
                .joinpath("zoneinfo", "zone.tab")
                .read_text(encoding="utf-8")
            )
        except (ModuleNotFoundError, FileNotFoundError):
            return {}
    out: dict[str, str] = {}
    for line in texts[0].splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            out[parts[2]] = parts[0]
    return out


def country_of_zone(tz: str) -> str | None:
    """The country of IANA time zone `tz` (`None` for UTC and other zones of no country)."""
    return _zone_countries().get(tz)


def check_country(country: str, subdivision: str | None) -> None:
    """Raise ValueError when the `holidays` package does not know `country` or its
    `subdivision`."""
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"{country!r} is not a country the holidays package knows")
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country][:12]) or "none"
        raise ValueError(f"{subdivision!r} is not a subdivision of {country} (known: {known})")


@dataclass(frozen=True)
class DayCalendar:
    """Which local dates are working days, and the names of public holidays.

    `country` `None`: Monday–Friday are working days and no day is a holiday.
    """

    country: str | None = None
    subdivision: str | None = None
    _years: dict[int, holidays.HolidayBase] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _cal(self, year: int) -> holidays.HolidayBase | None:
        if self.country is None:
            return None
        if year not in self._years:
            self._years[year] = holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=year
            )
        return self._years[year]

    @property
    def label(self) -> str:
        """`CN`, `US-NY`, or `none` (no holiday calendar)."""
        if self.country is None:
            return "none"
        return self.country + (f"-{self.subdivision}" if self.subdivision else "")

    def working(self, d: date) -> bool:
        """True on a working day: not a weekend (unless worked in lieu) and not a holiday."""
        cal = self._cal(d.year)
        return d.weekday() < 5 if cal is None else bool(cal.is_working_day(d))

    def holiday(self, d: date) -> str | None:
        """The public holiday's name on `d`, if it is one."""
        cal = self._cal(d.year)
        if cal is None:
            return None
        name = cal.get(d)
        return str(name) if name else None
