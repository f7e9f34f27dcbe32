"""What every front door shares about tenants (клиенты): how fast each one may ask.

ZeroMQ (:mod:`engine.service`), HTTP (:mod:`engine.http`) and later the cabinet are peers over
one engine and one tenant model. A tenant's request rate is one budget whichever door its
requests come through, so the doors share one :class:`RateLimits` when they serve together
(:mod:`engine.doors`), and a request over it is refused at once with the seconds to wait.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs


@attrs.define
class TokenBucket:
    """A tenant's request rate: ``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = math.nan
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is."""
        if math.isnan(self.tokens):
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimits:
    """Every tenant's bucket (``[limits]`` rate and burst in kassa.toml), shared by the doors."""

    def __init__(self, tenants: Iterable[str], rate: float, burst: float) -> None:
        self._buckets = {tenant: TokenBucket(rate, burst) for tenant in tenants}

    def __contains__(self, tenant: object) -> bool:
        return tenant in self._buckets

    def take(self, tenant: str, now: float) -> float:
        """Take one of ``tenant``'s tokens: 0.0, or the seconds to wait for one."""
        return self._buckets[tenant].take(now)
