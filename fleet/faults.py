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
from fleet.toml_schema import (
    KeyPath,
    Schema,
    TomlDocument,
    custom,
    entries,
    list_of,
    number,
    one_of,
    string,
)

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


PART_KEYS: Schema = {
    "code": string(),
    "name": string(None),
    "lead_time_hours": number(24.0, ge=0),
    "stocked_at": list_of(one_of(StationGrade), ()),
}
"""One ``[[parts]]`` entry of a catalogue."""

_DISTRIBUTION = custom(
    HoursDistribution.from_mapping, expects='a distribution table {kind = "lognormal", ...}'
)
FAULT_KEYS: Schema = {
    "code": string(),
    "name": string(None),
    "category": one_of(FaultCategory),
    "grade": one_of(FaultGrade),
    "share": number(0.0, ge=0),
    "p_on_site_fix": number(ge=0, le=1),
    "on_site_hours": _DISTRIBUTION,
    "workshop_hours": _DISTRIBUTION,
    "parts": list_of(string(), ()),
}
"""One ``[[faults]]`` entry of a catalogue (also ``[[repairs.faults]]`` in a scenario)."""

CATALOGUE_KEYS: Schema = {
    "parts": entries(PART_KEYS),
    "faults": entries(FAULT_KEYS, non_empty=True),
}


def catalogue_from_mapping(
    data: Mapping[str, Any], *, source: str = "catalogue", text: str = ""
) -> FaultCatalogue:
    """Validate parsed catalogue TOML; ``text`` lets errors name lines."""
    doc = TomlDocument(source, text, data)
    return catalogue_from_values(doc.validate(CATALOGUE_KEYS), doc)


def catalogue_from_values(
    values: Mapping[str, Any], doc: TomlDocument, at: KeyPath = ()
) -> FaultCatalogue:
    """Build a catalogue from ``parts`` and ``faults`` checked against :data:`PART_KEYS` and
    :data:`FAULT_KEYS` (at ``at`` in ``doc``), with the checks across entries."""
    parts: list[Part] = []
    for i, raw in enumerate(values["parts"]):
        if any(p.code == raw["code"] for p in parts):
            raise doc.error((*at, "parts", i, "code"), f"must be unique, got {raw['code']!r} again")
        parts.append(Part(raw["code"], raw["name"] or raw["code"], raw["lead_time_hours"],
                          frozenset(raw["stocked_at"])))  # fmt: skip
    part_codes = [p.code for p in parts]
    faults: list[FaultType] = []
    for i, raw in enumerate(values["faults"]):
        if any(f.code == raw["code"] for f in faults):
            raise doc.error(
                (*at, "faults", i, "code"), f"must be unique, got {raw['code']!r} again"
            )
        unknown = [p for p in raw["parts"] if p not in part_codes]
        if unknown:
            raise doc.error(
                (*at, "faults", i, "parts"),
                f"unknown part {unknown[0]!r}; known: {', '.join(part_codes) or 'none'}",
            )
        faults.append(FaultType(**{**raw, "name": raw["name"] or raw["code"]}))
    if not faults:
        raise doc.error((*at, "faults"), "must have at least one [[faults]] entry")
    if sum(f.share for f in faults) <= 0:
        raise doc.error((*at, "faults"), "shares must not all be zero")
    return FaultCatalogue(faults=tuple(faults), parts=tuple(parts))


def load_fault_catalogue(path: str | Path | None = None) -> FaultCatalogue:
    """Load a fault catalogue TOML file; without a path, the bundled default (cached)."""
    if path is None:
        return _default_catalogue()
    doc = TomlDocument.read(path)
    return catalogue_from_values(doc.validate(CATALOGUE_KEYS), doc)


@cache
def _default_catalogue() -> FaultCatalogue:
    text = resources.files("fleet.data").joinpath("fault_catalogue.toml").read_text("utf-8")
    return catalogue_from_mapping(tomllib.loads(text), source="fault_catalogue.toml", text=text)
