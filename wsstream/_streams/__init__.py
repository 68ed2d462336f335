"""The streams layer: the browser's API over the engine.

``stream`` (WebSocketStream), ``channels`` (the readable and the writable),
``large`` (messages in chunks), ``classic`` (the event-based WebSocket),
``broadcast``, ``messages`` (what a message may be), ``promise`` (opened and
closed).
"""
