"""Bad input, generated (hypothesis, derandomized): a valid params.yaml and a valid manifest mutated many ways. Every
case is either still valid or ends in one error that names the key, or the file and line, printed without a
traceback, and an earlier output is left as it was."""
import copy
import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.errors import ParamsError
from pipeline.features.check import check_clips
from pipeline.manifest import ManifestError
from pipeline.prepare import read_dataset
from pipeline.settings import read_yaml
from pipeline.validation import settings_from

from .conftest import REPO, tiny

GENERATED = hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
                                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
VALID = tiny(read_yaml(REPO / "params.yaml"))


def leaves(tree: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += leaves(value, prefix + (key,))
        else:
            out.append(prefix + (key,))
    return out


def sections(tree: dict, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    for key, value in tree.items():
        if isinstance(value, dict):
            out += sections(value, prefix + (key,))
    return out


WRONG = st.one_of(st.text(max_size=12), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                  st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
                  st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@st.composite
def mutated_params(draw):
    params = copy.deepcopy(VALID)
    kind = draw(st.sampled_from(["wrong value", "unknown key", "missing section", "out of range"]))
    if kind == "missing section":
        path = (draw(st.sampled_from(sorted(params))),)
        del params[path[0]]
        return params, kind, path
    if kind == "unknown key":
        where = draw(st.sampled_from(sections(params)))
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
        node = params
        for part in where:
            node = node[part]
        if name in node:
            return params, "valid", where
        node[name] = draw(WRONG)
        return params, kind, where + (name,)
    path = draw(st.sampled_from(leaves(params)))
    node = params
    for part in path[:-1]:
        node = node[part]
    if kind == "out of range":
        node[path[-1]] = draw(st.sampled_from([-1, -0.5, 10**9, 1e300, 0]))
    else:
        node[path[-1]] = draw(WRONG)
    return params, kind, path


@GENERATED
@given(mutated_params())
def test_mutated_params_are_valid_or_name_the_key_without_a_traceback(tmp_path_factory, case):
    params, kind, path = case
    try:
        settings_from(params, "params.yaml")
        return  # still valid (a default for a missing section, a value that happens to be allowed)
    except ParamsError as e:
        message = str(e)
    except Exception as e:  # anything else would reach the user as a traceback
        pytest.fail(f"{kind} at {'.'.join(map(str, path))}: {type(e).__name__}: {e}")
    assert message.startswith("params.yaml: "), message
    named = [str(part) for part in path if part is not None]
    assert any(part in message for part in named), (kind, path, message)

    # and the command prints it, exit status 1, no traceback
    folder = tmp_path_factory.mktemp("params")
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        main_args(["check-params", "--params", str(folder / "params.yaml")])
    assert exit_.value.code == 1


def main_args(args: list[str]) -> None:
    import sys

    argv = sys.argv
    sys.argv = ["cmkd", *args]
    try:
        main()
    finally:
        sys.argv = argv


def test_a_params_file_that_is_not_yaml_names_the_line(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("runs: [main]\nseeds: [0\ntrain: {batch_size: 8}\n")
    with pytest.raises(SystemExit):
        main_args(["check-params", "--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'params.yaml'}:") and "not valid YAML" in err
    assert "Traceback" not in err


# ---- manifests -------------------------------------------------------------------------------------------------

ROWS = [{"path": f"audio/{name}.wav", "labels": label, "split": split, "group": group}
        for name, label, split, group in (("a", "dog", "train", "x"), ("b", "cat", "train", "y"),
                                          ("c", "dog", "val", "z"), ("d", "cat", "test", "w"))]


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifests")
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    for row in ROWS:
        sf.write(root / row["path"], 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    (root / "audio" / "notes.wav").write_text("not audio")
    return root


def manifest_text(rows: list[dict], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@st.composite
def mutated_manifest(draw):
    rows = [dict(r) for r in ROWS]
    kind = draw(st.sampled_from(["bad path", "encoding", "delimiter", "duplicate id", "empty field", "huge field",
                                 "ragged row", "bad split", "bad fold"]))
    i = draw(st.integers(0, len(rows) - 1))
    delimiter, raw = ",", None
    if kind == "bad path":
        rows[i]["path"] = draw(st.sampled_from(["audio/missing.wav", "audio", "audio/notes.wav", "/nonexistent/x.wav",
                                                "audio/a.wav/inner.wav"]))
    elif kind == "duplicate id":
        rows.append(dict(rows[i]))
    elif kind == "empty field":
        rows[i][draw(st.sampled_from(["path", "labels", "split"]))] = ""
    elif kind == "huge field":
        rows[i][draw(st.sampled_from(["labels", "path", "group"]))] = "x" * draw(st.sampled_from([70_000, 200_000]))
    elif kind == "bad split":
        rows[i]["split"] = draw(st.text(min_size=1, max_size=6).filter(lambda s: s not in ("train", "val", "test")))
    elif kind == "bad fold":
        for row in rows:
            row["fold"] = "1"
        rows[i]["fold"] = draw(st.sampled_from(["one", "-1", "1.5", "ⅷ"]))
    elif kind == "delimiter":
        delimiter = draw(st.sampled_from([";", "\t", "|"]))
    text = manifest_text(rows, delimiter)
    if kind == "encoding":
        raw = text.replace("dog", "chien\u00e9", 1).encode(draw(st.sampled_from(["latin-1", "utf-16"])))
    elif kind == "ragged row":
        lines = text.splitlines(keepends=True)
        lines[1 + i] = lines[1 + i].rstrip("\n") + draw(st.sampled_from([",extra", ",a,b"])) + "\n" \
            if draw(st.booleans()) else lines[1 + i].rsplit(",", 1)[0] + "\n"
        text = "".join(lines)
    return (raw if raw is not None else text.encode()), kind, i


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@GENERATED
@given(mutated_manifest())
def test_mutated_manifests_are_read_or_name_the_file_and_line_and_keep_the_earlier_manifest(audio_folder,
                                                                                             tmp_path_factory, case):
    content, kind, row = case
    work = tmp_path_factory.mktemp("work")
    raw = work / "raw"
    (audio_folder / "good.csv").write_text(manifest_text(ROWS))
    data = settings_from({**VALID, "data": {**VALID["data"], "source": "manifest",
                                            "manifest": str(audio_folder / "good.csv")}}).data
    read_dataset(data, raw)  # an earlier, valid manifest in place
    before = digest(raw)
    user = audio_folder / "user.csv"
    user.write_bytes(content)
    data = data.model_copy(update={"manifest": str(user)})
    try:
        clips, _ = read_dataset(data, raw)
    except ManifestError as e:
        message = str(e)
        assert str(user) in message or str(raw / "manifest.csv") in message, (kind, message)
        if kind in ("encoding", "ragged row", "huge field", "duplicate id", "bad split", "bad fold"):
            assert any(f":{n}" in message for n in range(1, 8)) or "missing columns" in message, (kind, message)
        assert digest(raw) == before, kind  # the earlier manifest is left as it was
        return
    except Exception as e:
        pytest.fail(f"{kind} (row {row}): {type(e).__name__}: {e}")
    # it reads: what remains wrong (a path that is not audio) is named clip by clip by `cmkd check`'s decoder
    problems = check_clips(clips, settings_from(VALID).features, workers=1)
    assert all(Path(path).is_absolute() for path, _, _ in problems)
    if kind == "bad path":
        assert any(kind_ == "error" for _, kind_, _ in problems), problems
