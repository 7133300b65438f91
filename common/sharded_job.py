"""A resumable CSV job, sharded over torchrun ranks: one item's rows at a time, merged in item order.

Results are appended per item to a hidden part file with a progress log of byte offsets. A resumed run
keeps the longest prefix of items that the log and the part agree on - each logged span present in the
file and parsing as whole CSV rows of the job's columns - cuts the part back to it (never forward), redoes
the rest and says in one warning line how many bytes and items it dropped; a torn last line of the log is
such an item too. A part that cannot be read back at all (no usable log beside it, or not one intact item)
is moved aside, not deleted, with one sentence naming where. One writer per part: a ``flock`` on a sibling
``.lock`` file (released by the OS when its process dies, so a stale one is ignored) makes a second run of
the same target stop with one sentence naming the first. A full disk is :class:`~common.cli.DiskFull`:
the items written so far stay, the rerun goes on from them. Under ``torchrun`` each rank does
``positions % world == rank`` into its own part; rank 0 merges the parts in item order, so the CSV
is byte-identical to a single-process run. The LIME stages (:mod:`common.explain.stages`) are its users.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from common.cli import UserError, naming_a_full_disk
from common.manifest import digest, move_aside, write_text_atomic

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.5
REDO = "explaining its items again"


def dist_context() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment; (0, 1) when launched alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError("RANK/WORLD_SIZE are set but not integers; launch with torchrun or unset them.") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} WORLD_SIZE={world} is inconsistent; launch with torchrun or unset them.")
    return rank, world


def rank_device(device: str, world: int) -> str:
    """Under torchrun, ``auto``/``cuda`` means this rank's own GPU (cuda:LOCAL_RANK)."""
    from common.cli import resolve_device

    device = resolve_device(device)
    if device == "cuda" and world > 1:
        import torch

        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % max(torch.cuda.device_count(), 1)}"
    return device



@dataclass
class JobResult:
    finished: bool
    explained_now: int = 0
    resumed: int = 0
    stats: dict = field(default_factory=dict)


