"""The magic table compiled to JSON, so commands that need it do not import PyYAML.

``data/magic_table.yaml`` stays the source anyone edits. ``data/magic_table.json`` is
its parsed document plus the CRC-32 of the YAML text it came from; it ships next to the
YAML (``binfmtctl/data/`` in the wheel). :func:`load` returns the compiled document only
when that digest matches the YAML text being loaded, so an edited YAML is read as YAML
(and ``tests/test_table.py`` fails) until the JSON is regenerated::

    python -m binfmtctl.table_compiled
"""

from __future__ import annotations

import json
import zlib

from binfmtctl import resources

COMPILED_FILE = "magic_table.json"
SOURCE_FILE = "magic_table.yaml"


def digest(yaml_text: str) -> str:
    return f"crc32:{zlib.crc32(yaml_text.encode('utf-8')):08x}"


def render(document: object, yaml_text: str) -> str:
    """The compiled file's text for ``document`` parsed from ``yaml_text`` (pure)."""
    return json.dumps({"source_digest": digest(yaml_text), "table": document}, indent=1) + "\n"


def load(yaml_text: str) -> dict[str, object] | None:
    """The parsed document of ``yaml_text`` from the shipped compiled file, or None when
    there is none or it was compiled from another text."""
    found = resources.shipped(COMPILED_FILE, "data")
    if found is None:
        return None
    try:
        with open(found, encoding="utf-8") as f:
            compiled = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(compiled, dict) or compiled.get("source_digest") != digest(yaml_text):
        return None
    table = compiled.get("table")
    return table if isinstance(table, dict) else None


def main() -> None:
    """Regenerate ``data/magic_table.json`` of this checkout from its YAML."""
    from pathlib import Path

    import yaml

    source = Path(resources.CHECKOUT_DIR) / "data" / SOURCE_FILE
    text = source.read_text(encoding="utf-8")
    document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = source.with_name(COMPILED_FILE)
    out.write_text(render(document, text), encoding="utf-8")
    print(f"wrote {out} ({digest(text)})")


if __name__ == "__main__":
    main()
