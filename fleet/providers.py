"""Partner rescue / tow providers from TOML: one parser for network files, the demo network's
synthetic list and simulation scenarios (whose network part is a network file's keys; the
simulation's answer terms are not here but in the scenario's ``[partner_offers]``).

An entry (``[[rescue_providers]]`` in a network file)::

    [[rescue_providers]]
    id = "R-370000-TOW"
    partner = "P-370000-1"               # the partner company that answers its offers
    name = "山东 road rescue (synthetic)"   # optional (default: the id)
    lat = 36.651                         # its base (inside China)
    lon = 117.120
    provinces = ["370000"]               # coverage: mainland province adcodes, and/or
    radius_km = 0                        # great-circle km around the base (default 0)
    capabilities = ["heavy_tow", "tyre"] # heavy_tow | tyre | mobile_mechanic, at least one
    promised_response_minutes = 60       # > 0: also the default expiry of its offers
    callout_fee_cny = 800                # >= 0
    per_km_cny = 12                      # >= 0, from its base
    capacity_jobs = 3                    # >= 1: jobs (accepted or on offer) at once

Checks go through :mod:`fleet.toml_schema`, so every error is one line naming the file line,
the entry and the key: ``net.toml line 41: rescue_providers[0] (id 'R1'): capacity_jobs must
be >= 1, got 0``. Besides the schema: ids unique, the partner known (when the caller passes
the partner ids), coverage given (provinces or a radius), the base inside China.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from fleet.geography import mainland_provinces, province_at
from fleet.model import GeoPoint, PartnerRescueProvider, RescueCapability
from fleet.toml_schema import (
    KeyPath,
    Schema,
    TomlDocument,
    entries,
    integer,
    list_of,
    number,
    one_of,
    string,
)
from fleet.toml_schema import table as sub_table


def _mainland_adcodes(adcodes: tuple[str, ...]) -> str | None:
    known = {p.adcode for p in mainland_provinces()}
    bad = [a for a in adcodes if a not in known]
    return f'must list mainland province adcodes (e.g. "370000"), got {bad[0]!r}' if bad else None


PROVIDER_KEYS: Schema = {
    "id": string(),
    "partner": string(),
    "name": string(None),
    "lat": number(ge=-90, le=90),
    "lon": number(ge=-180, le=180),
    "provinces": list_of(string(), (), check=_mainland_adcodes),
    "radius_km": number(0.0, ge=0),
    "capabilities": list_of(one_of(RescueCapability), non_empty=True),
    "promised_response_minutes": number(gt=0),
    "callout_fee_cny": number(ge=0),
    "per_km_cny": number(ge=0),
    "capacity_jobs": integer(ge=1),
}
"""The keys of one ``[[rescue_providers]]`` entry (the module docstring shows them in use)."""

PROVIDERS_KEY = "rescue_providers"

__all__ = [
    "PROVIDERS_KEY",
    "PROVIDER_KEYS",
    "load_partner_providers_file",
    "parse_partner_providers",
]


def parse_partner_providers(
    table: Any,
    source: TomlDocument | str,
    *,
    at: KeyPath = (PROVIDERS_KEY,),
    partner_ids: Collection[str] | None = None,
    taken_ids: Collection[str] = (),
) -> tuple[PartnerRescueProvider, ...]:
    """The providers of ``table`` (the parsed TOML array of tables found at ``at``).

    ``source`` is the document they come from (its text gives the line numbers) or just a
    name for messages. ``partner_ids``, when given, are the partner companies a provider may
    belong to; ``taken_ids`` are provider ids that exist already (a base network's). The first
    problem raises :class:`fleet.toml_schema.ScenarioError` naming the line, entry and key.
    """
    doc = source if isinstance(source, TomlDocument) else TomlDocument(source)
    # validate through a document holding only these entries at their path, with the text
    nested: Any = table
    for key in reversed(at):
        if isinstance(key, int):  # pragma: no cover - providers sit under table keys
            raise ValueError(f"provider path {at!r} must be table keys")
        nested = {key: nested}
    view = TomlDocument(doc.source, doc.text, nested, doc.base_dir)
    node: Any = view.validate(_schema_at(at))
    for key in at:
        node = node[key]
    rows: list[dict[str, Any]] = node
    out: list[PartnerRescueProvider] = []
    seen = set(taken_ids)
    for i, raw in enumerate(rows):
        entry: KeyPath = (*at, i)
        if raw["id"] in seen:
            raise view.error((*entry, "id"), f"must be unique, got {raw['id']!r} again")
        seen.add(raw["id"])
        if partner_ids is not None and raw["partner"] not in partner_ids:
            raise view.error((*entry, "partner"), f"no partner with id {raw['partner']!r}")
        if not raw["provinces"] and raw["radius_km"] <= 0:
            raise view.error(
                (*entry, "radius_km"), "must be > 0 when no provinces are given (coverage)"
            )
        if province_at(raw["lat"], raw["lon"]) is None:
            raise view.error(entry, f"base ({raw['lat']}, {raw['lon']}) is outside China")
        try:
            out.append(_provider(raw))
        except ValueError as exc:
            raise view.error(entry, str(exc)) from None
    return tuple(out)


def load_partner_providers_file(
    path: str | Path, *, partner_ids: Collection[str] | None = None
) -> tuple[PartnerRescueProvider, ...]:
    """The ``[[rescue_providers]]`` of a TOML file that holds nothing else."""
    doc = TomlDocument.read(path)
    unknown = sorted(set(doc.data) - {PROVIDERS_KEY})
    if unknown:
        raise doc.error((unknown[0],), f"unknown key {unknown[0]!r}; allowed here: {PROVIDERS_KEY}")
    return parse_partner_providers(doc.data.get(PROVIDERS_KEY, []), doc, partner_ids=partner_ids)


def _schema_at(at: KeyPath) -> Schema:
    schema: Schema = {str(at[-1]): entries(PROVIDER_KEYS)}
    for key in reversed(at[:-1]):
        schema = {str(key): sub_table(schema)}
    return schema


def _provider(raw: Mapping[str, Any]) -> PartnerRescueProvider:
    return PartnerRescueProvider(
        id=raw["id"],
        partner_id=raw["partner"],
        name=raw["name"] or raw["id"],
        base=GeoPoint(raw["lat"], raw["lon"]),
        capabilities=frozenset(raw["capabilities"]),
        promised_response_minutes=raw["promised_response_minutes"],
        callout_fee_cny=raw["callout_fee_cny"],
        per_km_cny=raw["per_km_cny"],
        capacity_jobs=raw["capacity_jobs"],
        provinces=frozenset(raw["provinces"]),
        radius_km=raw["radius_km"],
    )
