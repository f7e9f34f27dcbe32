"""Tests of the ZeroMQ service and its wire format."""
