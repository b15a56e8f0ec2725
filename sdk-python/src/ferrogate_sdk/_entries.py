"""Ordered multi-maps for headers and query arguments.

Names and values are `str`. Bytes that are not UTF-8 survive as lone surrogates
(``errors="surrogateescape"``), so every value read from the wire is written back byte for byte;
`raw()` gives the bytes. A value of ``None`` is an entry without a value: a query flag (``?flag``)
in `Args`, a removal directive in `ResponseHeaders`.

Header names are case-insensitive: lookups ignore case, and every header name a plugin writes
(`set`, `add`, `delete`, `append_entry`) is stored and sent lower-cased, as the gateway sends
them and as it applies them (HTTP/2 and the gateway's header maps only know lower-case names).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

Entry = Tuple[str, Optional[str]]
RawEntry = Tuple[bytes, Optional[bytes]]
Text = Union[str, bytes]

_ENC = "utf-8"
_ERR = "surrogateescape"


def to_str(value: Text) -> str:
    """Bytes to text without loss (non-UTF-8 bytes become lone surrogates)."""
    if isinstance(value, str):
        return value
    return value.decode(_ENC, _ERR)


def to_bytes(value: Text) -> bytes:
    """The inverse of `to_str`."""
    if isinstance(value, bytes):
        return value
    return value.encode(_ENC, _ERR)


def lower_name(name: Text) -> str:
    """A header name lower-cased (ASCII letters only, so any other byte is kept as it is)."""
    name = to_str(name)
    if name.isascii():
        return name.lower()
    return name.encode(_ENC, _ERR).lower().decode(_ENC, _ERR)


def raw_entries(entries: Iterable[Entry]) -> List[RawEntry]:
    return [(n.encode(_ENC, _ERR), None if v is None else v.encode(_ENC, _ERR)) for n, v in entries]


class _Entries:
    """Shared read side: an ordered list of (name, value) entries."""

    __slots__ = ("_entries",)
    _fold = False

    def __init__(self, entries: Iterable[Tuple[Text, Optional[Text]]] = ()) -> None:
        self._entries: List[Entry] = (
            [(to_str(n), None if v is None else to_str(v)) for n, v in entries] if entries else []
        )

    def _all(self) -> List[Entry]:
        return self._entries

    def _key(self, name: str) -> str:
        return name.lower() if self._fold else name

    def _is(self, name: str, key: str) -> bool:
        return (name.lower() if self._fold else name) == key

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of `name` (`default` when absent or without value)."""
        key = self._key(name)
        for n, v in self._all():
            if self._is(n, key):
                return default if v is None else v
        return default

    def get_all(self, name: str) -> List[Optional[str]]:
        """Every value of `name` in order (``None`` for an entry without value)."""
        key = self._key(name)
        return [v for n, v in self._all() if self._is(n, key)]

    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        for n, v in self._all():
            if self._is(n, key):
                return "" if v is None else v
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return any(self._is(n, key) for n, _ in self._all())

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._all()))

    def __len__(self) -> int:
        return len(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Entries):
            return self._all() == other._all()
        if isinstance(other, list):
            return self._all() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def items(self) -> List[Entry]:
        """A copy of the entries in order."""
        return list(self._all())

    def raw(self) -> List[RawEntry]:
        """The entries as bytes, exactly as they travel."""
        return raw_entries(self._all())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._all()!r})"


