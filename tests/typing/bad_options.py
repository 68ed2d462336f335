"""Calls mypy must refuse (tests/test_typing.py checks that it does)."""

import wsstream


async def handler(wss: wsstream.WebSocketStream) -> None:
    await wss.opened


wsstream.WebSocketStream("ws://h/", read_limit="1 MiB")  # E: arg-type
wsstream.WebSocketStream("ws://h/", max_mesage_size=10)  # E: call-arg
wsstream.serve(handler, "127.0.0.1", 0, ping_interval="20")  # E: arg-type
wsstream.WebSocket("ws://h/", open_timeout=[1])  # E: arg-type
