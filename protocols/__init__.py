"""Sans-IO codecs for fiscal documents and fiscal register wire protocols.

Bytes in, values or events out: nothing here touches sockets, clocks or global state, and
nothing imports from the other Kassa packages (``engine``, ``transports``, ``emulator``).
"""
