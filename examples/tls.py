"""wss:// with a throwaway certificate: a TLS echo server and a client that
trusts it, on 127.0.0.1.

    python examples/tls.py

The certificate comes from ``trustme`` (``pip install trustme``; it is in the
``test`` extra), a test CA that exists only in memory. With a real
certificate, build the server's context the same way from your files::

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain("fullchain.pem", "privkey.pem")
    await wsstream.serve(handler, "0.0.0.0", 443, ssl_context=context)

and give clients nothing at all: by default ``wss://`` verifies the server
against the system's trust store and checks the host name. The command line
does the same with ``python -m wsstream serve --certfile ... --keyfile
... PORT`` and ``python -m wsstream connect --cafile ca.pem wss://...``.
"""

from __future__ import annotations

import functools
import ssl
import sys

import trio

import wsstream

try:
    import trustme
except ImportError:
    sys.exit("examples/tls.py needs trustme: pip install trustme (or pip install -e '.[test]')")


async def echo(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


async def main() -> int:
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)  # the server's chain and key
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)  # the client trusts our CA, and only in this context

    async with trio.open_nursery() as nursery:
        serve = functools.partial(wsstream.serve, echo, "127.0.0.1", 0,
                                  ssl_context=server_context)
        port = (await nursery.start(serve))[0].socket.getsockname()[1]
        url = f"wss://127.0.0.1:{port}/"
        print(f"wss server on {url}")

        async with wsstream.WebSocketStream(url, ssl_context=client_context) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("hello over TLS")
            print("echoed:", await readable.receive())
            wss.close(1000)
            print("closed:", await wss.closed)

        # Without trusting the CA, the default context refuses the certificate.
        async with wsstream.WebSocketStream(url) as wss:
            try:
                await wss.opened
                print("unexpected: an untrusted certificate was accepted")
                return 1
            except wsstream.HandshakeError as exc:
                print(f"without the CA: refused as it should be ({exc.message})")
        nursery.cancel_scope.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
