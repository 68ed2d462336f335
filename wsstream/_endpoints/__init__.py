"""The endpoints layer: dialling, serving and the opening handshake.

``client`` (dialling: TCP, TLS), ``listen`` (serve on TCP, serve_unix: the
sockets), ``server`` (serve_listeners, serve_stream: the one server, admission
and graceful shutdown), ``serverstats`` (ServerStatistics),
``handshake`` (the opening handshake, on websockets' public API, which
``websockets`` alone imports), ``compression`` (the ``Deflate`` settings,
the permessage-deflate offer and answer), ``http`` (Request, Response, Headers),
``url``, ``origin`` (RFC 6454), ``neterrors`` (connect errors worded),
``reconnect`` (connect_forever).
"""
