"""authlib 1.9 against Steward's output:

- RFC 8414: Steward's metadata through authlib's AuthorizationServerMetadata
  validator (with its RFC 9207 extension class);
- an authorization-code flow with authlib's own OAuth 2 client
  (AsyncOAuth2Client: PKCE S256, `resource`), so the token is a real one;
- RFC 9068: that access token through authlib's JWTBearerTokenValidator, as a
  resource server would run it (signature through the JWKS, iss, aud, exp,
  sub, client_id, iat, jti, typ at+jwt, scope), and the same validator must
  refuse it for another audience and when tampered with.
"""

import asyncio
import sys

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc.jwk import KeySet

from loopback import Callback, env, single


class StewardTokens(JWTBearerTokenValidator):
    def __init__(self, issuer: str, resource: str, jwks: dict) -> None:
        super().__init__(issuer=issuer, resource_server=resource)
        self._jwks = KeySet.import_key_set(jwks)

    def get_jwks(self) -> KeySet:
        return self._jwks


def must_refuse(validator: StewardTokens, token: str, why: str) -> None:
    try:
        claims = validator.authenticate_token(token)
        validator.validate_token(claims, scopes=None, request=None)
    except InvalidTokenError:
        print(f"refused as expected: {why}")
        return
    raise RuntimeError(f"authlib's RFC 9068 validator accepted a token {why}")


async def main() -> None:
    issuer = env("INTEROP_ISSUER")
    resource = env("INTEROP_RESOURCE")
    scope = env("INTEROP_SCOPE")
    client_id = env("INTEROP_CLIENT_ID")

    async with httpx2.AsyncClient(timeout=20.0) as http:
        r = await http.get(f"{issuer}/.well-known/oauth-authorization-server")
        r.raise_for_status()
        metadata = rfc8414.AuthorizationServerMetadata(r.json())
        metadata.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
        if metadata["issuer"] != issuer:
            raise RuntimeError(f"metadata issuer {metadata['issuer']!r} is not {issuer!r}")
        print("RFC 8414 metadata: valid (authlib AuthorizationServerMetadata + RFC 9207 extension)")
        jwks = (await http.get(metadata["jwks_uri"])).raise_for_status().json()

    callback = await Callback().start()
    verifier = generate_token(48)
    async with AsyncOAuth2Client(
        client_id=client_id,
        redirect_uri=callback.redirect_uri,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        timeout=20.0,
    ) as oauth:
        url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, resource=resource
        )
        print(f"open in a browser: {url}", flush=True)
        params = await callback.wait()
        if single(params, "iss") != issuer:
            raise RuntimeError(f"RFC 9207: iss {params.get('iss')} is not {issuer}")
        if single(params, "state") != state:
            raise RuntimeError("state mismatch")
        code = single(params, "code")
        if not code:
            raise RuntimeError(f"no code: {params}")
        token = await oauth.fetch_token(
            metadata["token_endpoint"], code=code, code_verifier=verifier, resource=resource
        )
    access_token = token["access_token"]

    validator = StewardTokens(issuer, resource, jwks)
    claims = validator.authenticate_token(access_token)
    validator.validate_token(claims, scopes=[scope], request=None)
    print(
        f"RFC 9068 access token: valid (typ={claims.header.get('typ')} alg={claims.header.get('alg')} "
        f"aud={claims['aud']} client_id={claims['client_id']})"
    )
    if claims["client_id"] != client_id:
        raise RuntimeError(f"client_id claim {claims['client_id']}")
    must_refuse(StewardTokens(issuer, resource + "-other", jwks), access_token, "for another audience")
    must_refuse(StewardTokens(issuer + "/other", resource, jwks), access_token, "from another issuer")
    head, body, sig = access_token.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    must_refuse(validator, f"{head}.{body}.{flipped}", "with a broken signature")
    print("authlib: PASS")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
