"""A pipeline run's ledger (lanic_hub.run): a stage is skipped only when its key and its outputs
are what the ledger recorded; a single-stage command never skips and writes no ledger."""

from __future__ import annotations

import json

from lanic_hub.run import STAGE_NAMES, Run


def test_the_key_is_a_digest_of_the_inputs_whatever_their_key_order():
    a = Run.key({"backbone": "phantom", "seed": 1}, [1, 2])
    assert a == Run.key({"seed": 1, "backbone": "phantom"}, [1, 2])
    assert a != Run.key({"seed": 2, "backbone": "phantom"}, [1, 2]) and len(a) == 16


def test_a_stage_is_fresh_only_with_its_key_and_its_outputs(tmp_path):
    run = Run(tmp_path, log=lambda *a: None)
    out = tmp_path / "train" / "fidelity.json"
    key = Run.key("inputs")
    assert not run.fresh("train", key, out)  # never run
    run.mark("train", key)
    assert not run.fresh("train", key, out)  # its output is missing
    out.parent.mkdir()
    out.write_text("{}")
    assert run.fresh("train", key, out) and not run.fresh("train", Run.key("other inputs"), out)
    # the ledger is a file: the next run in the same folder reads it
    assert json.loads((tmp_path / "stages.json").read_text()) == {"train": key}
    assert Run(tmp_path).fresh("train", key, out)
    assert Run(tmp_path).layout.stages_json == tmp_path / "stages.json"


def test_a_single_stage_command_never_skips_and_writes_no_ledger(tmp_path):
    (tmp_path / "stages.json").write_text(json.dumps({"train": "k"}))
    lines: list[str] = []
    run = Run(tmp_path, log=lines.append, pipeline=False)
    assert run.done == {} and not run.fresh("train", "k")
    run.mark("patterns", "k2")
    run.step("patterns", "pattern bank")
    assert json.loads((tmp_path / "stages.json").read_text()) == {"train": "k"} and lines == []


def test_progress_lines_are_numbered_by_the_stage_list(tmp_path):
    lines: list[str] = []
    run = Run(tmp_path, log=lines.append)
    run.step("train", "classifier + ensemble")
    run.step("eval", "evaluation")
    n = len(STAGE_NAMES)
    assert lines == [f"[4/{n}] classifier + ensemble", f"[{n}/{n}] evaluation"]
