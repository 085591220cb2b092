"""The fault catalogue: what breaks, how often, how long it takes, what parts it needs.

The catalogue is a data file (``fleet/data/fault_catalogue.toml``); its header states which
figures are real and which are assumptions.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fleet.distributions import HoursDistribution
from fleet.model import FaultCategory, FaultGrade, StationGrade

UNKNOWN_FAULT_CODE = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Part:
    code: str
    name: str
    lead_time_hours: float
    """Time to get the part to a station that does not stock it."""
    stocked_at: frozenset[StationGrade]


@dataclass(frozen=True, slots=True)
class FaultType:
    code: str
    name: str
    category: FaultCategory
    grade: FaultGrade
    share: float
    """Share of call-outs (normalised over the catalogue)."""
    p_on_site_fix: float
    on_site_hours: HoursDistribution
    workshop_hours: HoursDistribution
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_on_site_fix <= 1.0 or math.isnan(self.p_on_site_fix):
            raise ValueError(
                f"fault {self.code}: p_on_site_fix must be in [0, 1], got {self.p_on_site_fix!r}"
            )
        if not self.share >= 0:
            raise ValueError(f"fault {self.code}: share must be >= 0, got {self.share!r}")

    def expected_repair_hours(self) -> float:
        """Mean repair time: on site with probability p, else in a workshop."""
        p = self.p_on_site_fix
        return p * self.on_site_hours.mean() + (1 - p) * self.workshop_hours.mean()


@dataclass(frozen=True, slots=True)
class FaultCatalogue:
    faults: tuple[FaultType, ...]
    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        codes = [f.code for f in self.faults]
        dupes = {c for c in codes if codes.count(c) > 1}
        if dupes:
            raise ValueError(f"duplicate fault code(s): {', '.join(sorted(dupes))}")
        known_parts = {p.code for p in self.parts}
        for fault in self.faults:
            missing = [p for p in fault.parts if p not in known_parts]
            if missing:
                raise ValueError(f"fault {fault.code}: unknown part(s) {', '.join(missing)}")
        if not self.faults:
            raise ValueError("fault catalogue is empty")
        if sum(f.share for f in self.faults) <= 0:
            raise ValueError("fault shares must not all be zero")

    def __iter__(self) -> Iterator[FaultType]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __contains__(self, code: object) -> bool:
        return any(f.code == code for f in self.faults)

    def get(self, code: str | None) -> FaultType:
        """The fault with ``code``; ``None`` or an empty code means the UNKNOWN fault."""
        wanted = code or UNKNOWN_FAULT_CODE
        for fault in self.faults:
            if fault.code == wanted:
                return fault
        raise KeyError(
            f"unknown fault code {code!r}; known codes: {', '.join(f.code for f in self.faults)}"
        )

    def part(self, code: str) -> Part:
        for p in self.parts:
            if p.code == code:
                return p
        raise KeyError(f"unknown part code {code!r}")

    def shares(self) -> dict[str, float]:
        """Normalised share of call-outs per fault code."""
        total = sum(f.share for f in self.faults)
        return {f.code: f.share / total for f in self.faults}

    def parts_stocked_at(self, grade: StationGrade) -> frozenset[str]:
        return frozenset(p.code for p in self.parts if grade in p.stocked_at)


def catalogue_from_mapping(data: Mapping[str, Any], *, source: str = "catalogue") -> FaultCatalogue:
    parts = []
    for i, raw in enumerate(data.get("parts", [])):
        try:
            parts.append(
                Part(
                    code=str(raw["code"]),
                    name=str(raw.get("name", raw["code"])),
                    lead_time_hours=float(raw.get("lead_time_hours", 24)),
                    stocked_at=frozenset(StationGrade(g) for g in raw.get("stocked_at", [])),
                )
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{source}: parts[{i}]: {exc}") from None
    faults = []
    for i, raw in enumerate(data.get("faults", [])):
        label = f"{source}: faults[{i}] ({raw.get('code', '?')})"
        try:
            faults.append(
                FaultType(
                    code=str(raw["code"]),
                    name=str(raw.get("name", raw["code"])),
                    category=FaultCategory(raw["category"]),
                    grade=FaultGrade(raw["grade"]),
                    share=float(raw.get("share", 0.0)),
                    p_on_site_fix=float(raw["p_on_site_fix"]),
                    on_site_hours=HoursDistribution.from_mapping(raw["on_site_hours"]),
                    workshop_hours=HoursDistribution.from_mapping(raw["workshop_hours"]),
                    parts=tuple(raw.get("parts", ())),
                )
            )
        except KeyError as exc:
            raise ValueError(f"{label}: missing key {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    return FaultCatalogue(faults=tuple(faults), parts=tuple(parts))


def load_fault_catalogue(path: str | Path | None = None) -> FaultCatalogue:
    """Load a fault catalogue TOML file; without a path, the bundled default (cached)."""
    if path is None:
        return _default_catalogue()
    p = Path(path)
    with p.open("rb") as fh:
        return catalogue_from_mapping(tomllib.load(fh), source=str(p))


@cache
def _default_catalogue() -> FaultCatalogue:
    text = resources.files("fleet.data").joinpath("fault_catalogue.toml").read_text("utf-8")
    return catalogue_from_mapping(tomllib.loads(text), source="fault_catalogue.toml")
