"""Small helpers that keep messages grammatical: counts, articles, "did you mean". Pure."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from collections.abc import Iterable

#: singular -> plural where adding "s" is wrong
_IRREGULAR = {"entry": "entries", "its": "their", "is": "are", "was": "were", "this": "these"}


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``plural(1, "entry")`` -> ``"1 entry"``; ``plural(2, "entry")`` -> ``"2 entries"``."""
    if n == 1:
        return f"{n} {singular}"
    return f"{n} {plural_form or _IRREGULAR.get(singular) or singular + 's'}"


def article(word: str) -> str:
    """``"an arm"``, ``"an x86_64"``, ``"an s390x"``, ``"a riscv64"``: the indefinite article
    for how the word is read aloud (letters before a digit are spelled out: "an ess-390x")."""
    w = word.lower()
    if not w:
        return f"a {word}"
    first = w[0]
    spelled = first in "fhlmnrsx" and (len(w) == 1 or w[1].isdigit() or w[:2] == "sh")
    an = first in "aeiou" or first == "x" or spelled
    return f"{'an' if an else 'a'} {word}"


def suggestion(word: str, choices: Iterable[str], n: int = 2) -> str:
    """``"; did you mean 'qemu-aarch64'?"`` for the closest choices, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=n, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
