"""bench.load's HTTP/1.1 client (its customers' connections), against a real local socket server."""

from __future__ import annotations

import asyncio
import json

from bench.load import _Http

GUARD_S = 60


async def _serve(responses: list[bytes], seen: list[bytes]):
    """A loopback server answering each request, in order, with the next raw response; a response of
    b"" closes the connection instead (a keep-alive connection dropped under the client)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while responses:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                seen.append(head + await reader.readexactly(length))
                raw = responses.pop(0)
                if not raw:
                    break
                writer.write(raw)
                await writer.drain()
                if b"Connection: close" in raw:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_the_load_client_reads_sized_chunked_and_closing_responses_and_reconnects() -> None:
    body = json.dumps({"conversation_id": "c1", "response": "Réponse"}).encode()
    responses = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nTrop\r\n3\r\n...\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"",  # the next connection is dropped before an answer
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ]
    seen: list[bytes] = []

    async def scenario() -> list:
        server = await _serve(responses, seen)
        http = _Http(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=GUARD_S)
        results = []
        try:
            for n in range(5):
                try:
                    results.append(await http.post_json("/api/v1/chat/message", {"message": f"é{n}"}, {"Idempotency-Key": f"k{n}"}))
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    results.append(type(exc).__name__)
        finally:
            http.close()
            server.close()
            await server.wait_closed()
        return results

    first, limited, refused, dropped, after = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    assert first[0] == 200 and json.loads(first[2]) == {"conversation_id": "c1", "response": "Réponse"}
    assert limited[0] == 429 and limited[1]["retry-after"] == "7" and limited[2] == b"Trop..."
    assert refused[0] == 503 and refused[1]["connection"] == "close"
    assert dropped == "IncompleteReadError"  # a transport error: bench.load retries it with the same key
    assert after == (200, {"content-length": "2"}, b"{}")  # on a new connection
    request = seen[0].decode()
    assert request.startswith("POST /api/v1/chat/message HTTP/1.1\r\n") and "Idempotency-Key: k0\r\n" in request
    assert json.loads(request.split("\r\n\r\n", 1)[1]) == {"message": "é0"}
