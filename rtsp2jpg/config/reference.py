"""The configuration reference table, generated from the config schema so the docs cannot drift.

`python -m rtsp2jpg.config.reference` prints the table that docs/configuration.md holds between its
GENERATED markers; tests/integration/ops/test_docs.py fails when the two differ (rerun `--write` to update).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from rtsp2jpg.config.load import LEGACY_ENV
from rtsp2jpg.config.schema import CameraConfig, Config

BEGIN = "<!-- BEGIN GENERATED: python -m rtsp2jpg.config.reference --write -->"
END = "<!-- END GENERATED -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def rows(cls: type = Config, prefix: str = "", env_prefix: str = "RTSP2JPG") -> list[tuple[str, str, str, str, str]]:
    """(key path, type, default, environment variable, help) for every key, in schema order."""
    out = []
    legacy = {".".join(path): name for name, path in LEGACY_ENV.items()}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = f"{prefix}{f.name}"
        help_text = f.metadata.get("help", "")
        if cls is CameraConfig and f.name == "capture":
            continue  # written flat in the camera entry; listed once under capture.*
        if f.metadata.get("parse"):  # polygons, a crop: YAML only
            out.append((key, f.metadata["kind"], _default(f), "", help_text))
        elif dataclasses.is_dataclass(kind):
            out.append((key, "section", "", "", help_text))
            out += rows(kind, key + ".", f"{env_prefix}_{f.name.upper()}" if env_prefix else "")
        elif get_origin(kind) is tuple and get_args(kind)[0] is str:  # e.g. capture.allow_networks
            env = f"{env_prefix}_{f.name.upper()}" if env_prefix else ""
            out.append((key, "list of strings", "[]", env, help_text + " (environment: comma-separated)"))
        elif get_origin(kind) is tuple:
            out.append((key, "list", "[]", "", help_text))
            out += rows(get_args(kind)[0], key + "[].", "")
        else:
            env = f"{env_prefix}_{f.name.upper()}" if env_prefix else ""
            if key in legacy:
                env += f", {legacy[key]}"
            out.append((key, TYPES.get(kind, str(kind)), _default(f), env, help_text))
    return out


def _default(f: dataclasses.Field[Any]) -> str:
    value = f.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value else '""'
    if value == ():
        return "[]"
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render() -> str:
    lines = ["| key | type | default | environment | meaning |", "|---|---|---|---|---|"]
    for key, kind, default, env, help_text in rows():
        lines.append(f"| `{key}` | {kind} | {f'`{default}`' if default else ''} | "
                     f"{', '.join(f'`{e.strip()}`' for e in env.split(',')) if env else ''} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def splice(document: str, table: str) -> str:
    """`document` with the text between the markers replaced by `table`."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), render()), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
