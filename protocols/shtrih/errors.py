"""The one error type of the Shtrih-M codec (ошибка протокола ККТ «Штрих-М»)."""

from __future__ import annotations

from protocols.errors import ProtocolError

__all__ = ["ShtrihError"]


class ShtrihError(ProtocolError):
    """Bytes, a payload or an event the Shtrih-M codec cannot accept.

    Raised for garbage from the peer (a bad field, an unknown command), for misuse of a
    connection (an event that is illegal in its state) and when a host runs out of retries.
    A register's own error code in an answer is *not* an exception: it is an
    :class:`~protocols.shtrih.commands.ErrorAnswer`.
    """
