"""API keys: made, revoked and listed by the CLI as the owner; checked by the API as the reader.

A key is `assay_<id>_<secret>`: a 12-hex-digit public id and 256 random bits. Only the SHA-256 of the
whole key is stored (`api.keys.secret_sha256`), so the table - readable by the read-only role - never
holds a usable key; a random 256-bit secret needs no salt or slow hash against guessing. Each key is
scoped to endpoint groups (`SCOPES`; `*` = all but `EXPLICIT_SCOPES`, i.e. `audit`, which a key
gets only by name) and to marts (`*` = all), and may carry an expiry (`expires_at`):
from then on it answers 401 "expired", also from a server's key cache. It may also mask columns
(`masks`, each `<mart>.<column>`): the key reads a masked column as null everywhere (pages, lookups,
exports, `select=`), may not filter or sort on it (403: a filter would disclose it by bisection), and
sees no search document type and no `/v1/ask` answer drawn from a mart it masks. A column of the
mart's key cannot be masked: the key orders the pages (their cursors carry its values) and names
rows in lookups.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from assay.api.errors import ApiError
from assay.core.database import PostgresResource

if TYPE_CHECKING:
    from assay.api.db import Database

SCHEMA = "api"
TABLE = "keys"
ALL = "*"
# Endpoint groups a key can be scoped to. A new router adds its group here (see README "Read API").
SCOPES = ("marts", "answers", "search", "process", "quality", "metrics", "ask", "audit")
# Scopes a key gets only by name, never through `*`: reading who read what is an administrator's.
EXPLICIT_SCOPES = ("audit",)
DEFAULT_SCOPES = ("marts",)
_NONE: frozenset[str] = frozenset()

_TOKEN = re.compile(r"assay_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    marts: tuple[str, ...]
    rate_limit_per_minute: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None  # the latest request (audit.record_access stamps it)
    masks: tuple[str, ...] = ()  # `<mart>.<column>` read as null


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_key(
    postgres: PostgresResource,
    name: str,
    *,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    marts: Iterable[str] = (ALL,),
    rate_limit_per_minute: int | None = None,
    known_marts: Iterable[str] | None = None,
    expires_at: dt.datetime | None = None,
    masks: Iterable[str] = (),
    mart_columns: Mapping[str, tuple[Iterable[str], Iterable[Iterable[str]]]] | None = None,
) -> tuple[KeyInfo, str]:
    """Store a new key and return it with its token (shown once; only the hash is kept).

    `mart_columns` (mart -> (its columns, its unique keys), from the manifest) checks the masks: a
    mask must name a column, and not one of a unique key (nor any column of a mart without one,
    whose every column is then its key)."""
    scopes, marts = tuple(dict.fromkeys(scopes)), tuple(dict.fromkeys(marts))
    masks = tuple(dict.fromkeys(masks))
    if not name.strip():
        raise ValueError("a key needs a name")
    bad = [s for s in scopes if s not in (*SCOPES, ALL)]
    if bad or not scopes:
        raise ValueError(f"unknown scope {bad[0] if bad else ''!r}; choose from {', '.join(SCOPES)} or *")
    if known_marts is not None:
        allowed = set(known_marts)
        unknown = [m for m in marts if m != ALL and m not in allowed]
        if unknown:
            raise ValueError(f"unknown mart {unknown[0]!r}; marts are {', '.join(sorted(allowed))}")
    if not marts:
        raise ValueError("a key needs at least one mart (or *)")
    _check_masks(masks, marts, mart_columns)
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise ValueError("the rate limit must be at least 1 request per minute")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("the expiry needs a time zone")
        if expires_at <= dt.datetime.now(dt.UTC):
            raise ValueError("the expiry is in the past")
    key_id = secrets.token_hex(6)
    token = f"assay_{key_id}_{secrets.token_urlsafe(32)}"
    with postgres.connect(autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "insert into {} (id, name, secret_sha256, scopes, marts, rate_limit_per_minute, expires_at,"
                " masks) values (%s, %s, %s, %s, %s, %s, %s, %s) returning created_at"
            ).format(sql.Identifier(SCHEMA, TABLE)),
            [
                key_id,
                name,
                digest(token),
                list(scopes),
                list(marts),
                rate_limit_per_minute,
                expires_at,
                list(masks),
            ],
        ).fetchone()
    assert row is not None
    info = KeyInfo(key_id, name, scopes, marts, rate_limit_per_minute, row[0], None, expires_at, masks=masks)
    return info, token


def _check_masks(
    masks: tuple[str, ...],
    marts: tuple[str, ...],
    mart_columns: Mapping[str, tuple[Iterable[str], Iterable[Iterable[str]]]] | None,
) -> None:
    for mask in masks:
        mart, dot, column = mask.partition(".")
        if not dot or not mart or not column:
            raise ValueError(f"mask {mask!r}: expected <mart>.<column>, e.g. vendor_spend.vendor_name")
        if ALL not in marts and mart not in marts:
            raise ValueError(f"mask {mask!r}: the key may not read mart {mart!r} at all; drop the mask")
        if mart_columns is None:
            continue
        if mart not in mart_columns:
            raise ValueError(
                f"mask {mask!r}: unknown mart {mart!r}; marts are {', '.join(sorted(mart_columns))}"
            )
        columns, unique_keys = mart_columns[mart]
        columns = list(columns)
        if column not in columns:
            raise ValueError(
                f"mask {mask!r}: {mart} has no column {column!r}; its columns are {', '.join(columns)}"
            )
        keys = [tuple(k) for k in unique_keys]
        if not keys or any(column in k for k in keys):
            raise ValueError(
                f"mask {mask!r}: {column} is part of {mart}'s key, which orders its pages (their cursors"
                " carry its values) and names rows in lookups, so a mask could not hide it; mask another"
                " column or leave the mart out of --mart"
            )


def revoke_key(postgres: PostgresResource, key_id: str) -> bool:
    """Revoke a key by its id (or the whole token); False when no active key has that id."""
    match = _TOKEN.fullmatch(key_id)
    key_id = match.group(1) if match else key_id
    with postgres.connect(autocommit=True) as conn:
        cursor = conn.execute(
            sql.SQL("update {} set revoked_at = now() where id = %s and revoked_at is null").format(
                sql.Identifier(SCHEMA, TABLE)
            ),
            [key_id],
        )
        return cursor.rowcount == 1


def list_keys(postgres: PostgresResource) -> list[KeyInfo]:
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL(
                "select id, name, scopes, marts, rate_limit_per_minute, created_at, revoked_at, expires_at,"
                " last_used_at, masks from {} order by created_at, id"
            ).format(sql.Identifier(SCHEMA, TABLE))
        ).fetchall()
    return [KeyInfo(*r[:9], masks=tuple(r[9])) for r in rows]


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid key."""

    key_id: str
    name: str
    scopes: frozenset[str]
    marts: frozenset[str]
    rate_limit_per_minute: int | None
    expires_at: float | None = None  # time.time() from which the key is refused
    masks: frozenset[str] = frozenset()  # `<mart>.<column>` this key reads as null

    def masked(self, mart: str) -> frozenset[str]:
        """The columns of `mart` this key reads as null (and may not filter or sort on)."""
        if not self.masks:
            return _NONE
        prefix = mart + "."
        return frozenset(m[len(prefix) :] for m in self.masks if m.startswith(prefix))

    def may_use(self, scope: str) -> bool:
        return scope in self.scopes or (ALL in self.scopes and scope not in EXPLICIT_SCOPES)

    def may_read(self, mart: str) -> bool:
        return ALL in self.marts or mart in self.marts

    def require(self, scope: str, mart: str | None = None) -> None:
        if not self.may_use(scope):
            raise ApiError(403, f"this API key is not allowed to use the {scope!r} endpoints")
        if mart is not None and not self.may_read(mart):
            raise ApiError(403, f"this API key is not allowed to read mart {mart!r}")


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="assay"'}


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, UNAUTHORIZED_HEADERS)


