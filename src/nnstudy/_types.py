"""The number types every spec field is declared with, so that each rule holds for every key, including
keys added later: finite floats only, no boolean taken for a number, integers that fit in 64 bits.

pydantic's lax mode would read ``lr = true`` as 1.0 and accepts ``inf`` and ``nan`` for any float
(``inf`` passes every ``> 0`` bound); these types refuse both, with one message each.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AllowInfNan, BeforeValidator, Field

__all__ = ["FiniteFloat", "Int", "NonNegInt", "PosInt", "Seed", "INT_LIMIT"]

#: Integers are kept below 2**63: torch takes seeds and sizes as 64-bit integers.
INT_LIMIT = 2**63


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a number is needed, not the boolean {str(value).lower()}")
    return value


def _finite(value: Any) -> Any:
    value = _not_bool(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            raise ValueError("a finite number is needed; this one does not fit in a float") from None
        if as_float != as_float or as_float in (float("inf"), float("-inf")):
            raise ValueError("a finite number is needed, not inf or nan")
    return value


def _int_range(value: Any) -> Any:
    value = _not_bool(value)
    if isinstance(value, int) and not -INT_LIMIT < value < INT_LIMIT:
        raise ValueError(f"an integer of at most 19 digits is needed (|n| < 2**63), not {value}")
    return value


#: A float that is finite (``inf``/``nan`` refused) and not a boolean; integers are taken as floats.
FiniteFloat = Annotated[float, BeforeValidator(_finite), AllowInfNan(False)]
#: An integer (below 2**63 in size) that is not a boolean.
Int = Annotated[int, BeforeValidator(_int_range)]
PosInt = Annotated[Int, Field(gt=0)]
NonNegInt = Annotated[Int, Field(ge=0)]
#: A random seed (torch takes any non-negative 64-bit integer).
Seed = NonNegInt
