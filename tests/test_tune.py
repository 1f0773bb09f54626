"""`artstudio tune`: search spaces, the samplers (lgbo, gp, tpe, random), the deep-kernel GP, a tiny
study end to end, resuming after SIGKILL, and clear errors for bad spaces and storages."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from artstudio.data import load_jsonl, write_jsonl
from artstudio.errors import ArtStudioError, ConfigError
from artstudio.tune import TuneConfig, tune
from artstudio.tune.lgbo import (DeepTextFeatures, Fixed, GaussianProcess, TextEncoder, make_sampler,
                                 verbalise_config)
from artstudio.tune.space import CanvasSize, Choice, Float, Int, SearchSpace, load_space, method_space
from artstudio.tune.study import default_params, open_storage
from conftest import SUM_TEST, SUM_TRAIN

FAMILY = "qwen3_5"
TUNED = ("art", "lora", "vera", "adalink", "soft-prompt")

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Geometry:
    """Valid sizes of a patch-16 model (multiples of 32), for spaces resolved without loading one."""

    factor = 32

    def valid_sizes(self, max_side=None):
        return [s for s in range(32, (max_side or 512) + 1, 32)]


class FakeEncoder:
    """Deterministic pseudo hidden states per text (a stand-in language model for sampler tests)."""

    def encode(self, prefix, texts):
        out = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            out.append(torch.randn(len(t) % 7 + 3, 16, generator=torch.Generator().manual_seed(seed)))
        return out


def _inside(dist, value) -> bool:
    return dist._contains(dist.to_internal_repr(value))


# --- spaces ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", TUNED)
def test_every_trained_method_declares_a_valid_space(method):
    space = method_space(method).resolved(_Geometry())
    dists = space.distributions()
    assert "lr" in dists and "batch_size" in dists
    train, options = space.apply({n: (d.choices[0] if hasattr(d, "choices") else d.low) for n, d in dists.items()})
    assert train["lr"] > 0
    default = default_params(space, method)
    assert default is None or all(_inside(dists[k], v) for k, v in default.items())


def test_lora_space_lands_alpha_as_ratio_and_modules_as_list():
    space = method_space("lora")
    train, options = space.apply({"r": 8, "alpha_ratio": 2.0, "lr": 1e-3, "dropout": 0.1,
                                  "target_modules": "q_proj,k_proj,v_proj,o_proj", "batch_size": 16})
    assert train == {"lr": 1e-3, "batch_size": 16}
    assert options == {"r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def test_art_canvas_size_resolves_against_the_geometry():
    space = method_space("art")
    assert isinstance(space.params["canvas_size"], CanvasSize)
    resolved = space.resolved(_Geometry())
    assert resolved.params["canvas_size"].choices == (64, 96, 128, 160, 192, 224, 256)
    with pytest.raises(ConfigError, match="holds no size"):
        SearchSpace("art", {"canvas_size": CanvasSize(65, 90)}).resolved(_Geometry())


def test_space_file_narrows_extends_and_drops(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("lr: {low: 0.001, high: 0.004}\nr: [4, 8]\ndropout: null\nweight_decay: {low: 0.0, high: 0.1}\n")
    space = load_space("lora", f)
    assert isinstance(space.params["lr"], Float) and space.params["lr"].log  # keeps the method's log scale
    assert (space.params["lr"].low, space.params["lr"].high) == (0.001, 0.004)
    assert space.params["r"] == Choice((4, 8), help=space.params["r"].help)
    assert "dropout" not in space.params and "weight_decay" in space.params
    j = tmp_path / "space.json"
    j.write_text(json.dumps({"r": {"low": 2, "high": 4}}))
    assert isinstance(load_space("lora", j).params["r"], Int)


@pytest.mark.parametrize("text, message", [
    ("nonsense: {low: 1, high: 2}", "unknown parameter.*searchable: .*alpha_ratio"),
    # alpha beside the declared alpha_ratio: one was sampled and recorded, the other set lora's alpha
    ("alpha: {low: 8, high: 32}", "parameter 'alpha': 'alpha_ratio' sets alpha too; keep one of them "
                                  r"\(alpha_ratio searches alpha as a multiple of r\)"),
    ("lr: {low: 0.1, high: 0.01}", "low 0.1 > high 0.01"),
    ("dropout: {low: 0.2, high: 0.2}", "empty"),
    ("dropout: {low: 0.0, high: 1.5}", "outside what lora accepts"),
    ("r: {choices: [0, 4]}", "outside what lora accepts"),
    ("lr: {choices: []}", "non-empty list"),
    ("lr: {low: 0.0, high: 0.1, log: true}", "log-scale range needs low > 0"),
    ("batch_size: {choices: [0, 8]}", "outside what lora accepts"),
    ("bogus_key: null", "no such parameter"),
    ("lr: {low: 1e-3, hgh: 1e-2}", "unknown key"),
    ("- just a list", "expected an object.*got a list"),
    ("", "expected an object.*got an empty file"),
    ("lr: [1e-3", r"space.yaml:1:10: not valid YAML \(expected ',' or '\]', but got '<stream end>'\)$"),
    ("lr: {low: 1\n  bad: : 2}", r"space.yaml:2:\d+: not valid YAML \(.+\)$"),
])
def test_bad_space_files_get_clear_errors(tmp_path, text, message):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_space("lora", f)
    assert "\n" not in str(err.value)  # one line (PyYAML's own message drew the text and a caret over six)


def test_a_choice_outside_an_art_literal_is_refused(tmp_path):
    f = tmp_path / "space.json"
    f.write_text(json.dumps({"parametrization": ["pixels", "tanh"]}))
    with pytest.raises(ConfigError, match="'tanh' is outside what art accepts"):
        load_space("art", f)
    with pytest.raises(ConfigError, match="no such file|does not exist"):
        load_space("art", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="space file .* is a folder; expected a YAML or JSON file"):
        load_space("art", tmp_path)
    with pytest.raises(ConfigError, match="trains nothing"):
        method_space("base")


def test_target_modules_of_a_space_file_are_checked_against_the_model_before_any_trial(tmp_path, tiny_model_dir):
    """A choice naming a module the model lacks ended the study at the trial that drew it."""
    from artstudio.backbone import load_backbone

    backbone = load_backbone(tiny_model_dir(FAMILY), device="cpu")
    f = tmp_path / "s7.json"
    f.write_text('{"target_modules": ["q_proj,v_proj", "q_proj,zz"]}')
    with pytest.raises(ConfigError, match=r"s7\.json: parameter 'target_modules': choice 'q_proj,zz': "
                                          r"target_modules \['zz'\] match no linear layer .*this model has: .*q_proj"):
        load_space("lora", f).resolved(backbone.geometry, backbone)
    f.write_text('{"target_modules": ["q_proj,v_proj", "o_proj"]}')
    assert load_space("lora", f).resolved(backbone.geometry, backbone).params["target_modules"].choices == (
        "q_proj,v_proj", "o_proj")


def test_canvas_sizes_of_a_space_file_are_checked_against_the_model_before_any_trial(tmp_path):
    """A listed canvas size the model cannot take used to fail trial 0 with a traceback that did not name the file."""
    f = tmp_path / "s6.yaml"
    f.write_text("canvas_size: [95, 97]\n")
    space = load_space("art", f)  # the model is not known yet
    with pytest.raises(ConfigError, match=r"s6\.yaml: parameter 'canvas_size': canvas sizes 95, 97 do not fit this "
                                          r"model \(each side a multiple of 32; valid sizes: 32, 64, 96, 128"):
        space.resolved(_Geometry())
    f.write_text("canvas_size: [64, null, 96]\n")  # null: the model's recommended size
    assert load_space("art", f).resolved(_Geometry()).params["canvas_size"].choices == (64, None, 96)
    f.write_text("canvas_size: {type: int, low: 64, high: 128}\n")  # would draw 65, 66, ...
    with pytest.raises(ConfigError, match=r"s6\.yaml: parameter 'canvas_size': a canvas size is searched among"):
        load_space("art", f).resolved(_Geometry())
    f.write_text("canvas_size: {low: 65, high: 90}\n")
    with pytest.raises(ConfigError, match=r"s6\.yaml: parameter 'canvas_size': the range 65..90 holds no size"):
        load_space("art", f).resolved(_Geometry())


@pytest.mark.parametrize("text, message", [
    ("init: [gray, bogus]", "'bogus' is outside what art accepts \\(unknown canvas init"),  # free text, judged by the canvas
    ("batch_size: [8.5]", "8.5 is outside what art accepts .*whole number"),
    ("batch_size: {low: 8.0, high: 32.0}", "takes whole numbers"),
])
def test_space_file_values_a_trial_would_fail_on_are_refused_up_front(tmp_path, text, message):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_space("art", f)
    f.write_text("batch_size: {low: 8, high: 32}\ninit: [gray, noise, red]\n")  # a range replacing a choice stays whole
    space = load_space("art", f)
    assert space.params["batch_size"] == Int(8, 32, help=space.params["batch_size"].help)


# --- storages -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("runs/study.db", "not a database URL"),
    ("sqlite://", "names no database file"),
    ("nosuchdb:///x.db", "cannot be opened"),
    ("sqlite:///{tmp}", "is a folder"),
])
def test_bad_storages_get_clear_errors(tmp_path, url, message):
    with pytest.raises(ConfigError, match=message):
        open_storage(url.format(tmp=tmp_path))


def test_a_storage_password_is_never_shown():
    """A postgres storage that could not be opened echoed its URL, password included."""
    from artstudio.tune.study import shown_url

    with pytest.raises(ConfigError, match=r"'postgresql://me:\*\*\*@localhost:1/db' cannot be opened") as err:
        open_storage("postgresql://me:s3cret@localhost:1/db")
    assert "s3cret" not in str(err.value)
    assert shown_url("sqlite:///runs/s.db") == "sqlite:///runs/s.db" and shown_url("not a url") == "not a url"


def test_a_good_sqlite_storage_opens(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'sub' / 'study.db'}", heartbeat=5)
    optuna.create_study(storage=storage, study_name="s")
    assert (tmp_path / "sub" / "study.db").is_file()


OPEN_AT_ONCE = """
import sys, time
from artstudio.tune.study import open_storage
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
open_storage(sys.argv[1], heartbeat=5)
"""


def test_processes_opening_one_fresh_storage_at_once_all_succeed(tmp_path):
    # Shared studies start this way: several processes create the same database's schema at the same moment.
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    start = time.time() + 8  # after every interpreter has imported optuna
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, url, str(start)], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(e[-600:] for e in errors)


# --- samplers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["lgbo", "gp", "tpe", "random"])
@pytest.mark.parametrize("method", ["lora", "art"])
def test_suggestions_stay_inside_the_space(sampler, method):
    space = method_space(method).resolved(_Geometry())
    dists = space.distributions()
    s = make_sampler(sampler, dists, seed=0, startup=3, candidates=32, encoder=FakeEncoder(),
                     helps={n: p.help for n, p in space})
    study = optuna.create_study(direction="maximize", sampler=s)

    def objective(trial):
        from artstudio.tune.study import suggest

        params = {n: suggest(trial, n, d) for n, d in dists.items()}
        lr = params["lr"]
        return -abs(math.log10(lr) + 2.5) + (0.1 if params["batch_size"] == 16 else 0.0)

    study.optimize(objective, n_trials=8)
    assert len(study.trials) == 8
    for t in study.trials:
        assert set(t.params) == set(dists)
        assert all(_inside(dists[n], v) for n, v in t.params.items()), t.params
    if sampler in ("lgbo", "gp"):
        assert s.last_fit is not None  # the model, not the random start, chose the last trials


def test_deep_kernel_gp_fits_a_function_of_text_features_better_than_a_plain_gp():
    """Hidden states that vary along a few directions (as a language model's do), and a target that depends
    on one direction of them: the deep kernel learns that direction, a plain GP on the same features cannot."""
    gen = torch.Generator().manual_seed(0)
    n_train, n_test, d, latent, length = 40, 200, 24, 6, 5
    mixing = torch.randn(latent, d, generator=gen)
    codes = torch.randn(n_train + n_test, length, latent, generator=gen)
    states = codes @ mixing + 0.05 * torch.randn(n_train + n_test, length, d, generator=gen)
    mask = torch.ones(n_train + n_test, length)
    direction = torch.randn(latent, generator=gen)
    x = codes.mean(1) @ direction / direction.norm() * math.sqrt(length)
    y = torch.sin(1.5 * x) + 0.5 * x
    y = ((y - y[:n_train].mean()) / y[:n_train].std()).double()
    train, test = torch.arange(n_train), torch.arange(n_train, n_train + n_test)

    torch.manual_seed(0)
    deep = GaussianProcess(DeepTextFeatures(states, mask, out_dim=2, seed=0), 2, ard=False).fit(train, y[:n_train], iters=200)
    plain_x = states.mean(1)
    plain_x = (plain_x - plain_x.mean(0)) / plain_x.std(0)
    plain = GaussianProcess(Fixed(plain_x), d, ard=False).fit(train, y[:n_train], iters=200)
    rmse = {name: float(((gp.predict(test)[0] - y[n_train:]) ** 2).mean().sqrt()) for name, gp in
            (("deep", deep), ("plain", plain))}
    assert rmse["deep"] < 0.7 * rmse["plain"], rmse


def test_configurations_are_verbalised_with_their_position_in_the_range():
    dists = method_space("lora").distributions()
    text = verbalise_config(dists, {"r": 32, "alpha_ratio": 0.5, "lr": 1e-2, "dropout": 0.0,
                                    "target_modules": "q_proj,v_proj", "batch_size": 8})
    assert "r = 32 (very high in its range)" in text and "lr = 0.01 (very high" in text
    assert "target_modules = q_proj,v_proj" in text


# --- the real encoder and a tiny study -----------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return tiny_model_dir(FAMILY)


def test_text_encoder_prefix_cache_matches_reading_the_whole_text(model):
    from artstudio.backbone import load_backbone

    backbone = load_backbone(model, device="cpu")
    enc = TextEncoder.from_backbone(backbone)
    prefix, texts = "Tune the learning rate.\n", ["lr = 0.01 (high).", "lr = 1e-4 (very low); r = 2."]
    cached = enc.encode(prefix, texts)
    assert enc._prefix[1] is not None  # the prefix's KV cache was kept and reused
    lm = enc.lm
    with torch.no_grad():
        for text, h in zip(texts, cached):
            ids = enc._ids(prefix + text).unsqueeze(0)
            n = len(enc._ids(prefix))
            full = lm(inputs_embeds=enc.embed(ids)).last_hidden_state[0, n:]
            assert full.shape == h.shape
            assert torch.allclose(full.float(), h, atol=1e-4)


def _space_file(tmp_path) -> Path:
    f = tmp_path / "space.yaml"
    # The method's defaults (lr 0.05, batch 16, its canvas size) lie inside: trial 0 is the default configuration.
    f.write_text("lr: {low: 0.01, high: 0.2}\ncanvas_size: null\nbatch_size: [4, 16]\n"
                 "init: null\ntv_weight: null\nparametrization: null\nschedule: null\n")
    return f


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end(model, sum_task, tmp_path):
    from artstudio.training import TrainConfig

    out = tmp_path / "tune"
    events = []
    result = tune(method="art", data=str(sum_task), model=model, trials=3, sampler="lgbo", startup=2, candidates=16,
                  space=str(_space_file(tmp_path)), proxy=0.5, val_fraction=0.2, steps=4, trial_steps=2,
                  out=str(out), progress=events.append)
    assert result.n_complete == 3 and 0.0 <= result.best_value <= 1.0
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[0]["default"] == "True"  # trial 0 is the default configuration
    assert {"param_lr", "param_batch_size"} <= set(rows[0]) and float(rows[0]["param_lr"]) == 0.05
    # Trials never saw the test split: proxy and validation rows are training rows, disjoint.
    proxy = {e.id for e in load_jsonl(out / "data" / "proxy" / "train.jsonl")}
    val = {e.id for e in load_jsonl(out / "data" / "val.jsonl")}
    assert proxy and val and not proxy & val and (proxy | val) <= {e.id for e in SUM_TRAIN}
    trial_cfg = json.loads((out / "trials" / "trial-0001" / "config.json").read_text())
    assert trial_cfg["eval_data"].endswith("val.jsonl") and trial_cfg["steps"] == 2
    assert trial_cfg["method_options"]["starts"] == 1  # a trial measures its configuration from one start
    # best.json is a TrainConfig that `artstudio train --config` can take as it is: its run folder is one the
    # study never writes (it used to be final/best, the study's own run, so train refused it).
    best = TrainConfig.from_dict(json.loads((out / "best.json").read_text()))
    assert best.method == "art" and best.steps == 4 and best.data == str(sum_task)
    assert best.out == str((out / "tuned").resolve()) and not (out / "tuned").exists()
    assert "starts" not in best.method_options  # best.json and the final runs start as `train` does
    assert f"into {out / 'tuned'}" in result.summary() and f"into `{out / 'tuned'}`" in (out / "report.md").read_text()
    assert best.lr == result.best_params["lr"] and best.batch_size == result.best_params["batch_size"]
    final = json.loads((out / "final.json").read_text())
    assert final["best"]["eval_n"] == len(SUM_TEST) and final["default"]["eval_n"] == len(SUM_TEST)
    for name in ("best_so_far.png", "proxy_vs_full.png", "report.md", "best_method_options.json"):
        assert (out / name).is_file(), name
    # Importance needs a spread of scores: with every trial equal it listed an equal share for each parameter.
    scores = {r["value"] for r in csv.DictReader(open(out / "trials.csv")) if r["state"] == "COMPLETE"}
    assert (out / "importance.png").is_file() == (len(scores) > 1)
    assert ("Not measured: every finished trial scored the same" in (out / "report.md").read_text()) == (len(scores) == 1)
    assert "Final runs" in (out / "report.md").read_text()
    # The options file goes to compare as it is; the rate, a training option, goes as --lr-grid.
    report = (out / "report.md").read_text()
    assert f"artstudio compare --method-options {out / 'best_method_options.json'}" in report
    assert f"--lr-grid 'art={best.lr:.4g}'" in report and f"--batch-size {best.batch_size}" in report
    assert {"best.json", "final.json", "report.md", "trials.csv"} <= set(result.files)  # best.json was missing
    # The best trials and the default were re-ranked at the full steps; best.json holds the pick.
    rerank = json.loads((out / "rerank.json").read_text())
    assert result.chosen_trial == rerank["chosen"] and len(rerank["runs"]) == 3  # 2 trials + the default (trial 0)
    assert "## Re-ranking" in (out / "report.md").read_text() and "picked" in result.summary()
    assert f"trial {result.chosen_trial}: {result.best_value:.1%} on validation after its short trial" in result.summary()
    rerun_cfg = json.loads((out / "rerank" / "trial-0000" / "config.json").read_text())
    assert rerun_cfg["eval_data"].endswith("val.jsonl") and rerun_cfg["data"].endswith("fit") and rerun_cfg["steps"] == 4
    assert [e["done"] for e in events if e["phase"] == "trial"] == [1, 2, 3]
    # A second call finds the study finished: no trial runs again, final runs are reused.
    again = tune(method="art", data=str(sum_task), model=model, trials=3, sampler="lgbo", startup=2, candidates=16,
                 space=str(_space_file(tmp_path)), proxy=0.5, val_fraction=0.2, steps=4, trial_steps=2, out=str(out))
    assert again.n_complete == 3 and again.final == result.final
    assert f"artstudio train --config {out / 'best.json'}" in result.summary()
    (out / "tuned").mkdir()  # once trained, the command said would be refused: the summary says so
    (out / "tuned" / "config.json").write_text("{}")
    assert f"{out / 'tuned'} holds its run already; artstudio train --config {out / 'best.json'} --out OTHER" \
        in result.summary()
    (out / "tuned" / "config.json").unlink()
    (out / "tuned").rmdir()
    trials_before = (out / "trials.csv").read_text()
    with pytest.raises(ConfigError, match=r"holds another study \(sampler 'lgbo', not 'tpe'\)"):
        tune(method="art", data=str(sum_task), model=model, trials=3, sampler="tpe", space=str(_space_file(tmp_path)),
             proxy=0.5, val_fraction=0.2, steps=4, trial_steps=2, out=str(out))
    assert (out / "trials.csv").read_text() == trials_before
    from artstudio.cli import main

    assert main(["train", "--config", str(out / "best.json")]) == 0
    assert json.loads((out / "tuned" / "config.json").read_text())["lr"] == best.lr


def test_a_grown_study_draws_new_configurations(model, sum_task, tmp_path):
    """Growing a finished study (--trials 2, then 3) redrew trial 1's configuration as trial 2: the new
    sampler started from the same seed."""
    kw = dict(method="art", data=str(sum_task), model=model, sampler="random", space=str(_space_file(tmp_path)),
              proxy=0.5, val_fraction=0.2, steps=2, trial_steps=2, out=str(tmp_path / "tune"), final=False)
    tune(trials=2, **kw)
    tune(trials=3, **kw)
    study = optuna.load_study(study_name="art-sum-random-seed0", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(params) == 3 and len(set(params)) == 3, params


def test_a_study_whose_training_rows_were_edited_is_not_resumed(model, sum_task, tmp_path):
    """A study resumed after --data's rows were edited carved new validation rows and mixed trials scored on
    the old rows with trials scored on the new ones, in one study and one trials.csv."""
    kw = dict(method="art", data=str(sum_task), model=model, sampler="random", space=str(_space_file(tmp_path)),
              proxy=0.5, val_fraction=0.2, steps=2, trial_steps=2, out=str(tmp_path / "tune"), final=False)
    tune(trials=1, **kw)
    train_file, val_file = sum_task / "train.jsonl", tmp_path / "tune" / "data" / "val.jsonl"
    rows, val = train_file.read_text(), val_file.read_text()
    train_file.write_text("".join(rows.splitlines(keepends=True)[1:]))  # one row fewer
    with pytest.raises(ConfigError, match=r"training rows of --data .* changed since the study in .* began"):
        tune(trials=2, **kw)
    assert val_file.read_text() == val, "the refused study carved no new splits"
    train_file.write_text(rows)  # restored: it resumes
    assert tune(trials=2, **kw).n_complete == 2


RESUME_SCRIPT = """
import sys
from artstudio.tune import tune
tune(method="art", data=sys.argv[1], model=sys.argv[2], trials=4, sampler="tpe", startup=2,
     space=sys.argv[3], proxy=0.5, val_fraction=0.2, steps=4, trial_steps=int(sys.argv[5]), out=sys.argv[4],
     heartbeat=1, final=False)
"""


@pytest.mark.slow
def test_a_study_killed_mid_trial_resumes_without_repeating_finished_trials(model, sum_task, tmp_path):
    out = tmp_path / "tune"
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    space = _space_file(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    args = [sys.executable, str(script), str(sum_task), model, str(space), str(out)]
    # Trials long enough (200 steps) that one is always caught training after the first has finished,
    # however fast the machine; stderr goes to a file (a pipe nobody reads could fill and block the child).
    log = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(args + ["200"], env=env, stderr=log, stdout=subprocess.DEVNULL, text=True)
    url = f"sqlite:///{out / 'study.db'}"
    killed_at = None
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not (out / "study.db").is_file():
                continue
            try:
                study = optuna.load_study(study_name="art-sum-tpe-seed0", storage=url)
            except Exception:  # noqa: BLE001 - not created yet
                continue
            states = [t.state.name for t in study.trials]
            running = [t for t in study.trials if t.state.name == "RUNNING" and t.params]  # training, not just created
            if states.count("COMPLETE") >= 1 and running:
                killed_at = states
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    assert killed_at is not None, ("the study never reached a running trial after a finished one; its stderr ends: "
                                   + (tmp_path / "stderr.txt").read_text()[-2000:])
    before = {t.number: (t.params, t.value, (Path(t.user_attrs["run_dir"]) / "result.json").stat().st_mtime)
              for t in optuna.load_study(study_name="art-sum-tpe-seed0", storage=url).trials if t.state.name == "COMPLETE"}
    # Run again at once, within the heartbeat's grace period: the killed trial used to stay RUNNING (only a
    # stale heartbeat failed it), so the study finished its count with new trials and never retried it. Its
    # process is gone, which the resumed study checks.
    done = subprocess.run(args + ["2"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="art-sum-tpe-seed0", storage=url)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 4
    assert states.count("FAIL") == 1  # the killed trial, failed (its process is gone) and retried
    assert "left running by a process that is gone" in done.stderr
    for number, (params, value, mtime) in before.items():
        t = study.trials[number]
        assert t.state.name == "COMPLETE" and t.params == params and t.value == value
        assert (Path(t.user_attrs["run_dir"]) / "result.json").stat().st_mtime == mtime  # not run again
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    retried = [t for t in study.trials if t.number > failed.number and t.params == failed.params]
    assert retried, "the killed trial's configuration was not retried"
    # Apart from that retry, the resumed process drew new configurations (its sampler, seeded as the first
    # process's, used to draw the killed trial's configuration once more as a "new" trial).
    params = [tuple(sorted(t.params.items())) for t in study.trials if t.number != retried[0].number]
    assert len(set(params)) == len(params), params


def test_tune_refuses_bad_options_before_loading_a_model(tmp_path, sum_task):
    one = tmp_path / "one.jsonl"  # it advised "a validation fraction of 0", which tune refuses
    write_jsonl(one, SUM_TRAIN[:1])
    with pytest.raises(ConfigError, match="proxy"):
        tune(method="art", data=str(sum_task), proxy=0.0, out=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="sampler"):
        tune(method="art", data=str(sum_task), sampler="bayes", out=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="trains nothing"):
        tune(method="base", data=str(sum_task), out=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="not a database URL"):
        tune(method="art", data=str(sum_task), storage="study.db", out=str(tmp_path / "o"))
    for bad, message in [(dict(timeout=-5), "--timeout is -5"), (dict(encoder=str(tmp_path / "none")), "is not a folder"),
                         (dict(device="tpu"), "is not a device"), (dict(dtype="fp8"), "is not a dtype"),
                         (dict(data=str(tmp_path / "nosuch")), "neither a file"),
                         (dict(space=str(tmp_path / "none.yaml")), "does not exist"),
                         (dict(val_size=-1), "--val-size is -1"),  # the app queued it, and the study failed
                         (dict(data=str(one)), "has 1 training row; a study trains its trials on some rows")]:
        with pytest.raises(ArtStudioError, match=message):
            tune(**(dict(method="art", data=str(sum_task), out=str(tmp_path / "o")) | bad))
    assert not (tmp_path / "o").exists()  # a refused study leaves no folder (it left study.db and data/)
    mine = tmp_path / "mine"  # ... and an empty folder the user made stays empty (study.db was left there)
    mine.mkdir()
    with pytest.raises(ArtStudioError, match="neither a file"):
        tune(method="lora", data=str(tmp_path / "nosuch"), out=str(mine))
    assert mine.is_dir() and not list(mine.iterdir())
    assert TuneConfig().sampler == "lgbo"


def test_one_out_folder_holds_one_study(tmp_path):
    """A second study in the same --out would replace the first's splits, trial runs and best.json."""
    from artstudio.tune.study import claim_out

    space = method_space("lora")
    claim_out(TuneConfig(method="lora", data="add-json", trials=10), tmp_path, space=space)
    claim_out(TuneConfig(method="lora", data="add-json", trials=30, trial_steps=80, timeout=60.0), tmp_path,
              space=space)  # a resume
    with pytest.raises(ConfigError, match=r"holds another study \(method 'lora', not 'art'; proxy 0.1, not 0.2\)"):
        claim_out(TuneConfig(method="art", data="add-json", proxy=0.2), tmp_path, write=False)
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read which study"):
        claim_out(TuneConfig(method="lora", data="add-json"), tmp_path)


def test_a_folder_of_ones_own_is_not_taken_for_a_study(tmp_path):
    """`tune --out mine` replaced mine/report.md with the study's report: a folder without study.json was taken
    over as it was. A folder holding only what a study writes before recording itself is still taken (a study
    killed while its model loaded resumes)."""
    from artstudio import tune

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("important")
    with pytest.raises(ConfigError, match=r"mine holds files that are not a study of `artstudio tune` \(report.md\)"):
        tune(TuneConfig(method="lora", data="add-json", trials=1, out=str(mine)))
    assert (mine / "report.md").read_text() == "important"
    from artstudio.tune.study import claim_out

    begun = tmp_path / "begun"
    for name in ("data", "task"):
        (begun / name).mkdir(parents=True)
    (begun / "study.db").write_bytes(b"")
    claim_out(TuneConfig(method="lora", data="add-json"), begun, space=method_space("lora"))
    assert (begun / "study.json").is_file()


def test_the_default_storage_named_or_left_out_is_one_study(tmp_path, monkeypatch):
    """`--storage sqlite:///runs/tune/study.db --out runs/tune` and a resume without --storage (its default,
    OUT/study.db) used to be refused as another study ("storage '...', not None")."""
    from artstudio.tune.study import claim_out

    monkeypatch.chdir(tmp_path)
    space, out = method_space("lora"), Path("runs/tune")
    out.mkdir(parents=True)
    claim_out(TuneConfig(method="lora", data="add-json", storage="sqlite:///runs/tune/study.db"), out, space=space)
    claim_out(TuneConfig(method="lora", data="add-json"), out, space=space)
    claim_out(TuneConfig(method="lora", data="add-json", storage=f"sqlite:///{tmp_path / 'runs/tune/study.db'}"), out,
              space=space)
    with pytest.raises(ConfigError, match=r"storage 'sqlite:///.*runs/tune/study\.db', not 'sqlite:///.*runs/tune/other\.db'"):
        claim_out(TuneConfig(method="lora", data="add-json", storage="sqlite:///runs/tune/other.db"), out, space=space)


def test_one_out_folder_holds_one_space(tmp_path):
    """study.json records the space itself: an edited --space file into the same --out is another study (it used
    to reach Optuna's 'CategoricalDistribution does not support dynamic value space' traceback)."""
    from artstudio.tune.study import claim_out

    f = tmp_path / "s6.yaml"
    config = TuneConfig(method="art", data="add-json", space=str(f))
    out = tmp_path / "out"
    out.mkdir()
    f.write_text("canvas_size: [64, 96]\n")
    first = load_space("art", f).resolved(_Geometry())
    claim_out(config, out, write=False)  # before the model loads: nothing recorded yet
    assert not (out / "study.json").exists()
    claim_out(config, out, space=first)
    assert json.loads((out / "study.json").read_text())["space"]["canvas_size"] == {"type": "choice", "choices": [64, 96]}
    claim_out(config, out, space=load_space("art", f).resolved(_Geometry()))  # the same space: a resume
    moved = tmp_path / "moved.yaml"
    moved.write_text(f.read_text())
    claim_out(TuneConfig(method="art", data="add-json", space=str(moved)), out, space=load_space("art", moved).resolved(_Geometry()))
    f.write_text("canvas_size: [64, 128]\nlr: {low: 0.01, high: 0.1}\n")
    claim_out(config, out, write=False)  # the space is compared once it is resolved
    with pytest.raises(ConfigError, match=r"holds another study \(space: lr 0.005..0.5 log, not 0.01..0.1 log; "
                                          r"canvas_size 64 \| 96, not 64 \| 128\)"):
        claim_out(config, out, space=load_space("art", f).resolved(_Geometry()))
    # A study.json of an older version recorded the --space path: compared by path, as it was.
    old = json.loads((out / "study.json").read_text()) | {"space": str(f)}
    (out / "study.json").write_text(json.dumps(old))
    claim_out(config, out, space=load_space("art", f).resolved(_Geometry()))
    with pytest.raises(ConfigError, match="holds another study \\(space '.*s6.yaml', not None\\)"):
        claim_out(TuneConfig(method="art", data="add-json"), out, space=method_space("art").resolved(_Geometry()))


def test_a_study_in_a_storage_keeps_its_space():
    """The study's own record of its space guards older study.json files and several --out sharing a storage."""
    from artstudio.tune.study import check_study_space, suggest

    space = method_space("art").resolved(_Geometry())
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("space", space.to_dict())
    check_study_space(study, space, "s", "sqlite:///x.db")  # no trial yet: nothing to keep
    dists = space.distributions()
    study.optimize(lambda t: float(len([suggest(t, n, d) for n, d in dists.items()])), n_trials=1)
    check_study_space(study, method_space("art").resolved(_Geometry()), "s", "sqlite:///x.db")
    narrowed = SearchSpace("art", dict(space.params) | {"batch_size": Choice((8, 16))})
    with pytest.raises(ConfigError, match=r"study 's' in sqlite:///x.db searches another space \(batch_size 8 \| 16 \| 32, "
                                          r"not 8 \| 16\)"):
        check_study_space(study, narrowed, "s", "sqlite:///x.db")


def test_trials_run_long_enough_to_rank_configurations():
    """Default trial length: steps x proxy, never under the floor the proxy measurement chose (docs/tune.md)."""
    from artstudio.tune.study import MIN_TRIAL_STEPS, trial_steps

    assert MIN_TRIAL_STEPS == 50
    assert trial_steps(TuneConfig(method="lora", data="add-json", steps=100, proxy=0.1)) == 50
    assert trial_steps(TuneConfig(method="lora", data="add-json", steps=3000, proxy=0.1)) == 300
    assert trial_steps(TuneConfig(method="lora", data="add-json", steps=100, proxy=0.1, trial_steps=7)) == 7


@pytest.mark.slow
def test_a_bad_then_changed_space_is_refused_before_any_trial(model, sum_task, tmp_path):
    out, f = tmp_path / "tune", tmp_path / "s6.yaml"
    args = dict(method="art", data=str(sum_task), model=model, trials=1, sampler="random", proxy=0.5, val_fraction=0.2,
                steps=2, trial_steps=1, out=str(out), final=False, space=str(f))
    f.write_text("canvas_size: [95, 97]\n")
    with pytest.raises(ConfigError, match=r"s6\.yaml: parameter 'canvas_size': canvas sizes 95, 97 do not fit this model"):
        tune(**args)
    assert not (out / "study.json").exists()  # nothing recorded: the fixed file is the same study
    f.write_text("canvas_size: {low: 32, high: 512}\nlr: {low: 0.01, high: 0.1}\n")
    assert tune(**args).n_complete == 1
    f.write_text("canvas_size: {low: 32, high: 512}\nlr: {low: 0.01, high: 0.2}\n")
    with pytest.raises(ConfigError, match=r"holds another study \(space: lr 0.01..0.1 log, not 0.01..0.2 log\)"):
        tune(**args)


@pytest.mark.slow
def test_ctrl_c_and_a_failed_trial_print_no_optuna_traceback_and_the_study_resumes(model, sum_task, tmp_path, capfd,
                                                                                   monkeypatch):
    from artstudio.cli import main
    from artstudio.tune import study as study_module

    real = study_module.train_on
    calls = []

    def train_on(guard, tc, fail_on):
        calls.append(tc.out)
        if len(calls) in fail_on:
            raise fail_on[len(calls)]
        return real(guard, tc)

    out = tmp_path / "tune"
    argv = ["tune", "--method", "art", "--data", str(sum_task), "--model", model, "--trials", "3", "--sampler", "random",
            "--space", str(_space_file(tmp_path)), "--proxy", "0.5", "--val-fraction", "0.2", "--steps", "2",
            "--trial-steps", "1", "--out", str(out), "--no-final"]
    monkeypatch.setattr(study_module, "train_on", lambda g, tc: train_on(g, tc, {1: KeyboardInterrupt()}))
    assert main(argv) == 130
    err = capfd.readouterr().err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err and "failed with" not in err, err
    monkeypatch.setattr(study_module, "train_on", lambda g, tc: train_on(g, tc, {3: RuntimeError("boom\nmore")}))
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "failed with" not in err, err  # Optuna's own 'Trial N failed with ...' warnings
    assert err.count("boom") == 1 and "tune: trial 2 failed (RuntimeError: boom) ·" in err, err
    with open(out / "trials.csv", newline="") as fh:
        rows = [(r["number"], r["state"], r["default"]) for r in csv.DictReader(fh)]
    # The interrupted default configuration ran again on resume, as a killed trial's does; the failed trial did not.
    assert rows == [("0", "FAIL", "True"), ("1", "COMPLETE", "True"), ("2", "FAIL", "False"), ("3", "COMPLETE", "False")], rows


def test_tune_help_examples_use_real_options(capsys):
    from artstudio.cli import main

    assert main(["tune", "--help"]) == 0
    text = capsys.readouterr().out
    options, examples = text.split("examples:")
    import re

    used = {o for line in examples.splitlines() if "artstudio tune" in line for o in re.findall(r"--[a-z-]+", line)}
    assert used and used <= set(re.findall(r"--[a-z-]+", options)), used - set(re.findall(r"--[a-z-]+", options))


@pytest.mark.slow
def test_a_final_run_stopped_part_way_goes_on_from_its_checkpoint_when_the_command_runs_again(model, sum_task,
                                                                                                tmp_path, monkeypatch):
    # Running the same tune command again used to fail with "final/best already holds a run; pass --resume",
    # an option tune does not have.
    from artstudio.training import train
    from artstudio.tune import study as study_module

    real = study_module.train_on

    def stop_the_first_final_run_after_3_steps(guard, tc):
        if Path(tc.out).name != "default" or tc.resume or tc.overwrite:
            return real(guard, tc)
        seen = []
        train(tc, backbone=guard.backbone, progress=False, should_stop=lambda: len(seen) >= 3,
              callbacks=[lambda r: "loss" in r and seen.append(r["step"])])
        guard.release(None)
        raise KeyboardInterrupt  # as Ctrl-C in the step loop: the run keeps a checkpoint at its last step

    args = dict(method="art", data=str(sum_task), model=model, trials=2, sampler="random", startup=2,
                space=str(_space_file(tmp_path)), proxy=0.5, val_fraction=0.2, steps=6, trial_steps=1, rerank=0,
                out=str(tmp_path / "tune"))
    monkeypatch.setattr(study_module, "train_on", stop_the_first_final_run_after_3_steps)
    with pytest.raises(KeyboardInterrupt):
        tune(**args)
    default = tmp_path / "tune" / "final" / "default"
    assert json.loads((default / "checkpoint" / "checkpoint.json").read_text())["step"] == 3
    result = tune(**args)
    assert result.final["default"]["steps"] == 6 and result.final["default"]["accuracy"] is not None
    steps = [json.loads(line)["step"] for line in (default / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4, 5, 6], steps  # went on from step 3, nothing trained twice


def test_a_tuned_configuration_that_loses_to_the_default_on_test_is_said_so():
    """The summary showed 'default on test 94.0 %, best on test 87.5 %' and left the user to notice that the
    tuned configuration was worse (tuned ART on reverse-json, docs/tune.md)."""
    from artstudio.tune.study import TuneResult, final_verdict

    worse = {"default": {"accuracy": 0.94}, "best": {"accuracy": 0.875}}
    said = final_verdict(worse)
    assert "scored below the default on test (87.5% against 94.0%)" in said and "Keep the default" in said
    assert "the same as the default on test (90.0%): tuning gained nothing" in final_verdict(
        {"default": {"accuracy": 0.9}, "best": {"accuracy": 0.9}})
    # A tie at 100 % is no sign that the proxy misled (it was told "the proxy trials did not rank configurations...").
    ceiling = final_verdict({"default": {"accuracy": 1.0}, "best": {"accuracy": 1.0}})
    assert "both score 100% on test: nothing to gain" in ceiling and "proxy" not in ceiling
    assert final_verdict({"default": {"accuracy": 0.9}, "best": {"accuracy": 0.95}}) is None
    assert final_verdict(None) is None and final_verdict({"default": {"accuracy": None}, "best": {}}) is None
    # Re-ranking picked the default: the same score is no sign that the trials misled.
    kept = final_verdict({"default": {"accuracy": 0.9}, "best": {"accuracy": 0.9, "is_default": True}})
    assert kept.startswith("no trial beat the default configuration") and "Keep the default" not in kept
    # With --rerank 0 nothing ran at the full steps: the pick is the best proxy trial (it said "at the full steps").
    proxy_only = final_verdict({"default": {"accuracy": 0.9}, "best": {"accuracy": 0.9, "is_default": True,
                                                                         "reranked": False}})
    assert "on validation after the short proxy trials" in proxy_only and "full steps" not in proxy_only
    result = TuneResult(out=Path("runs/t"), study_name="s", storage="sqlite:///s.db", best_params={"lr": 0.1},
                        best_value=0.9, n_complete=3, best_config={"out": "runs/t/tuned"}, final=worse)
    assert "verdict" in result.summary() and "Keep the default" in result.summary()


def test_rerank_picks_by_validation_after_full_steps_and_a_tie_goes_to_the_default(tmp_path, monkeypatch, caplog):
    """Proxy trials ranked high ART learning rates first, which then lost to the default over 300 steps (tuned
    reverse-json 80.5 % against the default's 94.0 % on test). The best K trials and the default now train
    the full steps on the non-validation rows, and validation picks among them; the test split stays unread."""
    import types

    from artstudio.tune import TuneConfig
    from artstudio.tune import study as study_module
    from artstudio.tune.space import load_space

    def trial(number, value, lr, default=False):
        return types.SimpleNamespace(number=number, value=value, params={"lr": lr, "batch_size": 16},
                                     user_attrs={"default": True} if default else {})

    trials = [trial(0, 0.5, 0.05, default=True), trial(1, 0.9, 0.2), trial(2, 0.8, 0.1), trial(3, 0.7, 0.02),
              trial(4, 0.6, 0.03)]
    splits = types.SimpleNamespace(fit_folder=tmp_path / "data" / "fit", val_file=tmp_path / "data" / "val.jsonl")
    config = TuneConfig(method="art", data="sum", steps=300, rerank=3)
    space = load_space("art", _space_file(tmp_path))
    trained = []

    def run(scores):
        trained.clear()

        def fake_final_run(tc, guard, progress, what=None):
            trained.append(tc)
            return {"accuracy": scores[tc.lr], "train_seconds": 1.0}

        monkeypatch.setattr(study_module, "_final_run", fake_final_run)
        return study_module._rerank(config, space, trials, splits, tmp_path, None, None)

    chosen, results = run({0.2: 0.70, 0.1: 0.80, 0.02: 0.75, 0.05: 0.80})
    assert chosen.number == 0  # trial 2 ties the default on validation: the default stays
    assert sorted(t.lr for t in trained) == [0.02, 0.05, 0.1, 0.2]  # the best 3 proxy trials and the default
    assert all(tc.data == str(splits.fit_folder) and tc.eval_data == str(splits.val_file) and tc.steps == 300
               for tc in trained)
    assert json.loads((tmp_path / "rerank.json").read_text())["chosen"] == 0
    with caplog.at_level("WARNING", logger="artstudio.tune"):  # it said the default "scored best" on a tie
        assert run({0.2: 0.0, 0.1: 0.0, 0.02: 0.0, 0.05: 0.0})[0].number == 0
    assert "the best proxy trial 1 ties the default on validation (0.0%); a tie keeps the default" in caplog.text
    chosen, results = run({0.2: 0.70, 0.1: 0.81, 0.02: 0.75, 0.05: 0.80})
    assert chosen.number == 2 and [r["trial"] for r in results] == [1, 2, 3, 0]
    # A --space without the default: the default is still re-ranked beside the trials, as report.md's heading
    # says (it was left out), and named when it beats them; the pick stays a trial of the space.
    trials[0] = trial(0, 0.5, 0.07)
    caplog.clear()
    with caplog.at_level("WARNING", logger="artstudio.tune"):
        chosen, results = run({0.2: 0.70, 0.1: 0.81, 0.02: 0.75, 0.07: 0.5, None: 0.95})  # None: the default rate
    assert [r["trial"] for r in results] == [1, 2, 3, None] and results[-1]["default"]
    assert chosen.number == 2 and "the default configuration, which lies outside --space, scored 95.0%" in caplog.text


def test_a_second_process_of_a_shared_study_waits_for_the_final_run_the_first_is_training(tmp_path, capsys):
    """Two processes sharing a study and its --out both reach the final runs: the second stopped with "run folder
    ... is in use by another training". It now waits, then reuses the first one's result."""
    import fcntl
    import threading

    from artstudio.tune.study import _wait_for_another_process

    out = tmp_path / "final" / "best"
    out.mkdir(parents=True)
    done = out / "tune_final.json"
    _wait_for_another_process(out, done)  # no lock file: nothing to wait for
    holder = open(out / ".lock", "a+")
    holder.write("pid 12345\n")
    holder.flush()
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    waiter = threading.Thread(target=_wait_for_another_process, args=(out, done), kwargs={"poll": 0.05})
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # the other process is still training
    fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
    waiter.join(0.5)
    assert waiter.is_alive()  # its result is not written yet
    done.write_text("{}")
    waiter.join(2.0)
    assert not waiter.is_alive()
    holder.close()
    assert "is being trained by another process of this study (pid 12345); waiting" in capsys.readouterr().err


def test_data_without_a_test_split_warns_that_the_final_runs_go_unscored(tmp_path, caplog):
    """A bare train.jsonl ran every trial and final run, then failed writing the report (accuracy None)."""
    from artstudio.tune import TuneConfig
    from artstudio.tune.report import write_outputs
    from artstudio.tune.study import prepare_splits

    write_jsonl(tmp_path / "rows.jsonl", SUM_TRAIN)
    with caplog.at_level("WARNING", logger="artstudio.tune"):
        splits = prepare_splits(TuneConfig(method="art", data=str(tmp_path / "rows.jsonl")), tmp_path / "study")
    assert "has no test split: the final runs train but cannot be scored" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="artstudio.tune"):
        prepare_splits(TuneConfig(method="art", data=str(tmp_path / "rows.jsonl"), final=False), tmp_path / "s2")
    assert "no test split" not in caplog.text
    # The report says so instead of failing on the unscored final runs.
    study = optuna.create_study(direction="maximize")
    lr = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    for i, (value, rate) in enumerate([(0.5, 0.05), (0.75, 0.02)]):
        study.add_trial(optuna.trial.create_trial(params={"lr": rate}, distributions={"lr": lr}, value=value,
                                                  user_attrs={"default": i == 0}))
    unscored = {"accuracy": None, "eval_n": None, "steps": 4, "train_seconds": 1.0, "proxy_value": 0.5}
    write_outputs(study, load_space("art", _space_file(tmp_path)), TuneConfig(method="art", data="x", steps=4),
                  tmp_path / "study", final={"default": unscored, "best": unscored | {"proxy_value": 0.75}},
                  storage_url="sqlite:///x.db", splits=splits, chosen=study.best_trial)
    assert (tmp_path / "study" / "report.md").read_text().count("not scored (no test split)") == 2



def test_a_study_says_each_warning_of_its_runs_once(caplog):
    """Every trial repeated "--batch-size 32 is larger than the 18 training rows", naming an option tune lacks."""
    import logging

    from artstudio.tune.study import _each_warning_once

    train_log = logging.getLogger("artstudio.train")
    with caplog.at_level("INFO", logger="artstudio.train"):
        with _each_warning_once():
            for _ in range(3):
                train_log.warning("batch size %d (--batch-size) is larger than the %d training rows", 32, 18)
                train_log.info("resumed")
            train_log.warning("batch size %d (--batch-size) is larger than the %d training rows", 16, 9)
        train_log.warning("batch size %d (--batch-size) is larger than the %d training rows", 32, 18)
    said = [r.getMessage() for r in caplog.records]
    # Once inside the study, naming the trial's sampled size (not a flag the user never passed), then after it
    assert said.count("batch size 32 (a trial's batch_size) is larger than the 18 training rows") == 1
    assert said.count("batch size 32 (--batch-size) is larger than the 18 training rows") == 1
    assert said.count("resumed") == 3 and "batch size 16 (a trial's batch_size) is larger than the 9 training rows" in said


def test_without_reranking_a_default_that_is_the_best_proxy_trial_is_said_so_and_trained_once(
        model, sum_task, tmp_path, monkeypatch):
    """With --rerank 0 and trial 0 (the default) the best proxy trial, final.json said is_default false, the
    same configuration trained twice (final/best and final/default) and the report blamed the proxy."""
    from artstudio.tune import study as study_module

    space = tmp_path / "space.yaml"
    space.write_text("lr: [0.05, 0.00001]\ncanvas_size: null\nbatch_size: null\ninit: null\ntv_weight: null\n"
                     "parametrization: null\nschedule: null\n")  # trial 1 barely moves: trial 0 is best or ties
    ran = []
    monkeypatch.setattr(study_module, "_final_run",
                        lambda tc, guard, progress, what=None: ran.append(Path(tc.out).name) or
                        {"accuracy": 0.5, "eval_n": 4, "steps": 2, "train_seconds": 1.0})
    result = tune(method="art", data=str(sum_task), model=model, trials=2, sampler="random", startup=2,
                  space=str(space), proxy=0.5, val_fraction=0.2, steps=2, trial_steps=1, rerank=0,
                  out=str(tmp_path / "tune"))
    assert result.chosen_trial == 0 and ran == ["default"]
    assert json.loads((tmp_path / "tune" / "final.json").read_text())["best"]["is_default"] is True
    # the report named final/best/, which a study whose default wins never writes
    assert "the study's own run of it is `final/default/`" in (tmp_path / "tune" / "report.md").read_text()


def test_artstudio_tune_is_callable_and_takes_a_dict_as_train_does(tmp_path):
    """`artstudio.tune` was no attribute of the package, and tune({...}) / compare({...}) failed with
    'asdict() should be called on dataclass instances' where train({...}) works."""
    import artstudio

    assert callable(artstudio.tune) and artstudio.TuneConfig is TuneConfig
    with pytest.raises(ConfigError, match="--method base trains nothing"):
        artstudio.tune({"method": "base", "data": "add-json"})
    with pytest.raises(ConfigError, match="unknown compare option.*bogus"):
        artstudio.compare({"methods": "art", "tasks": "add-json", "bogus": 1})
    with pytest.raises(ConfigError, match="tune\\(\\) takes a TuneConfig or a dict of its fields, not a TrainConfig"):
        artstudio.tune(artstudio.TrainConfig())


def test_rerank_says_nothing_when_its_pick_is_also_the_best_proxy_trial(tmp_path, monkeypatch, caplog):
    """Every trial tied on the proxy (progress: 'best 0.0% (trial 0)'); re-ranking kept the default and warned it
    was 'not the best proxy trial 1'."""
    import types

    from artstudio.tune import TuneConfig
    from artstudio.tune import study as study_module
    from artstudio.tune.space import load_space

    trials = [types.SimpleNamespace(number=n, value=0.0, params={"lr": lr, "batch_size": 16},
                                    user_attrs={"default": True} if n == 0 else {})
              for n, lr in enumerate([0.05, 0.2, 0.1])]
    splits = types.SimpleNamespace(fit_folder=tmp_path / "fit", val_file=tmp_path / "val.jsonl")
    monkeypatch.setattr(study_module, "_final_run",
                        lambda tc, guard, progress, what=None: {"accuracy": 1.0 if tc.lr == 0.05 else 0.5})
    with caplog.at_level("WARNING", logger="artstudio.tune"):
        chosen, _ = study_module._rerank(TuneConfig(method="art", data="sum", steps=30, rerank=2),
                                         load_space("art", _space_file(tmp_path)), trials, splits, tmp_path, None, None)
    assert chosen.number == 0 and "not the best proxy trial" not in caplog.text

