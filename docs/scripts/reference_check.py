"""The logits of every released size of the EfficientAT and BEATs families against the authors' code
(../shared/reference/), from the same audio, each side its own front-end, float32: what docs/bring-your-own-teacher.md
tabulates. The same construction as tests/test_efficientat.py and tests/test_beats.py (which check the small sizes
on every run): seeded random weights saved in the released layout, `cmkd convert`, compare.

    python docs/scripts/reference_check.py docs/reference_check.json
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.models.checkpoint import load_checkpoint  # noqa: E402
from pipeline.models.convert import convert  # noqa: E402
from tests import test_beats, test_efficientat  # noqa: E402
from tests.reference import relative  # noqa: E402


def compare(name: str, save, reference_logits, cmkd_logits, wave: torch.Tensor) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        save(Path(tmp) / "released.pt")
        convert(Path(tmp) / "released.pt", Path(tmp) / "converted.pt")
        model, meta = load_checkpoint(Path(tmp) / "converted.pt")
    theirs, ours = reference_logits(wave), cmkd_logits(model.eval(), meta, wave)
    row = {"model": name, "parameters": sum(p.numel() for p in model.parameters()),
           "max_abs_difference": float((ours - theirs).abs().max()), "max_abs_logit": float(theirs.abs().max()),
           "relative": relative(ours, theirs)}
    print(json.dumps(row), flush=True)
    return row


def main(out: Path) -> None:
    torch.manual_seed(0)
    rows = []
    wave32k = torch.randn(2, 32000 * 10, generator=torch.Generator().manual_seed(1)) * 0.1
    for size, head in [*((s, "mlp") for s in ("mn04", "mn05", "mn10", "mn20", "mn30", "mn40")),
                       ("mn10", "attention"), ("mn10", "fully_convolutional")]:
        ref, mel = test_efficientat.reference_mobilenet(size, head)
        rows.append(compare(f"efficientat_{size} ({head})", lambda p: torch.save(ref.state_dict(), p),
                            lambda w: test_efficientat.reference_logits(ref, mel, w), test_efficientat.cmkd_logits,
                            wave32k))
    wave16k = torch.randn(2, 16000 * 10, generator=torch.Generator().manual_seed(1)) * 0.1
    for size in ("test", "base"):
        ref, cfg = test_beats.reference_beats(size)
        rows.append(compare(f"beats_{size}", lambda p: torch.save({"cfg": cfg, "model": ref.state_dict()}, p),
                            lambda w: test_beats.reference_logits(ref.float(), w),
                            lambda m, meta, w: test_beats.cmkd_logits(m, meta, w, torch.float32), wave16k))
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                               "torch": torch.__version__, "audio": "2 clips of 10 s, Gaussian noise (std 0.1)",
                               "dtype": "float32", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