class ShardedCsvJob:
    """Append rows per item into a rank part file (resumable); rank 0 merges all parts in item order.

    ``run_key`` identifies the settings: a part written with other settings is discarded.
    ``explain(position) -> list[row]`` does the work for one item.
    """

    def __init__(self, output: Path, columns: list[str], run_key: dict, n_items: int, rank: int = 0,
                 world: int = 1):
        self.output = Path(output)
        self.columns = columns
        self.key = digest(run_key)
        self.n_items = n_items
        self.rank, self.world = rank, world

    def _part(self, rank: int, suffix: str) -> Path:
        return self.output.with_name(f".{self.output.name}.part{rank}of{self.world}{suffix}")

    def _read_progress(self, rank: int) -> tuple[dict[int, tuple[int, int]], dict, dict[int, str]] | str:
        """(finished positions -> (start, end) byte offsets, stats, position -> its log line), or why the log is
        unusable: ``"missing"``, ``"unreadable"`` (its header line is torn) or ``"other settings"``."""
        progress = self._part(rank, ".progress")
        if not progress.is_file():
            return "missing"
        spans: dict[int, tuple[int, int]] = {}
        raw: dict[int, str] = {}
        stats: dict = {"explain_seconds": [], "model_seconds": [], "n_texts": 0, "n_unique": 0}
        with open(progress, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            return "unreadable"
        if not isinstance(header, dict) or header.get("key") != self.key:
            return "other settings"
        start = 0
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                position, end = int(entry["position"]), int(entry["end"])
            except (ValueError, KeyError, TypeError):  # a line cut by a kill: everything after it is redone
                break
            spans[position] = (start, end)
            raw[position] = line
            start = end
            for name in ("explain_seconds", "model_seconds"):
                stats[name].append(float(entry.get(name, 0.0)))
            stats["n_texts"] += int(entry.get("n_texts", 0))
            stats["n_unique"] += int(entry.get("n_unique", 0))
        return spans, stats, raw

    def _intact(self, chunk: bytes) -> bool:
        """Whether ``chunk`` is whole CSV rows of this job's columns (an item with no rows is b"")."""
        if not chunk:
            return True
        if not chunk.endswith(b"\n"):
            return False
        try:
            rows = list(csv.reader(io.StringIO(chunk.decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error):
            return False
        return bool(rows) and all(len(row) == len(self.columns) for row in rows)

    def _agreed_prefix(self, part: Path, spans: dict[int, tuple[int, int]]) -> tuple[dict[int, tuple[int, int]], int]:
        """The longest run of logged items, in file order, whose bytes are in ``part`` and parse; its end offset."""
        data = part.read_bytes() if part.is_file() else b""
        kept: dict[int, tuple[int, int]] = {}
        end = 0
        for position, (start, stop) in sorted(spans.items(), key=lambda item: item[1]):
            if start != end or stop > len(data) or not self._intact(data[start:stop]):
                break
            kept[position] = (start, stop)
            end = stop
        return kept, end

    def _resume(self, part: Path, progress: Path) -> dict[int, tuple[int, int]]:
        """The items of this rank's part that a resumed run keeps; the part and its log are cut back to them."""
        state = self._read_progress(self.rank)
        if isinstance(state, str):
            has_rows = part.is_file() and part.stat().st_size > 0
            if has_rows and state in ("missing", "unreadable"):
                move_aside(part, f"cannot be read back (its progress log is {state})", REDO)
            for path in (part, progress, self._part(self.rank, ".done")):
                path.unlink(missing_ok=True)
            write_text_atomic(progress, json.dumps({"key": self.key}) + "\n")
            return {}
        spans, _, raw = state
        kept, end = self._agreed_prefix(part, spans)
        size = part.stat().st_size if part.is_file() else 0
        if not kept and size:
            move_aside(part, f"does not parse as this job's CSV rows ({size} bytes, {len(spans)} logged item(s))", REDO)
            kept, end, size = {}, 0, 0
        if size > end or len(kept) < len(spans):
            log.warning("Resuming %s: the part was cut inside a record; dropped %d byte(s) after its last intact "
                        "record and %d logged item(s) that did not parse, which are explained again.", self.output,
                        size - end, len(spans) - len(kept))
        with open(part, "a+b") as fh:
            fh.truncate(end)  # end <= size: only ever cuts
        write_text_atomic(progress, "\n".join([json.dumps({"key": self.key}),
                                               *(raw[p] for p in sorted(kept, key=kept.get))]) + "\n")
        if kept:
            log.info("Resuming %s: %d instance(s) of this part already explained", self.output, len(kept))
        return kept

    def _lock(self):
        """This rank's part, locked for this process (its ``flock`` ends with the process); a live holder stops
        the run with one sentence naming it."""
        lock = self._part(self.rank, ".lock")
        while True:
            fh = open(lock, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise UserError(f"{self.output} is being built by another run ({holder}, lock {lock}); wait for it "
                                f"to finish or stop it, then rerun.") from None
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file a finishing run deleted after we opened it
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
                fh.flush()
                return fh
            fh.close()

    def run(self, explain: Callable[[int], tuple[list[list], dict]], desc: str, stop_after: int = 0,
            publish: Callable[[Path, JobResult], None] | None = None) -> JobResult:
        """Explain this rank's items (resuming), then on rank 0 merge every part into the output.

        ``publish(merged_tmp_csv, result)`` runs on rank 0 after the merged CSV is complete but before it
        is renamed into place, so the stage writes its manifest first and the Make target appears last.
        """
        part, progress, done = self._part(self.rank, ""), self._part(self.rank, ".progress"), self._part(self.rank, ".done")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        lock = self._lock()
        try:
            return self._run_locked(explain, desc, stop_after, publish, part, progress, done)
        finally:
            self._part(self.rank, ".lock").unlink(missing_ok=True)  # while still held: see _lock
            lock.close()

    def _run_locked(self, explain, desc, stop_after, publish, part: Path, progress: Path, done: Path) -> JobResult:
        from tqdm import tqdm

        spans = self._resume(part, progress)
        mine = [p for p in range(self.n_items) if p % self.world == self.rank]
        todo = [p for p in mine if p not in spans]
        explained = 0
        with open(part, "ab") as part_fh, open(progress, "a") as progress_fh, \
                tqdm(total=len(mine), initial=len(mine) - len(todo), desc=desc, unit="instance",
                     position=self.rank if self.world > 1 else None) as bar:
            for position in todo:
                if stop_after and explained >= stop_after:
                    log.warning("Stopping after %d instance(s) (--stop-after); rerun to resume.", explained)
                    return JobResult(False, explained, len(mine) - len(todo))
                rows, stats = explain(position)
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(rows)
                kept = f"the {len(mine) - len(todo) + explained} instance(s) explained so far are kept"
                with naming_a_full_disk(part, kept):
                    part_fh.write(buffer.getvalue().encode())
                    part_fh.flush()
                    os.fsync(part_fh.fileno())
                with naming_a_full_disk(progress, kept):
                    progress_fh.write(json.dumps({"position": position, "end": part_fh.tell(), **stats}) + "\n")
                    progress_fh.flush()
                explained += 1
                bar.update(1)
        write_text_atomic(done, "done\n")
        if self.rank != 0:
            return JobResult(True, explained, len(mine) - len(todo))
        result = JobResult(True, explained, len(mine) - len(todo))

        def before_rename(merged: Path, stats: dict) -> None:
            result.stats = stats
            if publish is not None:
                publish(merged, result)

        self._merge(before_rename)
        return result

    def _merge(self, before_rename: Callable[[Path, dict], None]) -> None:
        """Wait for every rank's part, write them in item order to a temporary sibling of the output,
        call ``before_rename(tmp, merged_stats)``, then rename it into place and delete the parts."""
        from common.manifest import atomic_output_file

        def finished(rank: int) -> bool:  # a stale marker from a run with other settings does not count
            if not self._part(rank, ".done").is_file():
                return False
            state = self._read_progress(rank)
            return not isinstance(state, str) and set(state[0]) >= {p for p in range(self.n_items) if p % self.world == rank}

        waiting_since = time.time()
        pending = [r for r in range(self.world) if not finished(r)]
        while pending:
            if time.time() - waiting_since > 60:
                log.info("Waiting for rank(s) %s to finish their parts", pending)
                waiting_since = time.time()
            time.sleep(WAIT_POLL_S)
            pending = [r for r in range(self.world) if not finished(r)]
        chunks: dict[int, tuple[int, int, int]] = {}
        stats: dict = {"explain_seconds": [], "model_seconds": [], "n_texts": 0, "n_unique": 0}
        for rank in range(self.world):
            state = self._read_progress(rank)
            if isinstance(state, str):
                raise UserError(f"Part {self._part(rank, '')} cannot be merged (its progress log is {state}); "
                                f"rerun the command.")
            spans, rank_stats, _ = state
            for position, (start, end) in spans.items():
                chunks[position] = (rank, start, end)
            for name in ("explain_seconds", "model_seconds"):
                stats[name] += rank_stats[name]
            stats["n_texts"] += rank_stats["n_texts"]
            stats["n_unique"] += rank_stats["n_unique"]
        missing = sorted(set(range(self.n_items)) - set(chunks))
        if missing:
            raise UserError(f"Instances {missing[:5]} are missing from the parts of {self.output}; rerun the command.")
        parts = {rank: self._part(rank, "").read_bytes() for rank in range(self.world)}
        torn = [position for position, (rank, start, end) in sorted(chunks.items())
                if not self._intact(parts[rank][start:end])]
        if torn:  # a part changed under a finished rank: its rerun validates and redoes it
            raise UserError(f"Instances {torn[:5]} of {self.output}'s parts do not parse as whole rows; rerun the "
                            f"command (it keeps the intact ones and explains those again).")
        with atomic_output_file(self.output) as tmp:
            with open(tmp, "wb") as fh:
                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(self.columns)
                fh.write(header.getvalue().encode())
                for position in range(self.n_items):
                    rank, start, end = chunks[position]
                    fh.write(parts[rank][start:end])
            before_rename(tmp, stats)
        for rank in range(self.world):
            for suffix in ("", ".progress", ".done"):
                self._part(rank, suffix).unlink(missing_ok=True)


def summarize_timing(stats: dict) -> dict:
    explain = np.asarray(stats.get("explain_seconds", []), dtype=float)
    model = np.asarray(stats.get("model_seconds", []), dtype=float)
    if explain.size == 0:
        return {}
    total = float(explain.sum())
    return {
        "timed_explanations": int(explain.size),
        "seconds_per_explanation_mean": float(explain.mean()),
        "seconds_per_explanation_median": float(np.median(explain)),
        "model_time_fraction": float(model.sum() / total) if total > 0 else None,
        "outside_model_fraction": float(1 - model.sum() / total) if total > 0 else None,
        "unique_text_fraction": (stats["n_unique"] / stats["n_texts"]) if stats.get("n_texts") else None,
    }
