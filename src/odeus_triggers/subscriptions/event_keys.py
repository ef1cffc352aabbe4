"""The dedupe key of an event: JavaScript's `String(event.id)`, so that `1`, `1.0` and `"1"` are
one event (RUNTIME.md, "Dedupe")."""

import math
from decimal import Decimal

MAX_KEY_LENGTH = 255


def js_number_string(value: float) -> str:
    """ECMAScript's Number::toString(10) of a finite number (ECMA-262, 6.1.6.1.20)."""
    if value == 0:
        return "0"  # -0 too
    if value < 0:
        return "-" + js_number_string(-value)
    if float(value).is_integer() and value < 1e21:
        return str(int(value))
    # Python's repr is the shortest round-tripping form, the same digits ECMAScript picks.
    sign, digit_tuple, exponent = Decimal(repr(float(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    k = len(digits)
    n = k + exponent  # value = 0.digits × 10^n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def event_key(value: object) -> str | None:
    """The key of an event id, or None when the id is not a valid one: a non-empty string or a
    finite number, at most 255 characters once written as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        key = value
    elif isinstance(value, int):
        key = str(value)  # it came from JavaScript's JSON: already the digits JavaScript writes
    elif isinstance(value, float) and math.isfinite(value):
        key = js_number_string(value)
    else:
        return None
    return key if 0 < len(key) <= MAX_KEY_LENGTH else None
