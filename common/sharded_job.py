"""A resumable CSV job, sharded over torchrun ranks: one item's rows at a time, merged in item order.

Results are appended per item to a hidden part file with a progress log of byte offsets; a killed
run truncates to the last finished item and resumes. Under ``torchrun`` each rank does
``positions % world == rank`` into its own part; rank 0 merges the parts in item order, so the CSV
is byte-identical to a single-process run. The LIME stages (:mod:`common.explain.stages`) are its users.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from common.cli import UserError
from common.manifest import digest

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.5


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

    def _read_progress(self, rank: int) -> tuple[dict[int, tuple[int, int]], dict] | None:
        """Finished positions -> (start, end) byte offsets, and stats; None when the part is unusable."""
        progress = self._part(rank, ".progress")
        if not progress.is_file():
            return None
        spans: dict[int, tuple[int, int]] = {}
        stats: dict = {"explain_seconds": [], "model_seconds": [], "n_texts": 0, "n_unique": 0}
        with open(progress) as fh:
            lines = fh.read().split("\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            return None
        if header.get("key") != self.key:
            return None
        start = 0
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill: everything after it is redone
                break
            spans[int(entry["position"])] = (start, int(entry["end"]))
            start = int(entry["end"])
            for name in ("explain_seconds", "model_seconds"):
                stats[name].append(float(entry.get(name, 0.0)))
            stats["n_texts"] += int(entry.get("n_texts", 0))
            stats["n_unique"] += int(entry.get("n_unique", 0))
        return spans, stats

    def run(self, explain: Callable[[int], tuple[list[list], dict]], desc: str, stop_after: int = 0,
            publish: Callable[[Path, JobResult], None] | None = None) -> JobResult:
        """Explain this rank's items (resuming), then on rank 0 merge every part into the output.

        ``publish(merged_tmp_csv, result)`` runs on rank 0 after the merged CSV is complete but before it
        is renamed into place, so the stage writes its manifest first and the Make target appears last.
        """
        from tqdm import tqdm

        part, progress, done = self._part(self.rank, ""), self._part(self.rank, ".progress"), self._part(self.rank, ".done")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        state = self._read_progress(self.rank)
        if state is None:
            for path in (part, progress, done):
                path.unlink(missing_ok=True)
            with open(progress, "w") as fh:
                fh.write(json.dumps({"key": self.key}) + "\n")
            spans = {}
        else:
            spans = state[0]
            end = max((e for _, e in spans.values()), default=0)
            with open(part, "a+b") as fh:  # drop rows of an instance a kill cut short
                fh.truncate(end)
            # keep the progress log consistent with the part: rewrite only its valid lines
            lines = progress.read_text().split("\n")
            progress.write_text("\n".join(lines[:1 + len(spans)]) + "\n")
            if spans:
                log.info("Resuming %s: %d instance(s) of this part already explained", self.output, len(spans))
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
                part_fh.write(buffer.getvalue().encode())
                part_fh.flush()
                os.fsync(part_fh.fileno())
                progress_fh.write(json.dumps({"position": position, "end": part_fh.tell(), **stats}) + "\n")
                progress_fh.flush()
                explained += 1
                bar.update(1)
        done.write_text("done\n")
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
            return state is not None and set(state[0]) >= {p for p in range(self.n_items) if p % self.world == rank}

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
            if state is None:
                raise UserError(f"Part {self._part(rank, '')} is missing or was written with other settings; "
                                f"rerun the command.")
            spans, rank_stats = state
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
