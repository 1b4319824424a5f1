"""Read YAML data files with the fastest safe loader available."""

from pathlib import Path

import yaml

# libyaml's loader is an order of magnitude faster and builds the same data as the pure one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> object:
    """Return the data of a UTF-8 YAML file, allowing only plain types."""
    text = path.read_text(encoding="utf-8")
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - the loader is a safe one
