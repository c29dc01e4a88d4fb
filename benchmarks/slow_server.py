"""A local vendor server that adds a fixed delay to every call, for the concurrency benchmark.

    python benchmarks/slow_server.py [--delay-ms 50] [--port 0]    # prints "listening on PORT", then serves

`cascade.testing.FakeVendorServer` is a ThreadingHTTPServer: a thread per connection and `http.server` parsing,
which is plenty for tests but not for 2,000 requests a second from 100 keep-alive connections. This one is an
asyncio server (stdlib only) that serves the same vendor wire-format replies (`benchmarks/common.py`): an answer,
or a low judge score when the request carries a judge prompt. It runs in its own process so that it does not
share the client's interpreter lock; `concurrency.py` starts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import common

_REASONS = {200: b"OK", 404: b"Not Found"}


def _responses() -> dict[str, common.Replies]:
    return {vendor: common.replies_for(vendor) for vendor in common.VENDORS}


def _vendor(path: bytes) -> str | None:
    if path.endswith(b"/chat/completions"):
        return "openai"
    if path.endswith(b"/v1/messages"):
        return "anthropic"
    if b":generateContent" in path:
        # The legacy SDK's REST transport asks for numbered enums.
        return "google-legacy" if b"enum-encoding=int" in path or b"/v1beta/" in path else "google"
    return None


def _encode(reply: common.Reply) -> bytes:
    head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, b'').decode()}"]
    head += [f"{k}: {v}" for k, v in reply.headers.items() if k.lower() != "content-length"]
    head += [f"content-length: {len(reply.payload)}", "connection: keep-alive"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + reply.payload


class SlowServer:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.replies = _responses()
        self.encoded = {vendor: (_encode(r.answer), _encode(r.judge)) for vendor, r in self.replies.items()}
        self.not_found = _encode(common.Reply(404, {"content-type": "application/json"}, b'{"error": "no route"}'))
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                path = parts[1] if len(parts) > 1 else b"/"
                length, chunked = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                body = await self._chunked(reader) if chunked else await reader.readexactly(length) if length else b""
                await asyncio.sleep(self.delay_s)
                vendor = _vendor(path)
                if vendor is None:
                    writer.write(self.not_found)
                else:
                    answer, judge = self.encoded[vendor]
                    writer.write(judge if b"<<<ANSWER " in body else answer)
                self.served += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)


async def serve(delay_ms: float, port: int) -> None:
    server = SlowServer(delay_ms / 1000)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=2048)
    print(f"listening on {listener.sockets[0].getsockname()[1]}", flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.delay_ms, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