class KeyStore:
    """Checks tokens against `api.keys`, trusting an answer for `cache_seconds`."""

    LOOKUP = sql.SQL(
        "select secret_sha256, name, scopes, marts, rate_limit_per_minute, revoked_at is not null,"
        " extract(epoch from expires_at)::float8, masks from {} where id = %s"
    ).format(sql.Identifier(SCHEMA, TABLE))
    MAX_CACHED = 10_000

    def __init__(self, db: Database, cache_seconds: float, negative_seconds: float = 2.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.negative_seconds = min(negative_seconds, cache_seconds) if cache_seconds > 0 else 0.0
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        # Keys found invalid, kept apart and least recently stored out first, so a flood of random
        # keys neither grows memory nor pushes the valid keys out of their cache.
        self._rejected: OrderedDict[bytes, float] = OrderedDict()
        self.lookups = 0

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                "(create one with `assay api-key create`)"
            )
        match = _TOKEN.fullmatch(token)
        if not match:
            raise unauthorized("malformed API key: expected assay_<id>_<secret>")
        hashed = digest(token)
        now = time.monotonic()
        cached = self._cache.get(hashed)
        if cached is not None and cached[0] > now:
            if _expired(cached[1]):
                raise unauthorized("this API key has expired")
            return cached[1]
        rejected_until = self._rejected.get(hashed)
        if rejected_until is not None and rejected_until > now:
            raise unauthorized("invalid or revoked API key")
        self.lookups += 1
        principal = await self._lookup(match.group(1), hashed)
        if principal is None:
            if self.negative_seconds > 0:
                self._rejected.pop(hashed, None)
                self._rejected[hashed] = now + self.negative_seconds
                while len(self._rejected) > self.MAX_CACHED:
                    self._rejected.popitem(last=False)
            raise unauthorized("invalid or revoked API key")
        self._rejected.pop(hashed, None)
        if _expired(principal):  # not remembered as invalid: the answer says why
            raise unauthorized("this API key has expired")
        if self.cache_seconds > 0:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[hashed] = (now + self.cache_seconds, principal)
        return principal

    async def _lookup(self, key_id: str, hashed: bytes) -> Principal | None:
        rows = await self.db.fetch(self.LOOKUP, [key_id])
        if not rows:
            return None
        secret_sha256, name, scopes, marts, rate_limit, revoked, expires_at, masks = rows[0]
        if revoked or not hmac.compare_digest(bytes(secret_sha256), hashed):
            return None
        return Principal(
            key_id, name, frozenset(scopes), frozenset(marts), rate_limit, expires_at, frozenset(masks)
        )


def _expired(principal: Principal) -> bool:
    return principal.expires_at is not None and time.time() >= principal.expires_at
