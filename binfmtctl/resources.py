"""Files binfmtctl ships: found in the installed package, else in a source checkout.

The wheel carries them under ``binfmtctl/data/`` (pyproject's force-include); a
checkout has them at their source paths (``data/magic_table.yaml``,
``systemd/binfmtctl.service``).
"""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def locate(
    name: str, source_dir: str, package_dir: Any = None, checkout_dir: Path | None = None
) -> tuple[Any, Any, Any]:
    """(found or None, packaged path, source path) for shipped file ``name``.

    ``package_dir`` and ``checkout_dir`` default to this package and its checkout;
    tests give their own. Callers raise their own error when nothing is found.
    """
    if package_dir is None:
        # the package's directory: what importlib.resources.files() gives for an installed
        # package, without importing importlib.resources (and typing) at start-up
        package_dir = PACKAGE
    packaged = package_dir / "data" / name
    if packaged.is_file():
        return packaged, packaged, None
    source = (checkout_dir if checkout_dir is not None else CHECKOUT) / source_dir / name
    return (source if source.is_file() else None), packaged, source
