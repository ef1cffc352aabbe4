"""Slugs: kebab-case for triggers, camelCase identifiers for input fields."""

from functools import lru_cache

from slugify import slugify

TRIGGER_SLUG_MAX = 100
TRIGGER_SLUG_FALLBACK = "trigger"
FIELD_SLUG_FALLBACK = "field"


def trigger_slug(name: str) -> str:
    return slugify(name, max_length=TRIGGER_SLUG_MAX, word_boundary=False) or TRIGGER_SLUG_FALLBACK


def with_suffix(base: str, n: int) -> str:
    """The n-th candidate for a slug taken `n - 1` times: base, base-2, base-3, … within 100 chars."""
    if n == 1:
        return base
    suffix = f"-{n}"
    return base[: TRIGGER_SLUG_MAX - len(suffix)].rstrip("-") + suffix


@lru_cache(maxsize=4096)
def field_slug(label: str) -> str:
    """`Project ID` -> `projectId`: a JavaScript identifier, so polling code can read `inputs.projectId`."""
    words = slugify(label, separator="-").split("-")
    words = [w for w in words if w]
    if not words:
        return FIELD_SLUG_FALLBACK
    slug = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return f"_{slug}" if slug[0].isdigit() else slug
