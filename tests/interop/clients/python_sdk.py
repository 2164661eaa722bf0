"""The official MCP Python SDK (PyPI `mcp`, 2.x or 1.x) as a client of the
example MCP server: discovery through its protected resource metadata,
`OAuthClientProvider(..., client_metadata_url=...)` with a hosted Client ID
Metadata Document, `resource` on the authorization and token requests, then a
tool call. The two major versions differ in their HTTP client (httpx2 in 2.x,
httpx in 1.x), in what the callback handler returns (2.x takes the RFC 9207
`iss` and validates it itself; 1.x takes `(code, state)`, so this application
checks `iss` as the MCP authorization spec requires), and in the transport's
stream tuple.

With INTEROP_REGISTRATION=dcr the provider gets no client_metadata_url, so the
SDK registers itself at Steward's registration_endpoint (RFC 7591) first; the
script then insists the client_id it got is one Steward's DCR issued."""

import asyncio
import os
import secrets
import sys
from importlib.metadata import version
from urllib.parse import parse_qs, urlsplit

from loopback import Callback, env, single

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MCP_VERSION = version("mcp")
V2 = int(MCP_VERSION.split(".")[0]) >= 2
if V2:
    import httpx2 as httpx
    from mcp.client.auth import AuthorizationCodeResult
else:
    import httpx


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def main() -> None:
    mcp_url = env("INTEROP_MCP_URL")
    issuer = env("INTEROP_ISSUER")
    dcr = os.environ.get("INTEROP_REGISTRATION") == "dcr"
    metadata_url = None if dcr else env("INTEROP_CLIENT_ID")
    callback = await Callback().start()
    seen: dict[str, dict[str, list[str]]] = {}
    storage = MemoryStorage()

    async def redirect_handler(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        seen["request"] = query
        client_id = metadata_url
        if dcr:
            # Steward's registration endpoint issues client ids with this
            # prefix; any other id would mean DCR never happened.
            info = storage.client_info
            client_id = info.client_id if info else None
            if not client_id or not client_id.startswith("dcr_"):
                raise RuntimeError(f"not a DCR client id: {info}")
            if info.client_secret:
                raise RuntimeError("open DCR issued a secret to a public client")
            if info.token_endpoint_auth_method != "none":
                raise RuntimeError(f"registered token_endpoint_auth_method: {info.token_endpoint_auth_method}")
            print(f"registered by DCR: client_id={client_id}", flush=True)
        if query.get("client_id") != [client_id]:
            raise RuntimeError(f"client_id sent: {query.get('client_id')}")
        if query.get("resource") != [mcp_url]:
            raise RuntimeError(f"resource sent: {query.get('resource')}")
        if query.get("code_challenge_method") != ["S256"]:
            raise RuntimeError("no PKCE S256")
        # The harness is the browser: it opens what we print.
        print(f"open in a browser: {url}", flush=True)

    async def callback_handler():
        params = await callback.wait()
        if single(params, "error"):
            raise RuntimeError(f"authorization error: {params}")
        code = single(params, "code")
        state = single(params, "state")
        iss = single(params, "iss")
        if code is None:
            raise RuntimeError("no code in the authorization response")
        if V2:
            # The SDK validates iss against the metadata (RFC 9207, SEP-2468).
            return AuthorizationCodeResult(code=code, state=state, iss=iss)
        if iss != issuer:
            raise RuntimeError(f"RFC 9207: iss {iss!r} is not the issuer {issuer}")
        return code, state

    metadata = OAuthClientMetadata(
        client_name=f"MCP Python SDK {MCP_VERSION} interop client",
        redirect_uris=[callback.redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=metadata_url,
    )
    text = f"hello from mcp {MCP_VERSION} {secrets.token_hex(4)}"
    async with httpx.AsyncClient(auth=provider, timeout=30.0) as http:
        async with streamable_http_client(mcp_url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                print("tools:", ", ".join(t.name for t in tools.tools), flush=True)
                result = await session.call_tool("echo", {"text": text})
    if "request" not in seen:
        raise RuntimeError("the SDK never asked for a browser")
    if storage.tokens is None or not storage.tokens.access_token:
        raise RuntimeError("no access token stored")
    print(f"token: type={storage.tokens.token_type} scope={storage.tokens.scope}", flush=True)
    got = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    if getattr(result, "isError", False) or getattr(result, "is_error", False):
        raise RuntimeError(f"echo failed: {result}")
    if got != [text]:
        raise RuntimeError(f"echo returned {result}")
    print(f"echo ok: {got[0]}")
    print(f"python-mcp-{MCP_VERSION}{'-dcr' if dcr else ''}: PASS")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # one readable line for the harness log, then the trace
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        raise
