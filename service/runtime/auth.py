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

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
from jwt.algorithms import get_default_algorithms

from service.domain.model import ROLES, Actor, Principal

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
TOKEN_HEADER = "actor-token"  # on Kafka; on HTTP it is `Authorization: Bearer …`
MAX_TOKEN_BYTES = 8192
DEFAULT_LEEWAY_S = 5.0  # ORDERSTATUS_AUTH_LEEWAY_S: clock skew tolerated on exp/nbf/iat (PyJWT's own default is 0)


class NotAuthenticated(Exception):
    """The token is missing, malformed, forged, expired, for someone else, or its claims are unusable."""


class AuthConfigError(ValueError):
    """The keys or settings for verifying tokens cannot be used."""


class TokenVerifier:
    def __init__(self, keys: Sequence, issuer: str | None, audience: str | None,
                 leeway_s: float = DEFAULT_LEEWAY_S) -> None:
        if not keys:
            raise AuthConfigError("no verification keys: set ORDERSTATUS_AUTH_JWKS_FILE or ORDERSTATUS_AUTH_PUBLIC_KEYS")
        self.keys = list(keys)
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    @classmethod
    def from_files(cls, jwks_file: str | None, public_key_files: str | None, issuer: str | None,
                   audience: str | None, leeway_s: float = DEFAULT_LEEWAY_S) -> "TokenVerifier":
        keys = []
        try:
            if jwks_file:
                document = json.loads(Path(jwks_file).read_text(encoding="utf-8"))
                keys += [jwt.PyJWK(entry).key for entry in document.get("keys", [])]
            for path in filter(None, (p.strip() for p in (public_key_files or "").split(","))):
                keys.append(_public_key(Path(path).read_bytes()))
        except (OSError, ValueError, jwt.PyJWKError, TypeError) as exc:
            raise AuthConfigError(f"cannot load the token verification keys: {exc}") from None
        return cls(keys, issuer, audience, leeway_s)

    def verify(self, token: str | bytes | None) -> Principal:
        """The principal of a valid token; NotAuthenticated saying why otherwise."""
        if token is None or token == b"" or token == "":
            raise NotAuthenticated("no actor token")
        if isinstance(token, bytes):
            if len(token) > MAX_TOKEN_BYTES:
                raise NotAuthenticated("the actor token is too large")
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise NotAuthenticated("the actor token is not a JWT") from None
        if len(token) > MAX_TOKEN_BYTES:
            raise NotAuthenticated("the actor token is too large")
        token = token.strip()
        if not looks_like_jwt(token):
            raise NotAuthenticated(NOT_A_JWT)
        options = {"require": ["exp", "sub"], "verify_aud": self.audience is not None,
                   "verify_iss": self.issuer is not None}
        last: Exception | None = None
        for key in self.keys:
            try:
                claims = jwt.decode(token, key, algorithms=ALGORITHMS, issuer=self.issuer, audience=self.audience,
                                    leeway=self.leeway_s, options=options)
                break
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError) as exc:  # try the next key (rotation, key types)
                last = exc
            except jwt.ExpiredSignatureError:
                raise NotAuthenticated("the actor token has expired") from None
            except jwt.InvalidIssuerError:
                raise NotAuthenticated("the actor token is from another issuer") from None
            except jwt.InvalidAudienceError:
                raise NotAuthenticated("the actor token is for another audience") from None
            except jwt.ImmatureSignatureError:
                raise NotAuthenticated("the actor token is not valid yet (its nbf or iat is in the future)") from None
            except jwt.MissingRequiredClaimError as exc:
                raise NotAuthenticated(f"the actor token has no {exc.claim!r} claim") from None
            except jwt.InvalidAlgorithmError:
                raise NotAuthenticated("the actor token's algorithm is not accepted (only asymmetric ones are)") from None
            except jwt.DecodeError:
                raise NotAuthenticated(NOT_A_JWT) from None
            except jwt.PyJWTError as exc:
                raise NotAuthenticated(f"the actor token is not valid: {_plain(exc)}") from None
            except (TypeError, ValueError) as exc:  # e.g. a key of another family than the token's alg: try the next
                last = exc
        else:
            raise NotAuthenticated("the actor token's signature does not verify with any configured key "
                                   f"({type(last).__name__})")
        return _principal(claims)


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
                now: datetime | None = None) -> str:
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
    return jwt.encode(claims, key, algorithm=algorithm)


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
    """The principal of an HTTP `Authorization: Bearer <token>` header."""
    if not authorization:
        raise NotAuthenticated("no bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header is not a bearer token")
    return verifier.verify(token.strip())


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

    def __call__(self, headers, actor: Actor) -> Actor | str:
        """The actor to act as (the verified one, with the token's display name), or why not. A token that is
        there is verified in every mode when there are keys (with `off` and no keys there is nothing to verify
        with, and the command's actor is trusted as DESIGN §11 says for first-wave producers)."""
        token = token_of(headers)
        if self.verifier is None or (token is None and self.mode != "required"):
            return actor
        try:
            principal = self.verifier.verify(token)
        except NotAuthenticated as exc:
            return str(exc)
        return principal.mismatch(actor) or principal.actor()
