"""Resume after a torn write (issue 28): a part cut mid-record, a torn progress line, a part that does not parse,
a full disk, two runs of one target, and a resumed pruning that does not score again.

The appending writers are the LIME stages' parts (:class:`common.sharded_job.ShardedCsvJob`: explanations of
the test split, BERT's token explanations for the MLP students). Each is killed mid-way (``--stop-after``), its
part damaged the way a kill or a full disk leaves it, and rerun: the result must be byte-identical to an
uninterrupted run's, with no traceback.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from common.cli import DiskFull, UserError, run_reporting_user_errors
from common.sharded_job import ShardedCsvJob
from tests.conftest import REPO

COLUMNS = ["id", "text", "weight"]


def _rows(position: int) -> list[list]:
    # quoting, commas, an embedded newline and a varying row count: a cut can land anywhere in a record
    return [[position, f'word "{position}", then\na second line {"x" * (position % 5)}', 0.5 / (k + 1)]
            for k in range(1 + position % 3)]


def _explain(position: int):
    return _rows(position), {"explain_seconds": 0.01, "model_seconds": 0.005}


def _job(output: Path, n: int = 6) -> ShardedCsvJob:
    return ShardedCsvJob(output, COLUMNS, {"k": 1}, n, 0, 1)


def _part(output: Path, suffix: str = "") -> Path:
    return output.with_name(f".{output.name}.part0of1{suffix}")


@pytest.fixture
def reference(tmp_path) -> bytes:
    out = tmp_path / "reference" / "out.csv"
    assert _job(out).run(_explain, desc="reference").finished
    return out.read_bytes()


def _stopped(output: Path, after: int = 4) -> tuple[Path, list[dict]]:
    result = _job(output).run(_explain, desc="stopped", stop_after=after)
    assert not result.finished and not output.exists()
    lines = _part(output, ".progress").read_text().splitlines()
    return _part(output), [json.loads(line) for line in lines[1:]]


# ----------------------------------------------------------------------------------------------- the job itself
@pytest.mark.parametrize("cut", ["one_byte_short", "mid_record", "just_after_its_start", "137_bytes_short"])
def test_a_part_cut_inside_its_last_record_resumes_to_the_same_bytes(tmp_path, reference, caplog, cut):
    out = tmp_path / "run" / "out.csv"
    part, entries = _stopped(out)
    start, end = entries[-2]["end"], entries[-1]["end"]  # the last record's span
    size = {"one_byte_short": end - 1, "mid_record": (start + end) // 2, "just_after_its_start": start + 1,
            "137_bytes_short": max(start + 1, end - 137)}[cut]
    with open(part, "r+b") as fh:
        fh.truncate(size)
    caplog.set_level(logging.WARNING)
    result = _job(out).run(_explain, desc="resumed")
    assert result.finished and result.resumed == 3 and result.explained_now == 3
    assert out.read_bytes() == reference
    assert f"dropped {size - start} byte(s)" in caplog.text and "1 logged item(s) that did not parse" in caplog.text
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.csv"]


def test_a_torn_progress_line_and_an_unlogged_tail_are_redone(tmp_path, reference, caplog):
    out = tmp_path / "run" / "out.csv"
    part, entries = _stopped(out)
    with open(part, "ab") as fh:  # rows of the next instance written, its progress line not (a kill between)
        fh.write(b'4,"half a row')
    progress = _part(out, ".progress")
    progress.write_text(progress.read_text() + '{"position": 4, "end": 99')  # and a torn log line
    caplog.set_level(logging.WARNING)
    result = _job(out).run(_explain, desc="resumed")
    assert result.finished and result.resumed == 4
    assert out.read_bytes() == reference
    assert "dropped 13 byte(s)" in caplog.text


def test_a_log_claiming_more_than_the_part_holds_does_not_pad_the_part(tmp_path, reference):
    """The reported failure: the log's last offset beyond the file's end used to extend it with NUL bytes."""
    out = tmp_path / "run" / "out.csv"
    part, entries = _stopped(out)
    with open(part, "r+b") as fh:
        fh.truncate(entries[-1]["end"] - 137 if entries[-1]["end"] - 137 > entries[-2]["end"] else entries[-2]["end"] + 1)
    assert _job(out).run(_explain, desc="resumed").finished
    assert b"\x00" not in out.read_bytes() and out.read_bytes() == reference


def test_a_part_that_does_not_parse_at_all_is_moved_aside_not_deleted(tmp_path, reference, caplog):
    out = tmp_path / "run" / "out.csv"
    part, _ = _stopped(out)
    garbage = b"\xff\xfe not csv at all \x00\x01" * 10
    part.write_bytes(garbage)
    caplog.set_level(logging.WARNING)
    assert _job(out).run(_explain, desc="resumed").finished
    assert out.read_bytes() == reference
    aside = [p for p in out.parent.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert "does not parse" in caplog.text and str(aside[0]) in caplog.text


def test_a_part_whose_log_header_is_torn_is_moved_aside(tmp_path, reference, caplog):
    out = tmp_path / "run" / "out.csv"
    part, _ = _stopped(out)
    rows = part.read_bytes()
    _part(out, ".progress").write_text('{"key": "ab')
    caplog.set_level(logging.WARNING)
    assert _job(out).run(_explain, desc="resumed").finished
    assert out.read_bytes() == reference
    aside = [p for p in out.parent.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == rows and "progress log is unreadable" in caplog.text


def test_a_part_of_other_settings_is_still_discarded(tmp_path):
    out = tmp_path / "run" / "out.csv"
    _stopped(out)
    other = ShardedCsvJob(out, COLUMNS, {"k": 2}, 6, 0, 1)
    result = other.run(_explain, desc="other")
    assert result.finished and result.resumed == 0 and not [p for p in out.parent.iterdir() if "unreadable" in p.name]


def test_a_full_disk_is_one_sentence_keeps_the_work_and_the_rerun_finishes(tmp_path, reference, monkeypatch):
    import common.sharded_job as sharded_job

    out = tmp_path / "run" / "out.csv"
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th record's flush to disk fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(sharded_job.os, "fsync", fsync)
    with pytest.raises(DiskFull) as caught:
        _job(out).run(_explain, desc="full")
    message = str(caught.value)
    assert str(_part(out)) in message and "df -h" in message and "3 instance(s) explained so far are kept" in message
    assert not out.exists() and not _part(out, ".lock").exists()
    monkeypatch.setattr(sharded_job.os, "fsync", real_fsync)
    result = _job(out).run(_explain, desc="after freeing space")
    assert result.finished and result.resumed == 3 and out.read_bytes() == reference


def test_any_stage_turns_a_full_disk_into_one_line_and_exit_2(tmp_path, caplog):
    def stage(argv):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "outputs" / "x.json"))

    with pytest.raises(SystemExit) as stopped:
        run_reporting_user_errors(stage, [], "test")
    assert stopped.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "The disk is full: writing" in errors[0] and "x.json" in errors[0]

    def other_error(argv):
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):  # only a full disk is turned into a sentence
        run_reporting_user_errors(other_error, [], "test")


def test_a_second_run_of_one_target_stops_naming_the_first(tmp_path, reference):
    out = tmp_path / "run" / "out.csv"
    out.parent.mkdir()
    lock = _part(out, ".lock")
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on testhost, since now")
        held.flush()
        with pytest.raises(UserError, match=r"is being built by another run \(pid 4242 on testhost"):
            _job(out).run(_explain, desc="second")
    assert not out.exists() and not _part(out).exists()
    # the holder gone (the OS releases a dead process's lock the same way): a stale lock file is ignored
    assert lock.exists()
    assert _job(out).run(_explain, desc="after").finished and out.read_bytes() == reference
    assert not lock.exists()


# ----------------------------------------------------------------------------------------------- the stages
def _lime(model, data, output, *extra):
    from generate_outputs.generate_lime_csv.run_lime_on_model import main

    return main(["--model", str(model), "--variant", "v", "--n-instances", "6", "--num-samples", "40", "--seed", "1",
                 "--output", str(output), "--data", str(data), "--max-len", "64", "--threads", "1", *extra])


def _tokens(model, data, output, *extra):
    from generate_outputs.generate_lime_csv.generate_bert_token_explanations_for_mlp import main

    return main(["--model", str(model), "--data", str(data), "--n-instances", "5", "--num-samples", "40",
                 "--seed", "3", "--max-len", "64", "--output", str(output), "--threads", "1", *extra])


@pytest.mark.parametrize("stage", [_lime, _tokens], ids=["lime_csv", "bert_token_explanations"])
def test_each_lime_writer_resumes_a_torn_part_to_the_uninterrupted_bytes(tmp_path, tiny_bert, toy_data, stage,
                                                                          capfd):
    full = tmp_path / "full" / "out.csv"
    assert stage(tiny_bert, toy_data, full) == 0
    for cut in ("mid_record", "torn_log"):
        out = tmp_path / cut / "out.csv"
        assert stage(tiny_bert, toy_data, out, "--stop-after", "3") == 3
        part, progress = _part(out), _part(out, ".progress")
        entries = [json.loads(line) for line in progress.read_text().splitlines()[1:]]
        if cut == "mid_record":
            with open(part, "r+b") as fh:
                fh.truncate((entries[-2]["end"] + entries[-1]["end"]) // 2)
        else:
            progress.write_text(progress.read_text()[:-7])
        capfd.readouterr()
        assert stage(tiny_bert, toy_data, out) == 0
        assert out.read_bytes() == full.read_bytes(), cut
        err = capfd.readouterr().err
        assert "Traceback" not in err and "dropped" in err
        assert sorted(p.name for p in out.parent.iterdir()) == ["out.csv", "out.manifest.json"]


def test_the_lime_stage_on_a_full_disk_leaves_no_target_and_reruns(tmp_path, tiny_bert, toy_data, monkeypatch,
                                                                   capfd):
    import common.sharded_job as sharded_job

    full = tmp_path / "full" / "out.csv"
    assert _lime(tiny_bert, toy_data, full) == 0
    out = tmp_path / "run" / "out.csv"
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(sharded_job.os, "fsync", fsync)
    capfd.readouterr()
    with pytest.raises(SystemExit) as stopped:
        _lime(tiny_bert, toy_data, out)
    err = capfd.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "ERROR" in line and "The disk is full" in line]
    assert not out.exists() and not out.with_name("out.manifest.json").exists()
    monkeypatch.setattr(sharded_job.os, "fsync", real_fsync)
    assert _lime(tiny_bert, toy_data, out) == 0 and out.read_bytes() == full.read_bytes()


def test_two_concurrent_runs_of_one_lime_target_end_with_one_good_csv(tmp_path, tiny_bert, toy_data):
    single = tmp_path / "single" / "out.csv"
    assert _lime(tiny_bert, toy_data, single) == 0
    out = tmp_path / "shared" / "out.csv"
    command = [sys.executable, str(REPO / "generate_outputs/generate_lime_csv/run_lime_on_model.py"), "--model",
               str(tiny_bert), "--variant", "v", "--n-instances", "6", "--num-samples", "40", "--seed", "1",
               "--output", str(out), "--data", str(toy_data), "--max-len", "64", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    done = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, err in done:
        assert "Traceback" not in err, err[-2000:]
        assert code == 0 or (code == 2 and "is being built by another run (pid" in err), (code, err[-2000:])
    assert any(code == 0 for code, _ in done)
    assert out.read_bytes() == single.read_bytes()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------------------------- pruning
def test_a_resumed_pruning_does_not_score_or_evaluate_again(tmp_path, tiny_bert, toy_data, monkeypatch, caplog):
    import common.compress.pruning as pruning
    from train.pruning.run_structural_pruning import main as prune_main

    args = ["--sparsity", "50", "--data", str(toy_data), "--importance-samples", "32", "--epochs", "2",
            "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32", "--device", "cpu",
            "--validation-fraction", "0.1", "--seed", "0", "--save-steps", "4", "--model", str(tiny_bert)]
    whole = tmp_path / "whole"
    assert prune_main([*args, "--output", str(whole)]) == 0
    out = tmp_path / "resumed"
    assert prune_main([*args, "--output", str(out), "--max-steps-this-run", "4"]) == 0  # stopped, as a kill would
    state = tmp_path / "resumed.checkpoints" / pruning.PRUNING_STATE_FILE
    assert state.is_file() and not (out / "manifest.json").exists()

    def no_scoring(*a, **k):
        raise AssertionError("importance scored again on resume")

    monkeypatch.setattr(pruning, "compute_importance", no_scoring)
    evaluated = []
    real_metrics = pruning._test_metrics
    monkeypatch.setattr(pruning, "_test_metrics", lambda *a, **k: evaluated.append(1) or real_metrics(*a, **k))
    caplog.set_level(logging.INFO)
    assert prune_main([*args, "--output", str(out)]) == 0
    assert evaluated == [] and "not scored again" in caplog.text
    resumed, uninterrupted = (json.loads((d / "manifest.json").read_text()) for d in (out, whole))
    assert resumed["pruning_state_reused"] is True and uninterrupted["pruning_state_reused"] is False
    assert resumed["training"]["resumed_from"].endswith("checkpoint-4")
    assert (out / pruning.IMPORTANCE_FILE).read_bytes() == (whole / pruning.IMPORTANCE_FILE).read_bytes()
    for key in ("pruning", "metrics_after_pruning"):
        assert resumed[key] == uninterrupted[key]
    assert not state.parent.exists()  # cleaned up with the checkpoints once the folder is written


# ----------------------------------------------------------------------------------------------- MLP result caches
def test_an_unreadable_mlp_result_cache_is_moved_aside_not_overwritten(tmp_path, caplog):
    from common.mlp.training import ResultCache

    path = tmp_path / ".mlp_eval_cache.json"
    ResultCache(path).put("a", {"accuracy": 0.5})
    assert ResultCache(path).get("a") == {"accuracy": 0.5}  # a rerun skips finished work
    torn = path.read_bytes()[:-5]
    path.write_bytes(torn)
    caplog.set_level(logging.WARNING)
    cache = ResultCache(path)
    assert cache.get("a") is None and "does not parse" in caplog.text
    aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == torn
    cache.put("a", {"accuracy": 0.5})
    assert json.loads(path.read_text()) == {"a": {"accuracy": 0.5}}


@pytest.mark.parametrize("writer", ["json", "file", "dir"])
def test_the_atomic_writers_name_their_target_on_a_full_disk_and_leave_nothing(tmp_path, writer, monkeypatch):
    import common.manifest as manifest
    from common.manifest import atomic_output_dir, atomic_output_file, write_json_atomic

    def full_dump(data, fh, **kwargs):
        fh.write('{"partial": ')
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write into a full disk raises it

    target = tmp_path / "out" / ("x.json" if writer != "dir" else "model")
    with pytest.raises(DiskFull, match=r"The disk is full: writing .*" + target.name):
        if writer == "json":
            monkeypatch.setattr(manifest.json, "dump", full_dump)
            write_json_atomic(target, {"a": 1})
        elif writer == "file":
            with atomic_output_file(target) as tmp:
                tmp.write_bytes(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
        else:
            with atomic_output_dir(target) as tmp:
                (tmp / "weights.bin").write_bytes(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
    assert list(target.parent.iterdir()) == []
