"""Plugins, the registry, prepared confs and the chain.

Chain semantics (those of APISIX's Go runner): the entries of a route's ``conf`` list run in
order; a request filter sees the path, headers and args as the earlier filters rewrote them; the
first filter that stops ends the chain and the answer is that stop (earlier rewrites are dropped);
otherwise the accumulated rewrite is sent, or nothing when nothing changed. Every response filter
runs, each seeing the status, headers and body the earlier ones set.
"""

from __future__ import annotations

import logging
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from ._entries import Text, to_str
from ._http import Action, Request, Response, UpstreamResponse

log = logging.getLogger("ferrogate_sdk")

ConfT = TypeVar("ConfT")
P = TypeVar("P", bound="Plugin[Any]")


class ConfError(Exception):
    """A conf entry this runner cannot use (its plugin refused the value)."""


class Plugin(Generic[ConfT]):
    """Base class of a plugin. Subclass it, set `name`, override what you need, `register` it.

    * `parse_conf` turns the conf entry's value (a string, usually JSON) into the object the
      filters get; it runs once per prepare, never per request. Raise to refuse the value.
    * `request_filter` runs for ``ext-plugin-pre-req`` / ``ext-plugin-post-req``: read and
      rewrite `req`, or answer through `resp` to stop.
    * `response_filter` runs for ``ext-plugin-post-resp`` with the upstream's response.

    Filters may be plain functions (fastest) or ``async def`` (needed to ``await req.var(...)``,
    ``await req.body()`` or to wait without blocking the other requests).
    """

    name: str = ""

    def parse_conf(self, value: str) -> ConfT:
        """The conf object for `value`; by default the string itself."""
        return value  # type: ignore[return-value]

    def request_filter(
        self, conf: ConfT, req: Request, resp: Response
    ) -> Optional[Awaitable[None]]:
        """Called for each request of a route whose conf names this plugin."""
        return None

    def response_filter(self, conf: ConfT, resp: UpstreamResponse) -> Optional[Awaitable[None]]:
        """Called with the upstream's response."""
        return None


class Registry:
    """Plugins by name."""

    def __init__(self) -> None:
        self._plugins: Dict[str, Plugin[Any]] = {}

    def add(self, plugin: Plugin[Any]) -> None:
        """Register `plugin` under `plugin.name` (a name may be registered once)."""
        name = plugin.name
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise ValueError(f"plugin {plugin!r} needs a name of 1..128 characters")
        if name in self._plugins:
            raise ValueError(f"a plugin named {name!r} is already registered")
        self._plugins[name] = plugin

    def get(self, name: str) -> Optional[Plugin[Any]]:
        return self._plugins.get(name)

    def names(self) -> List[str]:
        return sorted(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __len__(self) -> int:
        return len(self._plugins)

    def prepare(self, conf: Iterable[Tuple[Text, Text]]) -> PreparedConf:
        """Parse a route's conf list once: ``[(plugin name, value), ...]``.

        An unknown plugin name is skipped with a warning (as APISIX's runners do); a value the
        plugin refuses raises `ConfError`.
        """
        entries: List[Tuple[Plugin[Any], Any]] = []
        for raw_name, raw_value in conf:
            name, value = to_str(raw_name), to_str(raw_value)
            plugin = self._plugins.get(name)
            if plugin is None:
                log.warning("conf names plugin %r, which this runner does not have", name)
                continue
            try:
                parsed = plugin.parse_conf(value)
            except Exception as e:
                raise ConfError(f"plugin {name!r} refused its conf: {e}") from e
            entries.append((plugin, parsed))
        return PreparedConf(entries)


default_registry = Registry()


@overload
def register(plugin: P, *, registry: Optional[Registry] = None) -> P: ...
@overload
def register(plugin: Type[P], *, registry: Optional[Registry] = None) -> Type[P]: ...
def register(
    plugin: Union[P, Type[P]], *, registry: Optional[Registry] = None
) -> Union[P, Type[P]]:
    """Register a plugin instance, or a plugin class (instantiated without arguments; usable
    as a class decorator), in `registry` (default: the process-wide one the runners use)."""
    target = default_registry if registry is None else registry
    instance = plugin() if isinstance(plugin, type) else plugin
    target.add(instance)
    return plugin


RequestFilter = Callable[[Any, Request, Response], Optional[Awaitable[None]]]
ResponseFilter = Callable[[Any, UpstreamResponse], Optional[Awaitable[None]]]


class PreparedConf:
    """A parsed conf list: the filters to run, in order, with their conf objects."""

    __slots__ = ("entries", "request_filters", "response_filters")

    def __init__(self, entries: Sequence[Tuple[Plugin[Any], Any]]) -> None:
        self.entries = tuple(entries)
        # Only the filters a plugin overrides: a chain of filters that cannot act costs nothing.
        self.request_filters: Tuple[Tuple[RequestFilter, Any], ...] = tuple(
            (p.request_filter, c)
            for p, c in entries
            if type(p).request_filter is not Plugin.request_filter
        )
        self.response_filters: Tuple[Tuple[ResponseFilter, Any], ...] = tuple(
            (p.response_filter, c)
            for p, c in entries
            if type(p).response_filter is not Plugin.response_filter
        )

    def start_request(self, req: Request, resp: Response) -> Optional[Awaitable[None]]:
        """Run the request filters; ``None`` when the chain finished synchronously, else an
        awaitable that finishes it (the first filter that returned an awaitable and the rest)."""
        filters = self.request_filters
        for i, (fn, conf) in enumerate(filters):
            pending = fn(conf, req, resp)
            if pending is not None:
                return _finish_request(filters, i + 1, pending, req, resp)
            if resp.stopped:
                return None
        return None

    def start_response(self, resp: UpstreamResponse) -> Optional[Awaitable[None]]:
        """Run the response filters, like `start_request`."""
        filters = self.response_filters
        for i, (fn, conf) in enumerate(filters):
            pending = fn(conf, resp)
            if pending is not None:
                return _finish_response(filters, i + 1, pending, resp)
        return None


async def _finish_request(
    filters: Tuple[Tuple[RequestFilter, Any], ...],
    start: int,
    pending: Awaitable[None],
    req: Request,
    resp: Response,
) -> None:
    await pending
    if resp.stopped:
        return
    for fn, conf in filters[start:]:
        more = fn(conf, req, resp)
        if more is not None:
            await more
        if resp.stopped:
            return


async def _finish_response(
    filters: Tuple[Tuple[ResponseFilter, Any], ...],
    start: int,
    pending: Awaitable[None],
    resp: UpstreamResponse,
) -> None:
    await pending
    for fn, conf in filters[start:]:
        more = fn(conf, resp)
        if more is not None:
            await more


def request_action(req: Request, resp: Response) -> Action:
    """The action a finished request chain answers: a `Stop`, a `Rewrite` or ``None``."""
    if resp.stopped:
        return resp._stop()
    return req._rewrite()
