"""The one credential stripper: what may be shown of a URL, and text with secrets removed.

Every message, repr and log line that names a server goes through :func:`shown_url`, and
every error text that a client library produced goes through :func:`redact` with the
secrets in play, so no password, token or API key reaches a user's terminal or a log,
whatever form the URL took: ``http://user:pw@host``, ``user:pw@host:19530`` (no scheme),
``host/?api_key=...`` or a key in the fragment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import (
    parse_qsl,
    quote,
    quote_plus,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

HIDDEN = "***"
# a secret shorter than this is hidden only where it stands as a whole word: a user name
# "api" must not garble "--api-key" (longer ones are hidden wherever they appear)
WHOLE_WORD_BELOW = 8
# Query parameters that carry credentials, compared case-insensitively without '-' and '_'.
SECRET_PARAMS = {
    "apikey",
    "key",
    "token",
    "accesstoken",
    "password",
    "passwd",
    "pwd",
    "secret",
    "auth",
    "authorization",
    "signature",
    "sig",
    "credential",
    "credentials",
    "sid",
    "sas",
}
# user[:password]@ after an optional scheme and any number of slashes: "http://u:p@h",
# "u:p@h", "//u:p@h", "///u:p@h", "http:/u:p@h" (a scheme counts only before a slash, so
# that "user:pw@host" is read as userinfo, not as the scheme "user:"). It runs to the LAST
# "@": a password typed unencoded may hold "@", "/", "#" or "?" ("u:p@ss/w#rd@h"), and all
# of it is hidden (hiding a path that held an "@" is the cheaper mistake).
_USERINFO = re.compile(r"^(?P<scheme>(?:[a-zA-Z][a-zA-Z0-9+.-]*:(?=/))?/*)(?P<userinfo>.*@)")
# name=value parameters anywhere after the host: query (?a=1&b=2) and matrix (;a=1)
_PARAMETER = re.compile(r"(?P<lead>[;?&])(?P<name>[^=;?&#/]+)=(?P<value>[^;&?#/]*)")
SECRET_PARTS = ("pass", "secret", "token", "apikey", "auth", "credential", "signature",
                "session", "jwt", "bearer", "cookie")  # fmt: skip
NOT_SECRETS = {"PWD", "OLDPWD"}  # the shell's working directories, not passwords


def _is_secret(name: str) -> bool:
    plain = unquote(name).replace("-", "").replace("_", "").lower()
    return plain in SECRET_PARAMS or any(part in plain for part in SECRET_PARTS)


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries ``user[:password]@`` (with or without a scheme)."""
    return bool(_USERINFO.match(url.strip()))


def shown_url(url: str) -> str:
    """``url`` fit for messages: no ``user:password@``, secret query values hidden, no
    fragment. Works without a scheme too (``user:pw@host:19530``)."""
    url = url.strip()
    url = _USERINFO.sub(lambda m: m.group("scheme"), url, count=1)
    url = _PARAMETER.sub(
        lambda m: f"{m['lead']}{m['name']}={HIDDEN}" if _is_secret(m["name"]) else m[0], url
    )
    scheme_less = "://" not in url
    try:
        parts = urlsplit(f"//{url}" if scheme_less else url)
    except ValueError:
        return HIDDEN  # unparsable: show nothing of it rather than a secret
    query = urlencode(
        [(k, HIDDEN if _is_secret(k) else v) for k, v in parse_qsl(parts.query, True)],
        safe="*",
    )
    shown = urlunsplit(parts._replace(query=query, fragment=""))
    return shown[2:] if scheme_less and shown.startswith("//") else shown


def url_secrets(url: str) -> list[str]:
    """The secret values inside ``url`` (password, user, secret query values)."""
    found: list[str] = []
    match = _USERINFO.match(url.strip())
    if match:
        user, _, password = match.group("userinfo")[:-1].partition(":")
        found += [password, user]
    try:
        query = urlsplit(url if "://" in url else f"//{url}").query
    except ValueError:
        return found
    found += [v for k, v in parse_qsl(query, True) if _is_secret(k)]
    found += [m["value"] for m in _PARAMETER.finditer(url) if _is_secret(m["name"])]
    return [s for s in found if s]


def process_secrets(argv: Iterable[str], environ: dict[str, str]) -> list[str]:
    """Every secret this process was given: in an address among its arguments or its
    environment, or as the value of a flag or variable whose name says it is one
    (``--api-key K``, ``--token=T``, ``QDRANT_API_KEY``). The last-resort scrub of every
    message the CLI prints."""
    found: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if arg.startswith("--") and _is_secret(name.lstrip("-")):
            found.append(value if equals else (args[i + 1] if i + 1 < len(args) else ""))
        elif "@" in arg or "=" in arg:
            found += url_secrets(arg)
    for name, value in environ.items():
        if name in NOT_SECRETS:
            continue
        if _is_secret(name):
            found.append(value)
        elif "@" in value or "=" in value:
            found += url_secrets(value)
    return [s for s in found if s]


def redact(text: str, secrets: Iterable[str | None] = (), urls: Iterable[str | None] = ()) -> str:
    """``text`` with every secret (and the secrets inside ``urls``) replaced by ``***``,
    also where a library quoted them URL-encoded."""
    values = {s for s in secrets if s}
    for url in urls:
        if url:
            values.update(url_secrets(url))
    for value in sorted(values, key=len, reverse=True):
        if len(value) < 3:  # one- or two-character "secrets" would shred the message
            continue
        # surrogateescape: a secret from argv or the environment may hold bytes that are
        # not UTF-8 (os.fsdecode's lone surrogates), quoted as the bytes they stand for
        quoted = quote(value, safe="", errors="surrogateescape")
        plus = quote_plus(value, errors="surrogateescape")
        for form in {value, unquote(value), quoted, plus}:
            if len(form) >= WHOLE_WORD_BELOW:
                text = text.replace(form, HIDDEN)
            else:  # a short user name ("api") is also part of words: "--api-key"
                text = re.sub(rf"(?<![\w-]){re.escape(form)}(?![\w-])", HIDDEN, text)
    return text


def check_url(url: str, flag: str) -> None:
    """A URL urllib can take apart (host, port): or a one-line error that shows it safely."""
    from smec_index.errors import SmecError

    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        if has_userinfo(url):  # the parser's reason would quote a piece of the password
            raise SmecError(
                f"{flag} {shown_url(url)}: not a valid address; a password holding '/', "
                "'#', '?' or '@' must be percent-encoded (or pass it as --api-key / --token)"
            ) from None
        raise SmecError(f"{flag} {shown_url(url)}: not a valid address ({exc})") from None
    if not parts.hostname:
        raise SmecError(f"{flag} {shown_url(url)}: no host in it; use http://host:port")


def check_credential(value: str, flag: str) -> None:
    """An API key or token goes into an HTTP or gRPC header, which carries printable ASCII
    only: anything else (a stray newline, a smart quote pasted from a page) is a one-line
    error that names the flag and never quotes the value."""
    from smec_index.errors import SmecError

    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        what = "a control character" if bad.isascii() else "a non-ASCII character"
        raise SmecError(
            f"{flag} holds {what} at position {value.index(bad) + 1}; a key or token is "
            "printable ASCII (check what was pasted)"
        )
