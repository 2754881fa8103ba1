"""Resumable block-by-block writing of a Zarr store, shared by the features and dump_logits stages.

The store is built at `<out>.partial` and renamed to `<out>` only when every block is written, so a killed run
leaves no half-written output under DVC's out path (DVC deletes outs before re-running a stage anyway). The
partial store records a fingerprint of its inputs and one `_done` flag per block: a re-run with the same inputs
skips finished blocks; with other inputs it starts over. Each block covers whole shards, so blocks written
concurrently never touch the same shard file. A block may leave the digest of what it wrote, from which the store's
content digest is made (the feature store records it: what the stages that read the store depend on).

Finished blocks are not thrown away lightly: a partial store is started over only when its inputs changed or its
own metadata is missing or corrupt (a run killed while creating it), and the reason is printed. Any other trouble
opening it (permissions, a zarr version that reads it otherwise) stops the stage with the error and keeps it; so
does a full disk while writing, with how many blocks are kept.
"""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zarr

from ..errors import InputError


class StoreWriteError(InputError, RuntimeError):
    """A partial store that cannot be opened or written; it is kept, and the message says what to do."""


class ResumableStore:
    def __init__(self, out: Path, fingerprint: str, num_blocks: int):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.fingerprint = fingerprint
        self.num_blocks = num_blocks

    def open(self) -> tuple[zarr.Group, bool]:
        """Return (group, fresh): an existing partial store with the same fingerprint is resumed."""
        if self.partial.exists():
            unreadable = self.unreadable()
            if unreadable is None:
                try:
                    group = zarr.open_group(self.partial, mode="r+")
                    done = group["_done"][:]
                except Exception as e:
                    raise StoreWriteError(
                        f"{self.partial}: an interrupted run's store, which cannot be opened ({type(e).__name__}: "
                        f"{e}); it is kept with its finished blocks: fix the cause (permissions, the zarr version) "
                        f"and re-run, or delete it to start over") from e
                if "_digest" not in group:
                    unreadable = "written by an older cmkd (no block digests)"
                elif group.attrs.get("_partial_fingerprint") == self.fingerprint and len(done) == self.num_blocks:
                    return group, False
                else:
                    unreadable = "made from other inputs or params"
            print(f"{self.partial}: {unreadable}; starting over")
            shutil.rmtree(self.partial)
        group = zarr.open_group(self.partial, mode="w")
        group.attrs["_partial_fingerprint"] = self.fingerprint
        # one chunk per flag (and per digest): concurrent tasks each write their own file
        group.create_array("_done", shape=(self.num_blocks,), chunks=(1,), dtype="bool", fill_value=False)
        group.create_array("_digest", shape=(self.num_blocks,), chunks=(1,), dtype=np.dtypes.StringDType(),
                           fill_value="")
        return group, True

    def unreadable(self) -> str | None:
        """Why the partial store's own metadata cannot be read (missing or corrupt), or None if it can."""
        for meta in (self.partial / "zarr.json", self.partial / "_done" / "zarr.json"):
            if not meta.is_file():
                return f"its metadata {meta.name} in {meta.parent.name} is missing (killed while it was created)"
            try:
                json.loads(meta.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return f"its metadata {meta} is corrupt ({e})"
        return None

    @staticmethod
    def pending(group: zarr.Group) -> list[int]:
        return np.flatnonzero(~group["_done"][:]).tolist()

    @staticmethod
    def mark_done(group: zarr.Group, block: int, digest: str = "") -> None:
        """Block `block` is written; `digest`: the sha256 of what it holds (the store's content digest is made of
        them, `content_digest`)."""
        if digest:
            group["_digest"][block] = digest
        group["_done"][block] = True

    @staticmethod
    def content_digest(group: zarr.Group, inputs: str) -> str:
        """The sha256 of the store's content: its inputs' fingerprint and every block's digest in order, so that
        the same inputs computed the same way give the same digest on a resumed run or another machine, without
        reading the store back."""
        h = hashlib.sha256(inputs.encode())
        for digest in group["_digest"][:]:
            h.update(str(digest).encode())
        return h.hexdigest()

    @contextmanager
    def writing(self):
        """Blocks written inside: a full disk (or another write error) stops the stage naming the store and how
        many of its blocks are finished and kept for the re-run."""
        try:
            yield
        except OSError as e:
            done = self.finished_blocks()
            what = "the disk is full" if e.errno == errno.ENOSPC else f"a write failed ({e})"
            raise StoreWriteError(f"{self.partial}: {what}; {done} of {self.num_blocks} blocks are written and kept: "
                                  "free space (or fix the cause) and re-run, and only the others are computed") from e

    def finished_blocks(self) -> int:
        try:
            return int(zarr.open_group(self.partial, mode="r")["_done"][:].sum())
        except Exception:
            return 0

    def commit(self, group: zarr.Group) -> None:
        """Drop the bookkeeping and move the finished store to its final path."""
        assert group["_done"][:].all(), "commit before every block was written"
        del group["_done"]
        if "_digest" in group:
            del group["_digest"]
        del group.attrs["_partial_fingerprint"]
        if self.out.exists():
            shutil.rmtree(self.out)
        self.partial.rename(self.out)


def block_ranges(num_items: int, block_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + block_size, num_items)) for start in range(0, num_items, block_size)]
