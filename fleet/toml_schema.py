"""One validator for every TOML input: network files, fault catalogues, simulation scenarios.

``tomllib`` parses but checks no meaning and keeps no line numbers. Each input therefore
declares what it accepts as a *schema*, a plain dict of key -> :class:`Field` (type, range,
allowed values, required or default), and :meth:`TomlDocument.validate` checks the parsed
table against it before anything is built. Adding a key to an input is one line in its
schema. The first problem raises :class:`ScenarioError` with one line naming the file, the
line, the key and the reason, always in the same shape::

    national.toml line 12: demand.breakdowns_per_day must be > 0, got -5
    net.toml line 30: trucks[0] (id 'T1'): capacity_t must be > 0, got -3
    net.toml line 9: stations[0] (id 'JN-1'): unknown key 'colour'; allowed here: ...

Array-of-tables entries are named by index and by their ``id`` (or ``code``), then the key
inside the entry follows a colon. Checks that span entries (a van whose station does not
exist) stay with the loader but raise through :meth:`TomlDocument.error`, so they read the
same. The line lookup is a scan of the text for table headers and ``key =`` lines: good for
the hand-written files this project reads, approximate for exotic TOML (then the line of the
enclosing key or table is named).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

KeyPath = tuple[str | int, ...]
"""Where a value sits in the document: table keys and array indices, e.g. ``("vans", 3)``."""

Schema = Mapping[str, "Field"]
"""What a table accepts: key -> :class:`Field`. Adding a key is one line."""

Check = Callable[[Any], str | None]
"""A rule on a converted value: returns the reason it is wrong (``"must ..."``) or None."""


class ScenarioError(ValueError):
    """A network, catalogue or scenario file that cannot be used; one line saying where and why.
    ``reason`` is the why alone (``must be > 0, got -3``)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED: Any = _Marker("REQUIRED")
"""Default of a key that must be given."""

ENTRY_LABEL_KEYS = ("id", "code", "plate")
"""Keys that name an array-of-tables entry in messages: ``vans[3] (id 'X')``."""


@dataclass(frozen=True, slots=True)
class Field:
    """What one key accepts. Build it with the functions below (``number(gt=0)``, ...)."""

    kind: str
    """number | integer | string | bool | list | table | entries | map | path | custom | either
    | any"""
    default: Any = REQUIRED
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    enum: type[Enum] | None = None
    item: Field | None = None
    """List items; map values."""
    schema: Mapping[str, Field] | None = None
    """Table and array-of-tables entries."""
    length: int | None = None
    non_empty: bool = False
    options: tuple[Field, ...] = ()
    convert: Callable[[Any], Any] | None = None
    expects: str = ""
    """What a custom value is, for messages ("a distribution table")."""
    check: Check | None = None
    open_keys: bool = False
    """A map that takes any key (the loader checks them in context)."""

    def describe(self) -> str:
        """The expected value in words, for "must be ..." messages."""
        if self.expects:
            return self.expects
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.kind == "list":
            inner = self.item.describe() if self.item else "values"
            count = f"{self.length} " if self.length is not None else ""
            return f"a list of {count}{_plural(inner)}"
        if self.kind == "either":
            return " or ".join(o.describe() for o in self.options)
        return _KIND_WORDS[self.kind]


_KIND_WORDS = {
    "number": "a number",
    "integer": "an integer",
    "string": "a non-empty string",
    "bool": "true or false",
    "list": "a list",
    "table": "a table",
    "entries": "an array of tables",
    "map": "a table",
    "path": "a file path",
    "custom": "a value",
    "any": "a value",
}


_PLURALS = (
    ("a number", "numbers"),
    ("an integer", "integers"),
    ("a non-empty string", "non-empty strings"),
    ("a value", "values"),
)


def _plural(words: str) -> str:
    for single, plural in _PLURALS:
        if words.startswith(single):
            return plural + words[len(single) :]
    return words


# -- the vocabulary of schemas -----------------------------------------------------------------


