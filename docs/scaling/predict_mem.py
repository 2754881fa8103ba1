"""predict_held_out's test pass alone (the phase where train@ast's main process grew to 2.2 GB at 30,000 clips): the
process's VmHWM / VmRSS before and after. Run in a `cmkd scale` project after train@ast, with PYTHONPATH=. (and
MALLOC_MMAP_THRESHOLD_=... to try glibc's threshold); argv[1] = 'mallopt' sets M_MMAP_THRESHOLD to 1 MB in-process.
docs/scaling.md gives what it measured."""
import ctypes
import sys
from pathlib import Path

if len(sys.argv) > 1 and sys.argv[1] == "mallopt":
    print("mallopt", ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20))

from pipeline import layout
from pipeline.data.batches import BatchSource, ZarrRows
from pipeline.evaluation.inference import predict
from pipeline.models.checkpoint import load_checkpoint
from pipeline.stores.features import FeatureStore


def mem():
    with open("/proc/self/status") as status:
        f = dict(line.split(":", 1) for line in status if line.startswith(("VmHWM", "VmRSS")))
    f = {k: v.strip() for k, v in f.items()}
    return f"HWM {f['VmHWM']}, RSS {f['VmRSS']}"


store = FeatureStore(layout.FEATURES, "main")
path = Path("data/runs/main/seed0/ast/checkpoint.pt")
model, meta = load_checkpoint(path, "cpu")
print("loaded", path, mem(), flush=True)
rows = store.indices("test")
logits = predict(model, BatchSource(ZarrRows(store), num_workers=1), rows, 32, meta.input_normalization)
print("test", logits.shape, mem(), flush=True)
