"""Verifying actor tokens (DESIGN §11): signed JWTs checked with PyJWT against keys from settings.

A token carries `sub`, `role` (client | staff | manager | system), optional `client_id` and `name`;
its signature, `exp`, `iss` and `aud` are checked. Keys come from a JWKS file
(`ORDERSTATUS_AUTH_JWKS_FILE`) or PEM public keys (`ORDERSTATUS_AUTH_PUBLIC_KEYS`, comma-separated
paths); only asymmetric algorithms are accepted, so holding a verification key never lets anyone sign.

A token means the same on every face (issue 20): whenever one is presented — Kafka header
`actor-token` or HTTP `Authorization: Bearer` — and keys are configured, it is verified, in every
`ACTOR_AUTH` mode; a bad one is refused with one human sentence, never accepted silently. What the
modes differ in is only whether a token is *required* (`required`) and, with no token, whether the
self-asserted actor is trusted (`off`, `optional`). Expiry allows `ORDERSTATUS_AUTH_LEEWAY_S` of clock skew."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import structlog
from jwt.algorithms import get_default_algorithms

from service.domain.model import ROLES, Actor, Principal

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
TOKEN_HEADER = "actor-token"  # on Kafka; on HTTP it is `Authorization: Bearer …`
MAX_TOKEN_BYTES = 8192
log = structlog.get_logger("orderstatus.auth")
DEFAULT_LEEWAY_S = 5.0  # ORDERSTATUS_AUTH_LEEWAY_S: clock skew tolerated on exp/nbf/iat (PyJWT's own default is 0)


class NotAuthenticated(Exception):
    """The token is missing, malformed, forged, expired, for someone else, or its claims are unusable."""


class AuthConfigError(ValueError):
    """The keys or settings for verifying tokens cannot be used."""


@dataclass(frozen=True)
class _Key:
    kty: str  # RSA | EC | OKP
    crv: str | None  # P-256 | P-384 | P-521 for EC
    kid: str | None
    key: object


_ALG_KEY = {"RS": ("RSA", None), "PS": ("RSA", None), "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"),
            "ES512": ("EC", "P-521"), "EdDSA": ("OKP", None)}
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
RELOAD_CHECK_S = 1.0  # the key files are stat()ed at most this often


def _key_of(entry, kid: str | None = None) -> _Key:
    """A verification key described by type and curve (a PyJWK or a cryptography public key)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(entry, _Key):
        return entry
    if isinstance(entry, jwt.PyJWK):
        kid, entry = entry.key_id, entry.key
    if isinstance(entry, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey,
                          ed448.Ed448PrivateKey)):
        entry = entry.public_key()
    if isinstance(entry, rsa.RSAPublicKey):
        return _Key("RSA", None, kid, entry)
    if isinstance(entry, ec.EllipticCurvePublicKey):
        return _Key("EC", _CURVES.get(entry.curve.name, entry.curve.name), kid, entry)
    if isinstance(entry, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return _Key("OKP", None, kid, entry)
    raise AuthConfigError(f"a verification key must be an RSA, EC or Ed25519/Ed448 public key, not {type(entry).__name__}")


def _requirements(issuer: str | None, audience: str | None) -> None:
    missing = [name for name, value in (("ORDERSTATUS_AUTH_ISSUER", issuer), ("ORDERSTATUS_AUTH_AUDIENCE", audience))
               if not value]
    if missing:
        raise AuthConfigError(f"verifying actor tokens needs {' and '.join(missing)} (tokens of any issuer or "
                              "audience would pass otherwise)")


class TokenVerifier:
    """Says yes (a Principal) or no (NotAuthenticated) and nothing else: the key is chosen by the token's
    `kid` and its algorithm's key type and curve, every PyJWT or key error is a NotAuthenticated, issuer and
    audience are always checked, and keys loaded from files are read again when a file changes."""

    def __init__(self, keys: Sequence, issuer: str | None, audience: str | None,
                 leeway_s: float = DEFAULT_LEEWAY_S) -> None:
        if not keys:
            raise AuthConfigError("no verification keys: set ORDERSTATUS_AUTH_JWKS_FILE or ORDERSTATUS_AUTH_PUBLIC_KEYS")
        _requirements(issuer, audience)
        self.keys = [_key_of(k) for k in keys]
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._files: tuple[str | None, str | None] | None = None
        self._stamp: tuple = ()
        self._checked = 0.0

    @classmethod
    def from_files(cls, jwks_file: str | None, public_key_files: str | None, issuer: str | None,
                   audience: str | None, leeway_s: float = DEFAULT_LEEWAY_S) -> "TokenVerifier":
        _requirements(issuer, audience)
        verifier = cls(_load(jwks_file, public_key_files), issuer, audience, leeway_s)
        verifier._files = (jwks_file, public_key_files)
        verifier._stamp = _stamp(jwks_file, public_key_files)
        verifier._checked = time.monotonic()
        return verifier

    def _reload_if_changed(self) -> None:
        """Keys rotated in place (a mounted Secret) are picked up: stat at most once per RELOAD_CHECK_S, read only
        when a file's mtime or size changed; a file caught half-written keeps the old keys until the next look."""
        if self._files is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        self._checked = time.monotonic()
        stamp = _stamp(*self._files)
        if stamp == self._stamp:
            return
        try:
            keys = [_key_of(k) for k in _load(*self._files)]
        except AuthConfigError as exc:
            log.warning("the token verification keys changed but cannot be read; keeping the old ones", error=str(exc))
            return
        if keys:
            self.keys, self._stamp = keys, stamp
            log.info("token verification keys reloaded", keys=len(keys))

    def verify(self, token: str | bytes | None) -> Principal:
        """The principal of a valid token; NotAuthenticated saying why otherwise (never another exception)."""
        return _principal(self.claims(token))

    def claims(self, token: str | bytes | None) -> dict:
        """The verified claims of a token; NotAuthenticated saying why otherwise."""
        if token is None or token == b"" or token == "":
            raise NotAuthenticated("no actor token")
        if isinstance(token, bytes):
            if len(token) > MAX_TOKEN_BYTES:
                raise NotAuthenticated("the actor token is too large")
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise NotAuthenticated("the actor token is not a JWT") from None
        if not isinstance(token, str):
            raise NotAuthenticated("the actor token is not a JWT")
        if len(token) > MAX_TOKEN_BYTES:
            raise NotAuthenticated("the actor token is too large")
        token = token.strip()
        if not looks_like_jwt(token):
            raise NotAuthenticated(NOT_A_JWT)
        try:
            header = jwt.get_unverified_header(token)
        except Exception:
            raise NotAuthenticated(NOT_A_JWT) from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise NotAuthenticated("the actor token's algorithm is not accepted (only asymmetric ones are)")
        self._reload_if_changed()
        kty, crv = _ALG_KEY.get(alg[:2], _ALG_KEY.get(alg, (None, None)))
        fitting = [k for k in self.keys if k.kty == kty and (crv is None or k.crv == crv)]
        if isinstance(kid, str) and any(k.kid == kid for k in fitting):
            fitting = [k for k in fitting if k.kid == kid]
        elif kid is not None:
            fitting = [k for k in fitting if k.kid is None]
        if not fitting:
            raise NotAuthenticated(f"the actor token's signature does not verify with any configured key "
                                   f"(no {kty}{' ' + crv if crv else ''} key{' with kid ' + repr(kid)[:80] if kid else ''})")
        options = {"require": ["exp", "sub", "iss", "aud"]}
        for key in fitting:
            try:
                return jwt.decode(token, key.key, algorithms=[alg], issuer=self.issuer, audience=self.audience,
                                  leeway=self.leeway_s, options=options)
            except jwt.InvalidSignatureError:  # the next key of the same type (rotation)
                continue
            except Exception as exc:  # noqa: BLE001 - the verifier says yes or no, never raises anything else
                raise NotAuthenticated(_why(exc)) from None
        raise NotAuthenticated("the actor token's signature does not verify with any configured key")


def _why(exc: Exception) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the actor token has expired"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the actor token is from another issuer"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the actor token is for another audience"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the actor token is not valid yet (its nbf or iat is in the future)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the actor token has no {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "the actor token's algorithm is not accepted (only asymmetric ones are)"
    if isinstance(exc, jwt.DecodeError):
        return NOT_A_JWT
    if isinstance(exc, jwt.PyJWTError):
        return f"the actor token is not valid: {_plain(exc)}"
    return f"the actor token is not valid ({type(exc).__name__})"


def _load(jwks_file: str | None, public_key_files: str | None) -> list:
    keys: list = []
    try:
        if jwks_file:
            document = json.loads(Path(jwks_file).read_text(encoding="utf-8"))
            entries = document.get("keys", []) if isinstance(document, dict) else None
            if not isinstance(entries, list):
                raise ValueError("a JWKS file is a JSON object with a list `keys`")
            keys += [_key_of(jwt.PyJWK(entry)) for entry in entries]
        for path in filter(None, (p.strip() for p in (public_key_files or "").split(","))):
            keys.append(_key_of(_public_key(Path(path).read_bytes())))
    except AuthConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, JSON, PyJWK and cryptography errors alike
        raise AuthConfigError(f"cannot load the token verification keys: {exc}") from None
    return keys


def _stamp(jwks_file: str | None, public_key_files: str | None) -> tuple:
    paths = [p for p in [jwks_file, *(q.strip() for q in (public_key_files or "").split(","))] if p]
    stamp = []
    for path in paths:
        try:
            st = os.stat(path)
            stamp.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((path, None, None))
    return tuple(stamp)


NOT_A_JWT = ("the actor token is not a JWT (expected three base64url parts separated by dots, "
             "as `orderstatus tokens issue` prints)")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: anything else is refused before PyJWT (whose errors quote codec internals)."""
    return _JWT.fullmatch(token) is not None


def _plain(exc: Exception) -> str:
    """PyJWT's message, cut short and without decoder internals."""
    text = str(exc)
    if "codec" in text or "decode" in text.lower():
        return "it cannot be decoded"
    return text[:200]


def _principal(claims: dict) -> Principal:
    sub, role, client_id, name = (claims.get(k) for k in ("sub", "role", "client_id", "name"))
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise NotAuthenticated("the actor token has no usable sub")
    if role not in ROLES:
        raise NotAuthenticated("the actor token has no usable role")
    if client_id is not None and (not isinstance(client_id, str) or len(client_id) > 200):
        raise NotAuthenticated("the actor token's client_id is not usable")
    if role == "client" and not client_id:
        raise NotAuthenticated("a client's actor token needs a client_id")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        name = None
    return Principal(sub=sub, role=role, client_id=client_id, name=name)


def _public_key(pem: bytes):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem)


