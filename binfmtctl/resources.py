"""Files binfmtctl ships: found in the installed package, else in a source checkout.

The wheel carries them under ``binfmtctl/data/`` (pyproject's force-include); a
checkout has them at their source paths (``data/magic_table.yaml``,
``systemd/binfmtctl.service``).

:func:`shipped` finds one with ``os.path`` and returns its path as text: the table is loaded
by every ``status`` and needs no :mod:`pathlib` (3-4 ms with what it imports). :func:`locate`
answers with ``Path``/``Traversable`` objects, for roots given as such (tests, the unit).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

#: this package's directory and the checkout around it, as text
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
CHECKOUT_DIR = os.path.dirname(PACKAGE_DIR)


def shipped(name: str, source_dir: str) -> str | None:
    """The path of shipped file ``name``: ``<package>/data/NAME``, else
    ``<checkout>/SOURCE_DIR/NAME``; None when neither is a file."""
    for path in (
        os.path.join(PACKAGE_DIR, "data", name),
        os.path.join(CHECKOUT_DIR, source_dir, name),
    ):
        if os.path.isfile(path):
            return path
    return None


def locate(
    name: str, source_dir: str, package_dir: Any = None, checkout_dir: Path | None = None
) -> tuple[Any, Any, Any]:
    """(found or None, packaged path, source path) for shipped file ``name``.

    ``package_dir`` and ``checkout_dir`` default to this package and its checkout;
    tests give their own. Callers raise their own error when nothing is found.
    """
    from pathlib import Path

    if package_dir is None:
        # the package's directory: what importlib.resources.files() gives for an installed
        # package, without importing importlib.resources (and typing) at start-up
        package_dir = Path(PACKAGE_DIR)
    packaged = package_dir / "data" / name
    if packaged.is_file():
        return packaged, packaged, None
    source = (checkout_dir if checkout_dir is not None else Path(CHECKOUT_DIR)) / source_dir / name
    return (source if source.is_file() else None), packaged, source
