"""The engine: one connection's tasks over a transport, around the core.

``connection`` runs the reader and settles the end, ``writer`` sends, runs
the flusher and keepalive; ``inbox`` and ``outbox`` are the buffers between
them and the user. Bytes move through ``wsstream._transport`` (the layer
below), frames are the protocol core's (``wsstream._protocol``).
"""
