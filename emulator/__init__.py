"""The fiscal register emulator: register personalities, a ФН model, an OFD model, timing, faults."""
