"""Calls mypy must refuse (tests/api/test_typing.py checks that it does)."""

import wsstream


async def handler(wss: wsstream.WebSocketStream) -> None:
    await wss.opened


wsstream.WebSocketStream("ws://h/", read_limit="1 MiB")  # E: arg-type
wsstream.WebSocketStream("ws://h/", max_mesage_size=10)  # E: call-arg
wsstream.serve(handler, "127.0.0.1", 0, ping_interval="20")  # E: arg-type
wsstream.WebSocket("ws://h/", open_timeout=[1])  # E: arg-type


# Each server runs until cancelled (NoReturn): one call per function, or mypy
# would not check the calls after the first.


async def server_0() -> None:
    await wsstream.serve(handler, "127.0.0.1", 0, max_connections="10")  # E: arg-type


async def server_1() -> None:
    await wsstream.serve(handler, "127.0.0.1", 0, reuse_port=1.0)  # E: arg-type


async def server_2() -> None:
    await wsstream.serve_unix(handler, "/run/ws.sock", mode="0o660")  # E: arg-type


async def server_3() -> None:
    await wsstream.serve_unix(handler, "/run/ws.sock", max_connections="10")  # E: arg-type


async def server_4() -> None:
    await wsstream.serve_listeners(handler, [], process_response=3)  # E: arg-type


async def server_5() -> None:
    await wsstream.serve_listeners(handler, [], no_such_option=1)  # E: call-arg
