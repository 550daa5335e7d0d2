"""Actor tokens (DESIGN §11): what verifies, what is refused and why, and how a command's actor is checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from service.domain.model import Actor, Principal
from service.runtime.auth import (
    ActorCheck,
    AuthConfigError,
    NotAuthenticated,
    TokenVerifier,
    algorithms_available,
    bearer,
    issue_token,
    new_key_pair,
)

PRIVATE, PUBLIC = new_key_pair()
OTHER_PRIVATE, _ = new_key_pair()
ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"


@pytest.fixture
def verifier(tmp_path) -> TokenVerifier:
    key = tmp_path / "public.pem"
    key.write_bytes(PUBLIC)
    return TokenVerifier.from_files(None, str(key), ISSUER, AUDIENCE)


def token(private: bytes = PRIVATE, **overrides) -> str:
    claims = dict(sub="u-7", role="client", client_id="c-1", issuer=ISSUER, audience=AUDIENCE)
    claims.update(overrides)
    return issue_token(private, **claims)


class TestVerification:
    def test_a_valid_token_gives_its_principal(self, verifier):
        """Signature, expiry, issuer and audience check out: the claims become the principal."""
        assert verifier.verify(token(name="Ann")) == Principal("u-7", "client", "c-1", "Ann")

    @pytest.mark.parametrize(
        ("make", "why"),
        [
            (lambda: token(OTHER_PRIVATE), "signature"),
            (lambda: token(ttl=timedelta(seconds=1), now=datetime.now(timezone.utc) - timedelta(hours=1)), "expired"),
            (lambda: token(issuer="https://evil.example.com"), "issuer"),
            (lambda: token(audience="someone-else"), "audience"),
            (lambda: token(role="admin"), "role"),
            (lambda: token(client_id=None), "client_id"),
            (lambda: "not.a.jwt", "not a JWT"),
            (lambda: None, "no actor token"),
            (lambda: b"\xff\xfe", "not a JWT"),
            (lambda: "x" * 10_000, "too large"),
        ],
        ids=["forged", "expired", "wrong-issuer", "wrong-audience", "unknown-role", "client-without-client-id",
             "garbage", "missing", "binary", "huge"],
    )
    def test_bad_tokens_are_refused_with_the_reason(self, verifier, make, why):
        """Forged, expired, foreign and malformed tokens are refused, each saying why."""
        with pytest.raises(NotAuthenticated, match=why):
            verifier.verify(make())

    def test_a_symmetric_token_keyed_with_the_public_key_is_refused(self, verifier):
        """Algorithm confusion: an HS256 token whose secret is our public key does not verify."""
        def b64(data: bytes) -> bytes:
            return base64.urlsafe_b64encode(data).rstrip(b"=")

        claims = {"sub": "u-7", "role": "system", "iss": ISSUER, "aud": AUDIENCE,
                  "exp": int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())}
        signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
        forged = signing_input + b"." + b64(hmac.new(PUBLIC, signing_input, hashlib.sha256).digest())
        with pytest.raises(NotAuthenticated):
            verifier.verify(forged)

    def test_keys_rotate_through_a_jwks_file(self, tmp_path):
        """A JWKS with two keys verifies tokens signed by either."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        second_private, _ = new_key_pair()
        keys = [jwt.algorithms.ECAlgorithm.to_jwk(load_pem_private_key(p, None).public_key(), as_dict=True)
                for p in (PRIVATE, second_private)]
        jwks = tmp_path / "jwks.json"
        jwks.write_text(json.dumps({"keys": keys}))
        rotating = TokenVerifier.from_files(str(jwks), None, ISSUER, AUDIENCE)
        assert rotating.verify(token(second_private)).sub == "u-7"
        assert rotating.verify(token()).sub == "u-7"

    def test_no_keys_is_a_configuration_error(self):
        """Auth without keys cannot start (it would refuse everything, or worse, trust everything)."""
        with pytest.raises(AuthConfigError):
            TokenVerifier.from_files(None, None, ISSUER, AUDIENCE)

    def test_every_accepted_algorithm_is_available(self):
        """cryptography is installed, so the asymmetric algorithms we accept are really there."""
        assert algorithms_available()


