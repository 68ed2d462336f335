"""The endpoints layer: dialling, serving and the opening handshake.

``client`` (dialling: TCP, TLS), ``server`` (serve, serve_stream),
``handshake`` (the opening handshake, on websockets' public API, which
``websockets`` alone imports), ``http`` (Request, Response, Headers),
``url``, ``origin`` (RFC 6454), ``neterrors`` (connect errors worded),
``reconnect`` (connect_forever).
"""
