"""Rewriting a ccxt Binance exchange's URLs onto another host (the loopback server).

Binance spreads its APIs over several hosts (``api.binance.com``, ``fapi.binance.com``,
``stream.binance.com:9443``, ``fstream.binance.com``, ``ws-api.binance.com`` ...). The loopback
server answers all of them on one ``http://127.0.0.1:PORT``, so the rewrite maps every URL onto
that origin and keeps its path:

- REST paths are already unique per API (``/api/v3``, ``/sapi/v1``, ``/fapi/v1``, ``/dapi/v1``
  ...), so they are kept as they are: ``https://fapi.binance.com/fapi/v1`` becomes
  ``http://127.0.0.1:PORT/fapi/v1``.
- WebSocket API paths are unique too: ``wss://ws-api.binance.com:443/ws-api/v3`` becomes
  ``ws://127.0.0.1:PORT/ws-api/v3``.
- Market-stream paths are *not* unique: spot and USDⓈ-M futures both serve ``/ws`` and
  ``/stream``, on different hosts. Those URLs get the first label of their host as a path
  prefix: ``wss://stream.binance.com:9443/ws`` becomes ``ws://127.0.0.1:PORT/stream/ws`` and
  ``wss://fstream.binance.com/ws`` becomes ``ws://127.0.0.1:PORT/fstream/ws``. The prefix is
  also what ccxt.pro itself relies on: it tells a spot stream from a futures one by ``/stream``
  in the connection URL (``binance.is_spot_url``), and derives the futures ``/public``,
  ``/market`` and ``/private`` endpoints by rewriting a trailing ``/ws``.

:func:`point_ccxt_at` applies the rewrite to a live ccxt object, production and sandbox
(``test``, ``demo``) URLs alike, and keeps ccxt's per-market-type error tables working (ccxt
chooses them by the original host name; see the function).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = ["STREAM_PATH_ROOTS", "loopback_url", "point_ccxt_at", "rewrite_urls"]

#: First path segments that several Binance hosts share; URLs starting with one of them get
#: their host's first label as a prefix.
STREAM_PATH_ROOTS: Final = frozenset({"ws", "stream", "public", "market", "private", "pm"})
# ccxt URL tables that hold endpoints; "www", "doc", "fees" ... are documentation links.
_URL_TABLES: Final = ("api", "test", "demo")


def _origin(base_url: str) -> tuple[str, str]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url {base_url!r} is not an http(s) origin; pass what "
            "LoopbackExchange.start() returns, e.g. 'http://127.0.0.1:8765'"
        )
    if parts.path not in ("", "/"):
        raise ValueError(
            f"base_url {base_url!r} has a path; pass only scheme, host and port, "
            "e.g. 'http://127.0.0.1:8765'"
        )
    return parts.scheme, parts.netloc


def loopback_url(url: str, base_url: str) -> str:
    """``url`` (a Binance REST or WebSocket URL) moved onto ``base_url``'s scheme and host.

    ``http``/``https`` URLs take ``base_url``'s scheme; ``ws``/``wss`` URLs take ``ws`` for an
    ``http`` base and ``wss`` for an ``https`` one. The path is kept, with the host's first label
    prepended when the path starts with a segment in :data:`STREAM_PATH_ROOTS`. Strings that are
    not absolute http(s)/ws(s) URLs are returned unchanged.
    """
    scheme, netloc = _origin(base_url)
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        new_scheme = scheme
    elif parts.scheme in ("ws", "wss"):
        new_scheme = "wss" if scheme == "https" else "ws"
    else:
        return url
    if not parts.hostname:
        return url
    path = parts.path.rstrip("/")
    first = path.lstrip("/").split("/", 1)[0]
    if first in STREAM_PATH_ROOTS:
        path = "/" + parts.hostname.split(".", 1)[0] + path
    query = f"?{parts.query}" if parts.query else ""
    return f"{new_scheme}://{netloc}{path}{query}"


def rewrite_urls(urls: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """A copy of a ccxt ``urls`` table with every endpoint moved by :func:`loopback_url`.

    Only the endpoint tables (``api``, ``test``, ``demo``) are rewritten, recursively (ccxt.pro
    nests ``api.ws.ws-api.spot``); links such as ``www`` and ``doc`` are kept.
    """

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return loopback_url(value, base_url)
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        return value

    _origin(base_url)
    return {k: walk(v) if k in _URL_TABLES else v for k, v in urls.items()}


def point_ccxt_at(exchange: Any, base_url: str) -> Any:
    """Point a ccxt Binance object (``binance``/``binanceusdm``, async or pro) at ``base_url``.

    Rewrites ``exchange.urls`` with :func:`rewrite_urls` (so REST, market streams, the spot
    WebSocket API and the futures listenKey streams all reach the server, before or after
    ``set_sandbox_mode``), and returns ``exchange`` for chaining. Call it before the first
    request, on the loop that owns the exchange; nothing is sent.

    ccxt picks Binance's per-market error tables (for example ``-2019`` → ``InsufficientFunds``
    on USDⓈ-M) from the request URL's host name (``binance.get_exceptions_by_url``). A rewritten
    URL has no Binance host name, so this also wraps that method on the instance: it maps the
    loopback URL back to the production URL with the same path before ccxt looks it up. Errors
    therefore raise the same ccxt classes as against Binance.
    """
    originals: dict[str, str] = {}  # loopback base -> production base, for error tables

    def collect(original: Any, rewritten: Any) -> None:
        if isinstance(original, str) and isinstance(rewritten, str):
            originals.setdefault(rewritten, original)
        elif isinstance(original, Mapping) and isinstance(rewritten, Mapping):
            for key, value in original.items():
                collect(value, rewritten.get(key))

    new_urls = rewrite_urls(exchange.urls, base_url)
    collect(exchange.urls.get("api"), new_urls.get("api"))
    exchange.urls = new_urls

    by_url = getattr(exchange, "get_exceptions_by_url", None)
    if by_url is not None and not getattr(by_url, "_vigil_loopback", False):
        # Longest prefix first, so "/fapi/v2" is not taken for "/fapi/v1".
        prefixes = sorted(originals.items(), key=lambda kv: len(kv[0]), reverse=True)

        def exceptions_by_url(url: str | None, exact_or_broad: str) -> Any:
            if url is not None:
                for loop_base, prod_base in prefixes:
                    if url.startswith(loop_base):
                        url = prod_base + url[len(loop_base) :]
                        break
            return by_url(url, exact_or_broad)

        exceptions_by_url._vigil_loopback = True  # type: ignore[attr-defined]
        exchange.get_exceptions_by_url = exceptions_by_url
    return exchange
