"""ИНН (taxpayer number): check digits and the padding registers put around it."""

from __future__ import annotations

_WEIGHTS_10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check(weights: tuple[int, ...], digits: str) -> int:
    return sum(w * int(d) for w, d in zip(weights, digits, strict=False)) % 11 % 10


def inn_is_valid(inn: str) -> bool:
    """The check digits of a 10-digit (organisation) or 12-digit (person) INN."""
    if not inn.isascii() or not inn.isdigit():
        return False
    if len(inn) == 10:
        return _check(_WEIGHTS_10, inn) == int(inn[9])
    if len(inn) == 12:
        return _check(_WEIGHTS_11, inn) == int(inn[10]) and _check(_WEIGHTS_12, inn) == int(inn[11])
    return False


def normalise_inn(text: str) -> str:
    """An INN without its space padding.

    Some registers left-pad a 10-digit INN with ``00`` to 12 characters: such a value is
    restored to 10 digits when it is not itself a valid 12-digit INN and the 10 digits are valid.
    """
    inn = text.strip(" ")
    padded = len(inn) == 12 and inn.startswith("00") and not inn_is_valid(inn)
    return inn[2:] if padded and inn_is_valid(inn[2:]) else inn
