"""Coverage-guided fuzzing of Kassa's decoders, state machines and front doors (``kassa fuzz``).

Like :mod:`benchmarks`, this room may import protocols, engine and emulator; only the CLI's
``fuzz`` command imports it, inside its handler. See docs/fuzzing.md.
"""
