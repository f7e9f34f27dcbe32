"""The register emulator: Shtrih-M and ATOL personalities, a ФН model with its check of marking
codes (marking.py), an OFD model, faults."""
