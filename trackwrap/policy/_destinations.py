"""Where a call sends to: e-mail domains and host names taken from argument strings.

Every function here takes whatever string an agent passed and never raises. A value whose
domain or host cannot be told contributes the whole string, lower-cased, so it matches no
ordinary domain glob: a rule allowing ``acme.com`` never admits it, and a rule catching calls
that leave ``acme.com`` does.

Names are folded, not resolved: Unicode compatibility forms are normalized (NFKC, so
full-width letters become ASCII ones), the ideographic full stops count as dots, and everything
is lower-cased. Punycode is left as it is.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["email_domain", "fold", "host_of", "split_addresses"]

_ADDRESS_SEPARATORS = re.compile(r"[,;]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_NETLOC_END = re.compile(r"[/\\?#]")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def fold(text: str) -> str:
    """``text`` stripped, NFKC-normalized, with ideographic full stops as dots, lower-cased."""
    return unicodedata.normalize("NFKC", text.strip()).translate(_DOTS).lower()


def split_addresses(text: str) -> list[str]:
    """The non-empty, stripped entries of a ``,``/``;``-separated address string."""
    return [part.strip() for part in _ADDRESS_SEPARATORS.split(text) if part.strip()]


def email_domain(address: str) -> str:
    """The lower-cased domain of one address: the part after its last ``@``.

    ``Name <user@host>`` gives the domain of the bracketed address; a trailing dot is dropped.
    An address without ``@`` or with an empty domain gives the whole address, folded.
    """
    text = address.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rfind("<") + 1 : -1].strip()
    _, at, domain = text.rpartition("@")
    folded = fold(domain).rstrip(".")
    if not at or not folded:
        return fold(address)
    return folded


def host_of(value: str) -> str | None:
    """The lower-cased host of a host name, ``host:port``, ``[v6]:port`` or URL.

    User information (``user@``), the port, IPv6 brackets and a trailing dot are dropped; a
    bare IPv6 address stays as it is, and ``//host`` counts as a URL. ``None`` for an empty
    value; the whole value, folded, when no host can be found in it (``file:///etc/hosts``,
    ``http://``).
    """
    text = fold(value)
    if not text:
        return None
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme is not None else text.removeprefix("//")
    netloc = _NETLOC_END.split(rest, maxsplit=1)[0]
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        end = netloc.find("]")
        host = netloc[1:end] if end > 0 else ""
    elif netloc.count(":") == 1:
        host = netloc.partition(":")[0]
    else:
        host = netloc
    host = host.rstrip(".")
    return host or text
