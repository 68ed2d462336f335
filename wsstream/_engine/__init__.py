"""The engine: one connection's tasks over a transport, around the core.

``connection`` runs the reader, the flusher and keepalive; ``inbox`` and
``outbox`` are the buffers between them and the user; ``transport`` moves
bytes (a plain socket's fast path, or any trio stream).
"""
