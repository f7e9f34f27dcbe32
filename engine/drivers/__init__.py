"""Register drivers: one protocol each, behind :class:`~engine.drivers.base.RegisterDriver`."""
