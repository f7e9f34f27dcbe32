"""The register emulator: Shtrih-M and ATOL personalities, a ФН model, an OFD model, faults."""
