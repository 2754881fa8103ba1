"""Resumable block-by-block writing of a Zarr store, shared by the features and dump_logits stages.

The store is built at `<out>.partial` and renamed to `<out>` only when every block is written, so a killed run
leaves no half-written output under DVC's out path (DVC deletes outs before re-running a stage anyway). The
partial store records a fingerprint of its inputs and one `_done` flag per block: a re-run with the same inputs
skips finished blocks; with other inputs it starts over. Each block covers whole shards, so blocks written
concurrently never touch the same shard file.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr


class ResumableStore:
    def __init__(self, out: Path, fingerprint: str, num_blocks: int):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.fingerprint = fingerprint
        self.num_blocks = num_blocks

    def open(self) -> tuple[zarr.Group, bool]:
        """Return (group, fresh): an existing partial store with the same fingerprint is resumed."""
        if self.partial.exists():
            try:
                group = zarr.open_group(self.partial, mode="r+")
                if group.attrs.get("_partial_fingerprint") == self.fingerprint and "_done" in group:
                    return group, False
            except Exception:  # a store killed before its metadata was written: start over
                pass
            shutil.rmtree(self.partial)
        group = zarr.open_group(self.partial, mode="w")
        group.attrs["_partial_fingerprint"] = self.fingerprint
        # one chunk per flag: concurrent tasks each write their own file
        group.create_array("_done", shape=(self.num_blocks,), chunks=(1,), dtype="bool", fill_value=False)
        return group, True

    @staticmethod
    def pending(group: zarr.Group) -> list[int]:
        return np.flatnonzero(~group["_done"][:]).tolist()

    @staticmethod
    def mark_done(group: zarr.Group, block: int) -> None:
        group["_done"][block] = True

    def commit(self, group: zarr.Group) -> None:
        """Drop the bookkeeping and move the finished store to its final path."""
        assert group["_done"][:].all(), "commit before every block was written"
        del group["_done"]
        del group.attrs["_partial_fingerprint"]
        if self.out.exists():
            shutil.rmtree(self.out)
        self.partial.rename(self.out)


def block_ranges(num_items: int, block_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + block_size, num_items)) for start in range(0, num_items, block_size)]
