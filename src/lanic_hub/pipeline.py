"""The whole pipeline as one loop over the stages: data -> backbone -> embeddings -> classifier +
ensemble -> pattern bank -> a saved Hugging Face model folder (:mod:`lanic_hub.stages`) -> the
evaluation suites, whose results go into the model card (this module, above the evaluation layer).

``lanic-hub quickstart`` runs it on the embedded default (phantoms and the phantom CLIP);
``lanic-hub build --config FILE.yaml`` runs it on real data (ready configs ship in
``lanic_hub/resources/configs``). Every stage writes its artefact under ``out`` and records what
it was made from in ``out/stages.json``; a rerun skips stages whose inputs did not change.

Layout of ``out``::

    phantoms/        (phantom data only) the generated dataset, HF + MIMIC-CXR-JPG layouts
    embeddings/      image / report / sentence embeddings (lanic-hub embed)
    train/           classifier, ensemble, fidelity.json, patterns.* (lanic-hub train, patterns)
    model/           the LanIC model: config.json, model.safetensors, patterns.json, README.md
    eval/            lanic-eval results (one JSON per model and baseline) and the leaderboard
    summary.json     seconds per stage and the headline figures
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .records import EvalResults, RunSummary
from .stages import (
    BUILD_STAGES,
    EmbedOptions,
    ModelHandle,
    ModelOptions,
    PipelineConfig,
    Run,
    TrainOptions,
    export_model,
    is_embedded_default,
    packaged_config_dir,
    packaged_configs,
    run_stages,
    write_card,
)

__all__ = [
    "EmbedOptions",
    "EvalHandle",
    "ModelOptions",
    "PipelineConfig",
    "STAGES",
    "TrainOptions",
    "eval_stage",
    "export_model",
    "is_embedded_default",
    "packaged_config_dir",
    "packaged_configs",
    "run_pipeline",
]


@dataclass(frozen=True)
class EvalHandle:
    """The evaluation suite's results on the saved model (None when it did not run) and the
    leaderboard file."""

    suite: str | None
    results: EvalResults | None
    leaderboard: Path | None


def eval_stage(run: Run, cfg: PipelineConfig, data, trained, model: ModelHandle) -> EvalHandle:
    """The evaluation suite of the data (phantom, mimic-cxr, ...; 'data' for any other dataset)
    on the saved model with every baseline; on phantom data the ``phantom-counterfactual`` suite
    after it. Their tables go into the model card."""
    from .evaluation.suites import SUITE_OF_KIND

    suite = "phantom" if cfg.data == "phantom" else SUITE_OF_KIND.get(data.spec.partition(":")[0], "data")
    if not (cfg.evaluate and suite):
        return EvalHandle(suite, None, None)
    from .evaluation.runner import run as run_eval

    # the bank's own ledger key: a rebuilt bank (new names, new concept directions) is re-evaluated
    key = run.key(trained.fingerprint, dataclasses.asdict(cfg.patterns), suite, run.done.get("patterns"))
    res_file = run.layout.eval_results(suite, str(model.folder))
    if not run.fresh("eval", key, res_file):
        run.step("eval", f"evaluation suite '{suite}' with every baseline")
        r = run_eval(
            [str(model.folder)],
            suite,
            run.layout.eval,
            spec=data.spec,
            embeddings=run.layout.embeddings,
            log=run.log,
        )
        if r["failed"]:
            raise ConfigError(f"evaluation failed: {r['failed']}")
        run.mark("eval", key)
    else:
        run.step("eval", "evaluation: up to date")
    evaluation = EvalResults.read(res_file)
    board_file = run.layout.leaderboard(suite)
    board = board_file.read_text()
    # and whether the explanations name the true cause
    if cfg.data == "phantom" and cfg.counterfactual_pairs > 0:
        board += "\n\n" + counterfactual_stage(run, cfg, model.folder, key)
    write_card(model.folder, data.dataset, cfg.model, trained.report, evaluation, board)
    return EvalHandle(suite, evaluation, board_file)


def counterfactual_stage(run: Run, cfg: PipelineConfig, model_dir: Path, key: str) -> str:
    """The ``phantom-counterfactual`` suite on the saved model (with its cheap baselines: raw latents,
    a single transcoder, 10-member plain-TopK and JumpReLU ensembles, an SAE); its table for the card."""
    from .data.phantom import PhantomConfig, ShortcutSpec
    from .evaluation.counterfactual import SUITE, CounterfactualConfig, run_counterfactual_suite, smoke_sized

    md = run.layout.leaderboard(SUITE)
    key = f"{key}:pairs={cfg.counterfactual_pairs}"
    if not run.fresh("counterfactual", key, md):
        run.step("eval", f"evaluation suite '{SUITE}' (does a factor's effect land on its patterns?)")
        world = PhantomConfig(shortcuts=tuple(ShortcutSpec.parse(x) for x in cfg.phantom_shortcuts))
        p = cfg.counterfactual_pairs
        cf = CounterfactualConfig(pairs_per_factor=p, assign_n=max(200, 25 * p), baseline_n=max(300, 50 * p))
        run_counterfactual_suite(
            [str(model_dir)],
            run.layout.eval,
            cfg=smoke_sized(cf),
            world=world,
            baseline_members=10,
            log=run.log,
        )
        run.mark("counterfactual", key)
    body = md.read_text().split("\n", 1)[1]
    return "### Counterfactual faithfulness: suite `phantom-counterfactual`\n" + body


#: Every stage of ``lanic-hub quickstart`` / ``build``, in order: the model-building stages, then
#: the evaluation.
STAGES = BUILD_STAGES + (("eval", lambda r, c, h: eval_stage(r, c, h["data"], h["train"], h["model"])),)


def run_pipeline(cfg: PipelineConfig, progress: bool = True, log=print) -> RunSummary:
    """Run every stage (skipping fresh ones) and return the summary written to ``summary.json``."""
    run = Run(Path(cfg.out), log=log, progress=progress)
    run.out.mkdir(parents=True, exist_ok=True)
    h = run_stages(run, cfg, STAGES)
    trained, bank, model, ev = h["train"], h["patterns"].bank, h["model"], h["eval"]
    report = trained.report
    summary = RunSummary(
        seconds={k: round(v, 1) for k, v in run.seconds.items()},
        peak_rss_gb={k: round(v, 2) for k, v in run.peak_rss_gb.items()},
        leaderboard=str(ev.leaderboard) if ev.results else None,
        data=h["data"].spec,
        backbone=h["backbone"].spec,
        model=str(model.folder),
        auroc_test={
            "classifier_macro": report.auroc.classifier.macro,
            "ensemble_path_macro": report.auroc.ensemble_path.macro,
        },
        measured_on=report.measured_on,
        fvu_full_level=report.fidelity.fvu_mean[str(trained.ensemble.cfg.n_latents)],
        pattern_bank=bank.meta.counts,
        health={"failed": [c for c in model.health if not c["ok"]], "checks": model.health},
    )
    summary.write(run.layout.summary)
    return summary
