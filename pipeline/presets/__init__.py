"""Recipe presets: `cmkd preset esc50 --root PATH` rewrites the values a recipe sets in params.yaml, in place.

Each preset (esc50.yaml, fsd50k.yaml, audioset.yaml here) holds the values its recipe sets (method.md's recipe
table), and every preset sets the same keys, so switching from one to another leaves nothing of the first behind.
They are written into params.yaml line by line, so its comments and every other value stay as they are, and the
result is checked by parsing it again. Keys a preset sets must already exist in params.yaml.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

PRESETS = Path(__file__).parent
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w.-]+):(?P<value>[^#]*?)(?P<comment>\s+#.*)?$")


def available() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def load_preset(name: str) -> dict:
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no preset {name!r}; available: {', '.join(available())}")
    return yaml.safe_load(path.read_text())


def leaves(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) and value else value
    return out


def apply(params_file: Path, overrides: dict) -> dict:
    """Write `overrides` (nested like params.yaml) into params_file, keeping its comments; returns the new params."""
    params_file = Path(params_file)
    text = params_file.read_text()
    expected = merged(yaml.safe_load(text), overrides)
    wanted = leaves(overrides)
    lines, path, done = text.splitlines(), [], set()
    for i, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        depth = len(match["indent"]) // 2
        path = path[:depth] + [match["key"]]
        for key, value in wanted.items():
            if tuple(path) == key:
                rendered = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
                rendered = rendered.removesuffix("\n...").removesuffix("...").strip()
                lines[i] = _with_comment(f"{match['indent']}{match['key']}: {rendered}", line, match["comment"])
                done.add(key)
            elif key[: len(path)] == tuple(path) and match["value"].strip():
                # an inline mapping ({name: ..., lr: ...}) holding the key: rewrite the whole mapping
                parent = tuple(path)
                value = merged(yaml.safe_load(match["value"]), _subtree(overrides, parent))
                rendered = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 16).strip()
                lines[i] = _with_comment(f"{match['indent']}{match['key']}: {rendered}", line, match["comment"])
                done.update(k for k in wanted if k[: len(parent)] == parent)
    missing = [".".join(key) for key in wanted if key not in done]
    if missing:
        raise KeyError(f"{params_file}: the preset sets {', '.join(missing)}, which params.yaml does not have")
    new_text = "\n".join(lines) + "\n"
    if yaml.safe_load(new_text) != expected:
        raise RuntimeError(f"{params_file}: rewriting it in place went wrong; it is unchanged")
    params_file.write_text(new_text)
    return expected


def _with_comment(new: str, old: str, comment: str | None) -> str:
    """Keep the line's comment, in its old column where the new value leaves room."""
    if not comment:
        return new
    column = old.index("#", len(old) - len(comment))
    return new + " " * max(1, column - len(new)) + comment.strip()


def _subtree(tree: dict, path: tuple) -> dict:
    for key in path:
        tree = tree[key]
    return tree
