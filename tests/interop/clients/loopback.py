"""A loopback redirect_uri listener, as a native client runs one: an
ephemeral port on 127.0.0.1 whose /callback receives the authorization
response from the browser. The hosted metadata document registers the
port-less http://127.0.0.1/callback; Steward must accept any port."""

import asyncio
import os
import sys
from urllib.parse import parse_qs, urlsplit


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set (run through tests/interop/run.sh)")
    return value


class Callback:
    def __init__(self) -> None:
        self._received: asyncio.Future[dict[str, list[str]]] | None = None
        self._server: asyncio.Server | None = None
        self.redirect_uri = ""

    async def start(self) -> "Callback":
        self._received = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.redirect_uri = f"http://127.0.0.1:{port}/callback"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            url = urlsplit(target)
            if url.path != "/callback":
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            body = b"Authorization received; you can close this page."
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            if self._received is not None and not self._received.done():
                self._received.set_result(parse_qs(url.query, keep_blank_values=True))
        finally:
            await writer.drain()
            writer.close()

    async def wait(self, timeout: float = 60.0) -> dict[str, list[str]]:
        assert self._received is not None
        try:
            return await asyncio.wait_for(self._received, timeout)
        finally:
            if self._server is not None:
                self._server.close()


def single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise RuntimeError(f"authorization response repeats {name}")
    return values[0] if values else None
