"""What a kernel version does with a registration: one fact per property, each with
the change that introduced it. Pure: :meth:`KernelProfile.current_default` is the only place
that asks the host (``os.uname()``); the grammar and the rules take a profile."""

from __future__ import annotations

import os

from binfmtctl.record import dataclass


def _leading_digits(text: str) -> str:
    """The decimal digits ``text`` starts with (``\\d+`` of a str pattern: Unicode decimals)."""
    n = 0
    while n < len(text) and text[n].isdecimal():
        n += 1
    return text[:n]


@dataclass(frozen=True)
class KernelProfile:
    """What a kernel version does with a registration (see the reference's §7)."""

    version: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> KernelProfile:
        """``"6.1"``, ``"4.4.0-210-generic"``, ``"6.18.44-fc"`` -> profile."""
        # what re.match(r"^\s*(\d+)\.(\d+)", text) takes, without importing re
        rest = text.lstrip()
        major = _leading_digits(rest)
        minor = (
            _leading_digits(rest[len(major) + 1 :])
            if rest[len(major) : len(major) + 1] == "."
            else ""
        )
        if not major or not minor:
            raise ValueError(f"not a kernel version: {text!r} (expected X.Y, e.g. 5.10)")
        return cls((int(major), int(minor)))

    @classmethod
    def current_default(cls) -> KernelProfile:
        """The running kernel's profile (the edge: asks the host)."""
        return cls.parse(os.uname().release)

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)

    # Facts, each with the change that introduced it.
    @property
    def max_register(self) -> int:
        return 1920 if self.at_least(3, 18) else 256  # 2014 cleanup raised 256 -> 1920

    @property
    def buf_size(self) -> int:
        return 256 if self.at_least(5, 1) else 128  # BINPRM_BUF_SIZE, 6eb3c3d0a52d

    @property
    def known_flags(self) -> str:
        return "POCF" if self.at_least(4, 8) else "POC"  # F: 948b701a607f

    @property
    def real_errno(self) -> bool:
        """Post-parse failures return their own errno (before 4.8: always EINVAL)."""
        return self.at_least(4, 8)

    @property
    def fopen_before_lookup(self) -> bool:
        """F's open_exec() runs before the name lookup (e7850f4d844e, 5.12)."""
        return self.at_least(5, 12)

    @property
    def kstrtoint_offset(self) -> bool:
        """Offset parsed with kstrtoint, negatives refused (5cc41e099504, ~4.18)."""
        return self.at_least(4, 18)

    @property
    def legacy_unescape(self) -> bool:
        """Pre-3.18 private unquote(): a backslash never swallows the next byte."""
        return not self.at_least(3, 18)

    @property
    def per_userns(self) -> bool:
        """Each user namespace may mount its own instance (21ca59b365c0, 6.7)."""
        return self.at_least(6, 7)

    @property
    def preserve_argv0_auxv(self) -> bool:
        """P is visible to the interpreter as AT_FLAGS bit 0 (2347961b11d4, 5.12)."""
        return self.at_least(5, 12)

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.label,
            "max_register": self.max_register,
            "buf_size": self.buf_size,
            "known_flags": self.known_flags,
            "real_errno": self.real_errno,
            "fopen_before_lookup": self.fopen_before_lookup,
            "per_userns": self.per_userns,
        }