def issue_token(private_key_pem: bytes, *, sub: str, role: str, client_id: str | None = None, name: str | None = None,
                ttl: timedelta = timedelta(hours=1), issuer: str | None = None, audience: str | None = None,
                now: datetime | None = None, extra: dict | None = None) -> str:
    """Sign a token for `orderstatus tokens issue` and the dev stack (RS256 for RSA keys, ES256 for EC, EdDSA)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem, password=None)
    algorithm = ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256" if isinstance(key, ec.EllipticCurvePrivateKey)
                 else "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else None)
    if algorithm is None:
        raise AuthConfigError("the signing key must be RSA, EC (P-256) or Ed25519")
    now = now or datetime.now(timezone.utc)
    claims = {"sub": sub, "role": role, "iat": now, "exp": now + ttl}
    for claim, value in (("client_id", client_id), ("name", name), ("iss", issuer), ("aud", audience)):
        if value is not None:
            claims[claim] = value
    return jwt.encode({**claims, **(extra or {})}, key, algorithm=algorithm)


def new_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh EC P-256 key, for the dev stack and tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    return (
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def bearer(authorization: str | None, verifier: TokenVerifier) -> Principal:
    """The principal of an HTTP `Authorization: Bearer <token>` header (never a command's bound token)."""
    if not authorization:
        raise NotAuthenticated("no bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header is not a bearer token")
    claims = verifier.claims(token.strip())
    check_binding(claims, None)
    return _principal(claims)


# A command token (issue 23): the gateway does not put its caller's bearer token on Kafka, where anyone who
# reads the commands topic or the DLQ could replay it; it signs, with its own key, a short-lived token of the
# same principal bound to the one command — its id (`cmd`) and the SHA-256 of its value (`cmd_sha256`).
COMMAND_CLAIM, VALUE_HASH_CLAIM = "cmd", "cmd_sha256"
DEFAULT_COMMAND_TOKEN_TTL_S = 900.0


def value_hash(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


def check_binding(claims: dict, command: tuple[str, bytes | None] | None) -> None:
    """A bound token counts only on its command (same id, same value); as a bearer token (`command` None) never."""
    if COMMAND_CLAIM not in claims and VALUE_HASH_CLAIM not in claims:
        return
    if command is None:
        raise NotAuthenticated("the actor token is bound to one command and is not a bearer token")
    command_id, value = command
    if claims.get(COMMAND_CLAIM) != command_id:
        raise NotAuthenticated("the actor token is bound to another command")
    if not hmac.compare_digest(str(claims.get(VALUE_HASH_CLAIM)), value_hash(value)):
        raise NotAuthenticated("the actor token is bound to another value of this command")


class CommandSigner:
    """The gateway's signer of command tokens (ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE; its public half must be
    among the worker's verification keys)."""

    def __init__(self, private_key_pem: bytes, issuer: str | None, audience: str | None,
                 ttl_s: float = DEFAULT_COMMAND_TOKEN_TTL_S) -> None:
        _requirements(issuer, audience)
        self.private_key_pem, self.issuer, self.audience, self.ttl = private_key_pem, issuer, audience, ttl_s
        self(Principal(sub="probe", role="system"), "probe", b"")  # a key that cannot sign fails at start

    @classmethod
    def from_file(cls, path: str | None, issuer: str | None, audience: str | None,
                  ttl_s: float = DEFAULT_COMMAND_TOKEN_TTL_S) -> "CommandSigner":
        if not path:
            raise AuthConfigError("the gateway needs ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE (a private key whose public "
                                  "half the worker trusts): callers' own tokens are never put on Kafka")
        try:
            return cls(Path(path).read_bytes(), issuer, audience, ttl_s)
        except AuthConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreadable file, not a private key
            raise AuthConfigError(f"cannot use the gateway signing key {path}: {exc}") from None

    def __call__(self, principal: Principal, command_id: str, value: bytes) -> str:
        return issue_token(self.private_key_pem, sub=principal.sub, role=principal.role,
                           client_id=principal.client_id, name=principal.name, ttl=timedelta(seconds=self.ttl),
                           issuer=self.issuer, audience=self.audience,
                           extra={COMMAND_CLAIM: command_id, VALUE_HASH_CLAIM: value_hash(value)})


def token_of(headers) -> bytes | None:
    """The `actor-token` header's value among Kafka headers (the last one wins), or None."""
    found = None
    for name, value in headers:
        if name == TOKEN_HEADER:
            found = value
    return found


def algorithms_available() -> bool:
    """Every accepted algorithm is usable (cryptography is installed): no silent HS-only PyJWT."""
    return set(ALGORITHMS) <= set(get_default_algorithms())


class ActorCheck:
    """DESIGN §11 on Kafka: `off` trusts the command's actor (first-wave producers), `optional` verifies a
    token when one is present, `required` refuses a command without a valid token whose claims are its actor."""

    def __init__(self, mode: str, verifier: TokenVerifier | None) -> None:
        if mode != "off" and verifier is None:
            raise AuthConfigError(f"ORDERSTATUS_ACTOR_AUTH={mode} needs verification keys")
        self.mode = mode
        self.verifier = verifier

    def __call__(self, headers, actor: Actor, command: tuple[str, bytes | None] | None = None) -> Actor | str:
        """The actor to act as (the verified one, with the token's display name), or why not. A token that is
        there is verified in every mode when there are keys (with `off` and no keys there is nothing to verify
        with, and the command's actor is trusted as DESIGN §11 says for first-wave producers). A token bound to
        a command (the gateway's) counts only on that command: `command` is its (command id, value bytes)."""
        token = token_of(headers)
        if self.verifier is None or (token is None and self.mode != "required"):
            return actor
        try:
            claims = self.verifier.claims(token)
            check_binding(claims, command)
            principal = _principal(claims)
        except NotAuthenticated as exc:
            return str(exc)
        return principal.mismatch(actor) or principal.actor()

    def token_refusal(self, headers) -> str | None:
        """With `required`, why a message's token does not vouch for it at all (for a message that could not be
        read as a command, so there is no actor to compare); None when it does or the mode does not ask."""
        if self.mode != "required":
            return None
        try:
            self.verifier.verify(token_of(headers))
        except NotAuthenticated as exc:
            return str(exc)
        return None