class Headers(_Entries):
    """HTTP headers: ordered, several values per name, names compared case-insensitively.

    Used for the upstream response's headers in the response phase, where a change to any header
    makes the reply carry the whole resulting set (the gateway, like APISIX, then replaces the
    upstream's headers with it). Names written are lower-cased.
    """

    __slots__ = ("changed",)
    _fold = True

    def __init__(self, entries: Iterable[Tuple[Text, Optional[Text]]] = ()) -> None:
        super().__init__(entries)
        self.changed = False

    @classmethod
    def _wrap(cls, entries: List[Entry]) -> Headers:
        obj = cls.__new__(cls)
        obj._entries = entries
        obj.changed = False
        return obj

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with `value` (at the first one's place)."""
        key = lower_name(name)
        out: List[Entry] = []
        placed = False
        for entry in self._entries:
            if entry[0].lower() == key:
                if not placed:
                    out.append((key, value))
                    placed = True
            else:
                out.append(entry)
        if not placed:
            out.append((key, value))
        self._entries = out
        self.changed = True

    def add(self, name: str, value: str) -> None:
        """Add one more value for `name`."""
        self._entries.append((lower_name(name), value))
        self.changed = True

    def delete(self, name: str) -> None:
        """Remove every value of `name` (nothing happens when absent)."""
        key = name.lower()
        self._entries = [e for e in self._entries if e[0].lower() != key]
        self.changed = True

    def clear(self) -> None:
        """Remove every header."""
        self._entries = []
        self.changed = True

    def append_entry(self, name: Text, value: Optional[Text]) -> None:
        """Append one raw entry (``None``: an entry without value, sent as such)."""
        self._entries.append((lower_name(name), None if value is None else to_str(value)))
        self.changed = True

    __setitem__ = set
    __delitem__ = delete


class RequestHeaders(_Entries):
    """The request's headers as this plugin sees them (names lower-case, as the gateway sends).

    `set` and `delete` change the view and are sent to the gateway as a rewrite (the protocol
    replaces a header by name, so a header cannot get several values: there is no `add`).
    From the socket runner the headers are decoded on first read: a plugin that only sets
    headers never pays for decoding them.
    """

    __slots__ = ("_changes", "_load", "_pending")
    _fold = True

    def __init__(self, entries: Iterable[Tuple[Text, Optional[Text]]] = ()) -> None:
        super().__init__(entries)
        self._changes: dict[str, Optional[str]] = {}
        self._load: Optional[Callable[[], List[Entry]]] = None
        self._pending: List[Entry] = []

    @classmethod
    def _lazy(cls, load: Callable[[], List[Entry]]) -> RequestHeaders:
        obj = cls.__new__(cls)
        obj._entries = []
        obj._changes = {}
        obj._load = load
        obj._pending = []
        return obj

    def _all(self) -> List[Entry]:
        load = self._load
        if load is not None:
            self._load = None
            self._entries = load()
            for key, value in self._pending:
                self._apply(key, value)
            self._pending = []
        return self._entries

    def _apply(self, key: str, value: Optional[str]) -> None:
        if value is None:
            self._entries = [e for e in self._entries if e[0].lower() != key]
            return
        out: List[Entry] = []
        placed = False
        for entry in self._entries:
            if entry[0].lower() == key:
                if not placed:
                    out.append((key, value))
                    placed = True
            else:
                out.append(entry)
        if not placed:
            out.append((key, value))
        self._entries = out

    def _change(self, key: str, value: Optional[str]) -> None:
        if self._load is not None:
            self._pending.append((key, value))
        else:
            self._apply(key, value)
        self._changes.pop(key, None)
        self._changes[key] = value

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with `value`."""
        self._change(lower_name(name), value)

    def delete(self, name: str) -> None:
        """Remove `name` from the request."""
        self._change(lower_name(name), None)

    __setitem__ = set
    __delitem__ = delete

    def changes(self) -> List[Entry]:
        """The rewrite entries: (name, value) replaces, (name, None) deletes."""
        return list(self._changes.items())


class Args(_Entries):
    """The query arguments as this plugin sees them, in order, several values per name.

    An argument without ``=`` (``?flag``) has the value ``None``; ``?k=`` has ``""``. Names are
    case-sensitive. `set`, `add` and `delete` change the view and are sent as a rewrite; a flag
    cannot be sent back as a flag (the protocol reads an entry without value as a deletion), so a
    rewritten name whose values include ``None`` sends ``""`` for it.
    """

    __slots__ = ("_changed",)

    def __init__(self, entries: Iterable[Tuple[Text, Optional[Text]]] = ()) -> None:
        super().__init__(entries)
        self._changed: dict[str, None] = {}

    @classmethod
    def _wrap(cls, entries: List[Entry]) -> Args:
        obj = cls.__new__(cls)
        obj._entries = entries
        obj._changed = {}
        return obj

    def set(self, name: str, value: Union[str, Sequence[str]]) -> None:
        """Replace the values of `name` with `value` (a string or a list of strings)."""
        values = [value] if isinstance(value, str) else list(value)
        out: List[Entry] = []
        placed = False
        for entry in self._entries:
            if entry[0] == name:
                if not placed:
                    out.extend((name, v) for v in values)
                    placed = True
            else:
                out.append(entry)
        if not placed:
            out.extend((name, v) for v in values)
        self._entries = out
        self._changed[name] = None

    def add(self, name: str, value: str) -> None:
        """Add one more value for `name`."""
        self._entries.append((name, value))
        self._changed[name] = None

    def delete(self, name: str) -> None:
        """Remove every value of `name`."""
        self._entries = [e for e in self._entries if e[0] != name]
        self._changed[name] = None

    __setitem__ = set
    __delitem__ = delete

    def changes(self) -> List[Entry]:
        """The rewrite entries: every value of every changed name, in the view's order (the
        gateway replaces a name with its first entry and appends the later ones, so the result
        is the view), then (name, None) for each changed name left without values."""
        changed = self._changed
        if not changed:
            return []
        out: List[Entry] = [(n, "" if v is None else v) for n, v in self._entries if n in changed]
        present = {n for n, _ in out}
        out.extend((name, None) for name in changed if name not in present)
        return out


class ResponseHeaders(_Entries):
    """Headers of a response the gateway will send, as the protocol's directive list.

    The gateway applies the entries in order: the first entry of a name sets it, later ones add
    values, an entry without value (``None``) removes the header (also one the gateway or the
    upstream would have sent). Names written are lower-cased.
    """

    __slots__ = ()
    _fold = True

    def set(self, name: str, value: str) -> None:
        """Make `value` the only value of `name`."""
        key = lower_name(name)
        self._entries = [e for e in self._entries if e[0].lower() != key]
        self._entries.append((key, value))

    def add(self, name: str, value: str) -> None:
        """Add one more value for `name`."""
        self._entries.append((lower_name(name), value))

    def delete(self, name: str) -> None:
        """Remove `name` from the response (sends an entry without value)."""
        self._entries.append((lower_name(name), None))

    def append_entry(self, name: Text, value: Optional[Text]) -> None:
        """Append one raw directive (``None`` = remove)."""
        self._entries.append((lower_name(name), None if value is None else to_str(value)))

    __setitem__ = set
    __delitem__ = delete