class TestActorCheck:
    ACTOR = Actor("u-7", "client", "c-1")

    def test_off_trusts_the_command(self):
        """ACTOR_AUTH=off: the first-wave behaviour, no token needed."""
        assert ActorCheck("off", None)((), self.ACTOR) == self.ACTOR

    def test_required_refuses_a_command_without_a_token(self, verifier):
        """ACTOR_AUTH=required: no actor-token header, no action."""
        assert ActorCheck("required", verifier)((), self.ACTOR) == "no actor token"

    def test_optional_accepts_no_token_but_checks_one_that_is_there(self, verifier):
        """ACTOR_AUTH=optional: a missing token passes, a bad one is refused."""
        check = ActorCheck("optional", verifier)
        assert check((), self.ACTOR) == self.ACTOR
        assert "signature" in check([("actor-token", token(OTHER_PRIVATE).encode())], self.ACTOR)

    @pytest.mark.parametrize("claims", [dict(sub="u-8"), dict(role="staff", client_id=None), dict(client_id="c-2")],
                             ids=["sub", "role", "client_id"])
    def test_claims_must_be_the_commands_actor(self, verifier, claims):
        """A valid token for someone else does not vouch for the command's actor."""
        verdict = ActorCheck("required", verifier)([("actor-token", token(**claims).encode())], self.ACTOR)
        assert isinstance(verdict, str) and "does not match" in verdict

    def test_a_matching_token_gives_the_verified_actor_with_its_name(self, verifier):
        """The verified actor carries the token's display name (emails show it)."""
        verdict = ActorCheck("required", verifier)([("actor-token", token(name="Ann").encode())], self.ACTOR)
        assert verdict == Actor("u-7", "client", "c-1", "Ann")

    def test_required_without_keys_cannot_start(self):
        """Requiring tokens with nothing to verify them is a start-up error, not a silent pass."""
        with pytest.raises(AuthConfigError):
            ActorCheck("required", None)


class TestBearer:
    @pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer ", "token-without-scheme"])
    def test_anything_but_a_bearer_token_is_refused(self, verifier, header):
        """Only `Authorization: Bearer <token>` is read."""
        with pytest.raises(NotAuthenticated):
            bearer(header, verifier)

    def test_a_bearer_token_gives_its_principal(self, verifier):
        """The HTTP face uses the same verification as the Kafka face."""
        assert bearer(f"Bearer {token()}", verifier).client_id == "c-1"


class TestTokensMeanTheSameEverywhere:
    """Issue 20: a presented token is verified in every mode, refused in one human sentence, with a small leeway."""

    @pytest.mark.parametrize("garbage", ["not-a-jwt", "abc.t7c.xyz", "e30.e30", "a.b.c.d", "Bearer x.y.z", "t\u00e9.x.y"],
                             ids=["no-dots", "undecodable-header", "two-parts", "four-parts", "scheme", "non-ascii"])
    def test_a_malformed_token_is_refused_in_words_not_codec_internals(self, verifier, garbage):
        """`Invalid header string: 'utf-8' codec can't decode…` never reaches the user: one sentence instead."""
        with pytest.raises(NotAuthenticated) as refused:
            verifier.verify(garbage)
        message = str(refused.value)
        assert "not a JWT" in message and "codec" not in message and "Invalid header" not in message

    def test_off_with_keys_still_verifies_a_presented_token(self, verifier):
        """ACTOR_AUTH=off with keys: no token trusts the command (first wave); a bad token is refused, a good one acts."""
        check = ActorCheck("off", verifier)
        actor = Actor("u-7", "client", "c-1")
        assert check((), actor) == actor
        assert "not a JWT" in check([("actor-token", b"not-a-jwt")], actor)
        assert "signature" in check([("actor-token", token(OTHER_PRIVATE).encode())], actor)
        assert check([("actor-token", token(name="Ann").encode())], actor) == Actor("u-7", "client", "c-1", "Ann")

    def test_expiry_leeway_is_small_by_default_and_a_setting(self, verifier, tmp_path, monkeypatch):
        """ORDERSTATUS_AUTH_LEEWAY_S (default 5 s): a token expired 2 s ago passes, 20 s ago does not, unless set wider."""
        from service.runtime.settings import Settings

        def expired(seconds_ago: float) -> str:
            return token(ttl=timedelta(minutes=1), now=datetime.now(timezone.utc) - timedelta(minutes=1, seconds=seconds_ago))

        assert verifier.leeway_s == 5.0 and Settings().auth_leeway_s == 5.0
        verifier.verify(expired(2))
        with pytest.raises(NotAuthenticated, match="expired"):
            verifier.verify(expired(20))
        monkeypatch.setenv("ORDERSTATUS_AUTH_LEEWAY_S", "60")
        wide = Settings().auth_leeway_s
        key = tmp_path / "public.pem"
        key.write_bytes(PUBLIC)
        assert wide == 60.0
        TokenVerifier.from_files(None, str(key), ISSUER, AUDIENCE, wide).verify(expired(20))

    def test_a_token_of_another_key_family_is_a_refusal_not_a_crash(self):
        """An ES256 token against an RSA key (and the reverse) is NotAuthenticated, never a TypeError."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa_pem = rsa_private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        only_rsa = TokenVerifier([rsa_private.public_key()], ISSUER, AUDIENCE)
        with pytest.raises(NotAuthenticated):
            only_rsa.verify(token())
        only_ec = TokenVerifier([serialization.load_pem_public_key(PUBLIC)], ISSUER, AUDIENCE)
        with pytest.raises(NotAuthenticated):
            only_ec.verify(token(rsa_pem))


def _jwk(public_key, kid: str) -> dict:
    """A public key as a JWKS entry with its kid."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    algorithm = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    assert isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
    return {**algorithm.to_jwk(public_key, as_dict=True), "kid": kid}