def number(
    default: Any = REQUIRED,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Field:
    """A finite number (int or float, never a boolean), returned as float."""
    return Field("number", default, gt=gt, ge=ge, le=le)


def integer(default: Any = REQUIRED, *, ge: float | None = None, le: float | None = None) -> Field:
    """A whole number (``2`` or ``2.0``), returned as int."""
    return Field("integer", default, ge=ge, le=le)


def string(default: Any = REQUIRED, *, check: Check | None = None) -> Field:
    """A non-empty string (``check`` returns the reason it is wrong, or None)."""
    return Field("string", default, check=check)


def one_of(choices: type[Enum] | Collection[str], default: Any = REQUIRED) -> Field:
    """One of a fixed set of strings; with an enum class, returned as its member."""
    if isinstance(choices, type) and issubclass(choices, Enum):
        return Field("string", default, choices=tuple(str(m.value) for m in choices), enum=choices)
    return Field("string", default, choices=tuple(choices))


def boolean(default: Any = REQUIRED) -> Field:
    return Field("bool", default)


def list_of(
    item: Field,
    default: Any = REQUIRED,
    *,
    length: int | None = None,
    non_empty: bool = False,
    check: Check | None = None,
) -> Field:
    """A TOML array whose items each satisfy ``item``; returned as a tuple."""
    return Field("list", default, item=item, length=length, non_empty=non_empty, check=check)


def table(schema: Mapping[str, Field]) -> Field:
    """A ``[table]`` with its own keys; absent means all its defaults."""
    return Field("table", schema=schema)


def entries(schema: Mapping[str, Field], *, non_empty: bool = False) -> Field:
    """An array of tables ``[[name]]``, each entry checked against ``schema``; absent = []."""
    return Field("entries", schema=schema, non_empty=non_empty)


def mapping(
    keys: type[Enum] | Collection[str] | None,
    value: Field,
    default: Any = REQUIRED,
    *,
    check: Check | None = None,
) -> Field:
    """A table whose keys come from a fixed set and whose values all satisfy ``value``
    (``vehicle_mix = {tractor = 0.6}``); returned as a dict of the keys given. ``keys=None``
    takes any key (ids the loader checks in context, such as contract ids)."""
    if keys is None:
        return Field("map", default, item=value, check=check, open_keys=True)
    if isinstance(keys, type) and issubclass(keys, Enum):
        return Field("map", default, choices=tuple(str(m.value) for m in keys), enum=keys,
                     item=value, check=check)  # fmt: skip
    return Field("map", default, choices=tuple(keys), item=value, check=check)


def file_path(default: Any = REQUIRED) -> Field:
    """A path to an existing file, relative to the document's directory; returned as Path."""
    return Field("path", default)


def custom(convert: Callable[[Any], Any], *, expects: str, default: Any = REQUIRED) -> Field:
    """A value that ``convert`` turns into an object; its ValueError/TypeError is the reason."""
    return Field("custom", default, convert=convert, expects=expects)


def either(*options: Field, default: Any = REQUIRED) -> Field:
    """The first option that accepts the value (``"real"`` or a list of 24 numbers)."""
    return Field("either", default, options=options)


def anything(default: Any = REQUIRED) -> Field:
    """Any TOML value, unchecked here (the caller checks it in context)."""
    return Field("any", default)


def not_all_zero(value: Any) -> str | None:
    """Check for weights and shares: at least one must be positive."""
    values = value.values() if isinstance(value, Mapping) else value
    return None if sum(values) > 0 else "must not all be zero"


def convert(spec: Field, value: Any) -> Any:
    """A value from outside a file (a CLI option) checked and converted by ``spec``; a
    ValueError carries the bare reason (``must be > 0, got 0``)."""
    try:
        return TomlDocument("<value>")._value(value, spec, ())
    except ScenarioError as exc:
        raise ValueError(exc.reason) from None


# -- documents ---------------------------------------------------------------------------------


@dataclass
class TomlDocument:
    """A parsed TOML input with what errors need: its name, its text (for lines), its
    directory (for relative paths)."""

    source: str
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = field(default_factory=lambda: Path("."))

    @classmethod
    def read(cls, path: str | Path) -> TomlDocument:
        """Read and parse a file; unreadable or malformed files are one-line errors."""
        p = Path(path)
        try:
            text = p.read_text("utf-8")
        except OSError as exc:
            raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
        return cls(str(p), text, data, p.parent)

    # -- validation ----------------------------------------------------------------------
    def validate(self, schema: Mapping[str, Field], at: KeyPath = ()) -> dict[str, Any]:
        """The table at ``at`` checked against ``schema``: converted values, defaults filled."""
        raw = self._node(at)
        if not isinstance(raw, Mapping):
            raise self.error(at, "must be a table")
        return self._table(raw, schema, at)

    def _table(
        self, raw: Mapping[str, Any], schema: Mapping[str, Field], at: KeyPath
    ) -> dict[str, Any]:
        unknown = sorted(set(raw) - set(schema))
        if unknown:
            raise self._key_error(
                (*at, unknown[0]), "unknown key", f"; allowed here: {', '.join(sorted(schema))}"
            )
        out: dict[str, Any] = {}
        for key, spec in schema.items():
            if key in raw:
                out[key] = self._value(raw[key], spec, (*at, key))
            elif spec.kind == "table":
                out[key] = self._table({}, spec.schema or {}, (*at, key))
            elif spec.kind == "entries":
                if spec.non_empty:
                    raise self._key_error((*at, key), "missing key")
                out[key] = []
            elif spec.default is REQUIRED:
                raise self._key_error((*at, key), "missing key")
            else:
                out[key] = spec.default
        return out

    def _value(self, value: Any, spec: Field, at: KeyPath) -> Any:
        out = _CONVERTERS[spec.kind](self, value, spec, at)
        if spec.check is not None:
            reason = spec.check(out)
            if reason:
                raise self.error(at, reason)
        return out

    def _must(self, at: KeyPath, spec: Field, value: Any) -> ScenarioError:
        return self.error(at, f"must be {spec.describe()}, got {value!r}")

    def _number(self, value: Any, spec: Field, at: KeyPath) -> Any:
        integral = spec.kind == "integer"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._must(at, spec, value)
        if integral and value != int(value):
            raise self._must(at, spec, value)
        x: float = float(value)
        rule = None
        if spec.gt is not None and not x > spec.gt:
            rule = f"> {spec.gt:g}"
        elif spec.ge is not None and not x >= spec.ge:
            rule = f">= {spec.ge:g}"
        elif spec.le is not None and not x <= spec.le:
            rule = f"<= {spec.le:g}"
        if rule and spec.ge is not None and spec.le is not None:
            rule = f"in [{spec.ge:g}, {spec.le:g}]"
        if rule:
            raise self.error(at, f"must be {rule}, got {x:g}")
        return int(x) if integral else x

    def _string(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, str) or not value or (spec.choices and value not in spec.choices):
            raise self._must(at, spec, value)
        return spec.enum(value) if spec.enum else value

    def _bool(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, bool):
            raise self._must(at, spec, value)
        return value

    def _list(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, list):
            raise self._must(at, spec, value)
        if spec.length is not None and len(value) != spec.length:
            raise self.error(at, f"must be {spec.describe()}, got {len(value)} values")
        if spec.non_empty and not value:
            raise self.error(at, "must be a non-empty list")
        item = spec.item or anything()
        return tuple(self._value(v, item, (*at, i)) for i, v in enumerate(value))

    def _subtable(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, Mapping):
            raise self.error(at, f"must be a table [{_dotted(at)}], got {value!r}")
        return self._table(value, spec.schema or {}, at)

    def _entries(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
            raise self.error(at, f"must be an array of tables [[{_dotted(at)}]]")
        if spec.non_empty and not value:
            raise self.error(at, f"must have at least one [[{_dotted(at)}]] entry")
        return [self._table(e, spec.schema or {}, (*at, i)) for i, e in enumerate(value)]

    def _map(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, Mapping):
            raise self.error(at, f"must be a table, got {value!r}")
        unknown = [] if spec.open_keys else sorted(set(value) - set(spec.choices))
        if unknown:
            raise self._key_error(
                (*at, unknown[0]), "unknown key", f"; allowed here: {', '.join(spec.choices)}"
            )
        item = spec.item or anything()
        return {
            (spec.enum(k) if spec.enum else k): self._value(v, item, (*at, k))
            for k, v in value.items()
        }

    def _path(self, value: Any, spec: Field, at: KeyPath) -> Any:
        if not isinstance(value, str) or not value:
            raise self._must(at, spec, value)
        p = Path(value)
        if not p.is_absolute():
            p = self.base_dir / p
        if not p.is_file():
            raise self.error(at, f"no such file {str(p)!r}")
        return p

    def _custom(self, value: Any, spec: Field, at: KeyPath) -> Any:
        assert spec.convert is not None
        try:
            return spec.convert(value)
        except (ValueError, TypeError, AttributeError) as exc:
            raise self.error(at, str(exc)) from None

    def _either(self, value: Any, spec: Field, at: KeyPath) -> Any:
        fitting = [o for o in spec.options if _same_toml_type(o, value)]
        if not fitting:
            raise self._must(at, spec, value)
        for option in fitting[:-1]:
            try:
                return self._value(value, option, at)
            except ScenarioError:
                continue
        return self._value(value, fitting[-1], at)

    def _any(self, value: Any, spec: Field, at: KeyPath) -> Any:
        return value

    # -- locating and naming -------------------------------------------------------------
    def error(self, at: KeyPath, reason: str) -> ScenarioError:
        """An error about the value at ``at``: ``file line N: key reason``. Reasons that are
        rules (``must be > 0, got -3``) follow the key; anything else follows a colon."""
        name = ": ".join(self._names(at))
        if not name:
            text = reason
        elif reason.startswith("must "):
            text = f"{name} {reason}"
        else:
            text = f"{name}: {reason}"
        return ScenarioError(f"{self.where(at)}: {text}", reason)

    def _key_error(self, at: KeyPath, what: str, tail: str = "") -> ScenarioError:
        """``unknown key`` / ``missing key``, named from the innermost entry:
        ``stations[0] (id 'X'): unknown key 'colour'``, ``unknown key 'demand.rate'``."""
        names = self._names(at)
        head = "".join(f"{n}: " for n in names[:-1])
        line_at = at if what == "unknown key" else at[:-1]
        return ScenarioError(f"{self.where(line_at)}: {head}{what} {names[-1]!r}{tail}")

    def where(self, at: KeyPath) -> str:
        """``file line N`` (or just ``file`` when the line cannot be found)."""
        n = self.line(at)
        return f"{self.source} line {n}" if n else self.source

    def _node(self, at: KeyPath) -> Any:
        node: Any = self.data
        for key in at:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def _names(self, at: KeyPath) -> list[str]:
        """``("trucks", 0, "capacity_t")`` -> ``["trucks[0] (id 'T1')", "capacity_t"]``."""
        names: list[str] = []
        current = ""
        for n, key in enumerate(at):
            if isinstance(key, int):
                entry = self._node(at[: n + 1])
                label = next(
                    (f" ({k} {entry[k]!r})" for k in ENTRY_LABEL_KEYS
                     if isinstance(entry, Mapping) and k in entry),
                    "",
                )  # fmt: skip
                current += f"[{key}]{label}"
                if n < len(at) - 1:
                    names.append(current)
                    current = ""
            else:
                current = f"{current}.{key}" if current else str(key)
        if current:
            names.append(current)
        return names

    def line(self, at: KeyPath) -> int | None:
        """The line of the value at ``at``; else of the nearest enclosing key or table."""
        lines = self.text.splitlines()
        for cut in range(len(at), 0, -1):
            table_at, key = at[: cut - 1], at[cut - 1]
            if isinstance(key, int):
                for n, (ctx, is_header) in enumerate(self._context, start=1):
                    if is_header and ctx == (*table_at, key):
                        return n
                continue
            rx = re.compile(rf"^\s*[\"']?{re.escape(str(key))}[\"']?\s*=")
            dotted = re.compile(rf"^\s*{re.escape(_dotted(at[:cut]))}\s*=")
            for n, (ctx, is_header) in enumerate(self._context, start=1):
                if is_header:
                    if ctx == at[:cut]:
                        return n
                elif (ctx == table_at and rx.match(lines[n - 1])) or (
                    ctx == () and dotted.match(lines[n - 1])
                ):
                    return n
        return None

    @cached_property
    def _context(self) -> list[tuple[KeyPath, bool]]:
        """Per line: the table it is in (array entries numbered) and whether it is a header."""
        out: list[tuple[KeyPath, bool]] = []
        current: KeyPath = ()
        counts: dict[KeyPath, int] = {}
        for line in self.text.splitlines():
            m = _HEADER.match(line)
            if m:
                names: KeyPath = tuple(n.strip().strip("\"'") for n in m.group(2).split("."))
                if m.group(1) == "[[":
                    count = counts.get(names, 0)
                    counts[names] = count + 1
                    current = (*names, count)
                else:
                    current = names
            out.append((current, bool(m)))
        return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

_CONVERTERS: dict[str, Callable[[TomlDocument, Any, Field, KeyPath], Any]] = {
    "number": TomlDocument._number,
    "integer": TomlDocument._number,
    "string": TomlDocument._string,
    "bool": TomlDocument._bool,
    "list": TomlDocument._list,
    "table": TomlDocument._subtable,
    "entries": TomlDocument._entries,
    "map": TomlDocument._map,
    "path": TomlDocument._path,
    "custom": TomlDocument._custom,
    "either": TomlDocument._either,
    "any": TomlDocument._any,
}

_TOML_TYPES: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "path": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "entries": lambda v: isinstance(v, list),
    "table": lambda v: isinstance(v, Mapping),
    "map": lambda v: isinstance(v, Mapping),
}


def _same_toml_type(spec: Field, value: Any) -> bool:
    test = _TOML_TYPES.get(spec.kind)
    return test(value) if test else True


def _dotted(at: KeyPath) -> str:
    return ".".join(f"[{k}]" if isinstance(k, int) else k for k in at).replace(".[", "[")