def _pem(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


class TestKeySelection:
    """Issue 23 item 3: the key is chosen by kid and by the algorithm's key type and curve."""

    def test_mixed_rsa_ec_and_curves_in_one_jwks_each_verify(self, tmp_path):
        """A JWKS holding an RSA, a P-256 and a P-384 key verifies a token of each (none stops at the first key)."""
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        p256, p384 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
        jwks = tmp_path / "jwks.json"
        jwks.write_text(json.dumps({"keys": [_jwk(rsa_key.public_key(), "r"), _jwk(p384.public_key(), "p384"),
                                             _jwk(p256.public_key(), "p256")]}))
        mixed = TokenVerifier.from_files(str(jwks), None, ISSUER, AUDIENCE)
        assert mixed.verify(token(_pem(rsa_key))).sub == "u-7"
        assert mixed.verify(token(_pem(p256))).sub == "u-7"
        p384_token = jwt.encode({"sub": "u-8", "role": "staff", "iss": ISSUER, "aud": AUDIENCE,
                                 "exp": datetime.now(timezone.utc) + timedelta(minutes=5)}, p384, algorithm="ES384",
                                headers={"kid": "p384"})
        assert mixed.verify(p384_token).sub == "u-8"

    def test_the_kid_names_the_key(self, tmp_path):
        """A token whose kid names one key is checked with that key only; another key's signature under it is refused."""
        from cryptography.hazmat.primitives.asymmetric import ec

        first, second = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        keyed = TokenVerifier([jwt.PyJWK(_jwk(first.public_key(), "one")), jwt.PyJWK(_jwk(second.public_key(), "two"))],
                              ISSUER, AUDIENCE)
        claims = {"sub": "u-7", "role": "staff", "iss": ISSUER, "aud": AUDIENCE,
                  "exp": datetime.now(timezone.utc) + timedelta(minutes=5)}
        assert keyed.verify(jwt.encode(claims, second, algorithm="ES256", headers={"kid": "two"})).sub == "u-7"
        with pytest.raises(NotAuthenticated, match="signature"):
            keyed.verify(jwt.encode(claims, second, algorithm="ES256", headers={"kid": "one"}))

    @pytest.mark.parametrize("header", [{"alg": "ES256", "kid": ["x"]}, {"alg": "ES256", "kid": {"a": 1}},
                                        {"alg": "HS256"}, {"alg": None}, {"alg": "ES256", "crit": ["exp"]}])
    def test_any_odd_header_is_a_refusal_never_an_exception(self, verifier, header):
        """Whatever a token's header holds, the verifier answers NotAuthenticated, never another exception."""
        def part(data) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        forged = f"{part(header)}.{part({'sub': 'u-7', 'role': 'staff'})}.{part('sig')}"
        with pytest.raises(NotAuthenticated):
            verifier.verify(forged)


class TestIssuerAudienceAndReload:
    """Issue 23 item 3: issuer and audience are always required; keys follow their file."""

    @pytest.mark.parametrize(("issuer", "audience", "named"), [(None, AUDIENCE, "ISSUER"), (ISSUER, None, "AUDIENCE"),
                                                                ("", "", "ISSUER and ORDERSTATUS_AUTH_AUDIENCE")])
    def test_a_verifier_without_issuer_or_audience_refuses_to_start(self, tmp_path, issuer, audience, named):
        """No issuer or audience configured: one clear line naming the missing setting, not a verifier that takes any."""
        key = tmp_path / "public.pem"
        key.write_bytes(PUBLIC)
        with pytest.raises(AuthConfigError, match=f"needs ORDERSTATUS_AUTH_{named}"):
            TokenVerifier.from_files(None, str(key), issuer, audience)

    def test_a_token_without_iss_or_aud_is_refused(self, verifier):
        """A validly signed token that names no issuer or no audience does not pass."""
        with pytest.raises(NotAuthenticated, match="'iss'"):
            verifier.verify(token(issuer=None))
        with pytest.raises(NotAuthenticated, match="'aud'"):
            verifier.verify(token(audience=None))

    def test_keys_are_read_again_when_the_file_changes(self, tmp_path, monkeypatch):
        """A key file replaced in place (rotation) is picked up by the running verifier without a restart."""
        import os

        from service.runtime import auth

        monkeypatch.setattr(auth, "RELOAD_CHECK_S", 0.0)
        key = tmp_path / "public.pem"
        key.write_bytes(PUBLIC)
        rotating = TokenVerifier.from_files(None, str(key), ISSUER, AUDIENCE)
        new_private, new_public = new_key_pair()
        with pytest.raises(NotAuthenticated):
            rotating.verify(token(new_private))
        key.write_bytes(new_public)
        os.utime(key, ns=(1, 1))  # a different mtime even on a coarse clock
        assert rotating.verify(token(new_private)).sub == "u-7"
        with pytest.raises(NotAuthenticated):
            rotating.verify(token(PRIVATE))


class TestNoReplayableTokenAtRest:
    """Issue 23 item 4: a command token is bound to its command; no credential is printed or logged."""

    ACTOR = Actor("u-7", "client", "c-1")
    VALUE = b'{"command_id": "cmd-1", "type": "ChangeOrderStatus"}'

    def signer(self):
        from service.runtime.auth import CommandSigner

        return CommandSigner(PRIVATE, ISSUER, AUDIENCE, ttl_s=60)

    def test_a_bound_token_counts_only_on_its_command_id_and_value(self, verifier):
        """The gateway's token acts on the command it was signed for; on another id or value it is refused."""
        bound = self.signer()(Principal("u-7", "client", "c-1"), "cmd-1", self.VALUE).encode()
        check = ActorCheck("required", verifier)
        assert check([("actor-token", bound)], self.ACTOR, ("cmd-1", self.VALUE)) == self.ACTOR
        assert "another command" in check([("actor-token", bound)], self.ACTOR, ("cmd-2", self.VALUE))
        assert "another value" in check([("actor-token", bound)], self.ACTOR, ("cmd-1", self.VALUE + b" "))
        assert "bound" in check([("actor-token", bound)], self.ACTOR)  # no command to bind to: refused

    def test_a_bound_token_is_no_bearer_token(self, verifier):
        """Copied from the commands topic or the DLQ, the gateway's token opens no HTTP face."""
        bound = self.signer()(Principal("u-7", "client", "c-1"), "cmd-1", self.VALUE)
        with pytest.raises(NotAuthenticated, match="not a bearer token"):
            bearer(f"Bearer {bound}", verifier)
        assert bearer(f"Bearer {token()}", verifier).sub == "u-7"  # a user's own token still is

    def test_the_command_token_is_short_lived_and_names_the_caller(self, verifier):
        """The gateway's token lasts the configured TTL and carries the caller's principal, nothing more."""
        bound = self.signer()(Principal("u-7", "client", "c-1", "Ann"), "cmd-1", self.VALUE)
        claims = verifier.claims(bound)
        assert claims["exp"] - claims["iat"] == 60 and claims["cmd"] == "cmd-1"
        assert (claims["sub"], claims["role"], claims["client_id"], claims["name"]) == ("u-7", "client", "c-1", "Ann")

    def test_a_gateway_without_a_signing_key_refuses_to_start(self):
        """No ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE (nor the dev key): one line, never the caller's token on Kafka."""
        from service.runtime.auth import CommandSigner

        with pytest.raises(AuthConfigError, match="ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE"):
            CommandSigner.from_file(None, ISSUER, AUDIENCE)

    def test_dlq_show_redacts_the_actor_token(self):
        """`dlq show` prints an actor-token's size, never its value."""
        from service.adapters.kafka.records import Record
        from service.ops.dlq import read_letter, render

        secret = token().encode()
        record = Record("dlq", 0, 3, 1_700_000_000_000, None, b"{}", [("actor-token", secret), ("traceparent", b"00-x")])
        shown = "\n".join(render(read_letter(record), 4096))
        assert secret.decode() not in shown and f"actor-token: (redacted, {len(secret)} bytes)" in shown
        assert "traceparent: 00-x" in shown

    def test_logs_redact_tokens(self):
        """A log field named like a token, an actor-token among logged headers, or any JWT in a message is replaced."""
        from service.runtime.logging import redact

        jwt_text = token()
        event = redact(None, "info", {"event": "x", "actor_token": jwt_text, "error": f"bad: {jwt_text}!",
                                      "headers": [("actor-token", jwt_text.encode()), ("traceparent", b"t")]})
        assert jwt_text not in repr(event)
        assert event["headers"][1] == ("traceparent", b"t") and event["error"].startswith("bad: (redacted token)")
