"""The comparison harness: one row per method × task × seed, resume, an lr grid blind to the test split,
user task folders, the markdown table, the plots, and a backbone no cell can change for the next."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import logging

import pytest
import torch
from PIL import Image

import artstudio
import artstudio.comparison as C
from artstudio.comparison import harness
from artstudio.comparison.plots import PLOTS
from artstudio.backbone import load_backbone
from artstudio.data import Example, load_jsonl, write_jsonl
from artstudio.errors import ConfigError, DataError
from artstudio.methods import BaseMethod, build_method, get_method

FAMILY = "qwen3_5"
TRAIN = [Example(prompt=f"{a} {b}", answer=str(a + b), id=f"train-{i}")
         for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 3), (4, 4), (2, 5), (1, 1), (3, 3)])]
TEST = [Example(prompt=f"{a} {b}", answer=str(a + b), id=f"test-{i}") for i, (a, b) in enumerate([(2, 1), (4, 3), (5, 2)])]
OPTIONS = {"art": {"canvas_size": 64}}  # 4 visual tokens on the tiny qwen3_5: fast


def make_task(folder, card: bool = True, answers: list[str] | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", TRAIN)
    test = TEST if answers is None else [Example(e.prompt, a, e.id) for e, a in zip(TEST, answers)]
    write_jsonl(folder / "test.jsonl", test)
    if card:
        (folder / "card.json").write_text(json.dumps({"name": folder.name, "description": "add", "metric": "exact"}))
    return folder


def common(tmp_path, model: str, **kw) -> dict:
    return dict(model=model, steps=2, batch_size=2, method_options=OPTIONS, out=str(tmp_path / "results")) | kw


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return tiny_model_dir(FAMILY)


@pytest.fixture(scope="module")
def finished(model, tmp_path_factory):
    """One small comparison through the package-level API: 3 methods × 2 tasks × 2 seeds."""
    root = tmp_path_factory.mktemp("compare")
    tasks = [make_task(root / "sum-a"), make_task(root / "sum-b", card=False)]
    events: list[dict] = []
    table = artstudio.compare(methods=["art", "base", "random-canvas"], tasks=[str(t) for t in tasks], seeds="0,1",
                              progress=events.append, **common(root, model))
    return table, root / "results", events


def test_csv_has_one_row_per_method_task_seed(finished):
    table, out, _ = finished
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    required = {"method", "task", "seed", "accuracy", "trainable_params", "train_seconds", "seconds_per_step",
                "peak_memory_mb", "latency_ms"}
    assert required <= set(rows[0])
    assert len(rows) == len(table) == 3 * 2 * 2
    assert {(r["method"], r["task"], r["seed"]) for r in rows} == {
        (m, t, s) for m in ("art", "base", "random-canvas") for t in ("sum-a", "sum-b") for s in ("0", "1")}
    art = [r for r in rows if r["method"] == "art"]
    assert all(int(r["trainable_params"]) == 3 * 64 * 64 for r in art)
    assert all(float(r["peak_memory_mb"]) > 0 and float(r["latency_ms"]) > 0 for r in rows)
    assert all(int(r["trainable_params"]) == 0 and r["seconds_per_step"] == "" for r in rows if r["method"] != "art")


def test_records_carry_loss_curve_lr_and_timing(finished):
    table, out, events = finished
    data = json.loads((out / "results.json").read_text())
    art = [r for r in data["records"] if r["method"] == "art"]
    assert all(len(r["loss_curve"]) == 2 and r["lr"] == get_method("art").default_lr for r in art)
    assert all(r["lr_source"] == "default" and r["seconds_per_step"] > 0 for r in art)
    assert data["config"]["steps"] == 2 and data["backbone_reloads"] == 0
    # The UI's callback: an estimate first, then per-step and per-run events with done / total.
    assert events[0]["phase"] == "estimate" and events[0]["eta_seconds"] >= 0
    runs = [e for e in events if e["phase"] in ("test", "grid", "skip")]
    assert [e["done"] for e in runs] == list(range(1, len(runs) + 1)) and runs[-1]["total"] == len(runs)
    assert any(e["phase"] == "step" for e in events)


def test_seeds_change_training_not_the_seed_free_base(finished):
    table, _, _ = finished
    art = {r["seed"]: r["loss_curve"] for r in table.select(method="art", task="sum-a")}
    assert art[0] != art[1], "seeds must change data order / initialisation"
    base = table.select(method="base", task="sum-a").records
    assert base[0]["cell"] == base[1]["cell"], "base has no randomness: one evaluation serves every seed"


def test_user_task_folder_without_card_is_named_after_the_folder(finished):
    table, out, _ = finished
    assert table.tasks == ["sum-a", "sum-b"]
    assert json.loads((out / "results.json").read_text())["task_digests"]["sum-b"]


def test_outputs_markdown_and_plots(finished):
    table, out, _ = finished
    md = (out / "results.md").read_text()
    assert "| task | art | base | random-canvas |" in md and "| **mean** |" in md
    for name in PLOTS:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 200
    assert table.to_markdown() == md
    again = C.ResultsTable.from_json(out / "results.json")
    assert again.records == json.loads(json.dumps(table.records)) and again.methods == table.methods


def test_markdown_bolds_the_best_per_task_and_in_the_mean_row():
    recs = [{"method": m, "task": t, "seed": s, "accuracy": acc, "trainable_params": p, "lr": None}
            for m, p, accs in (("art", 10, {"x": (0.5, 0.7), "y": (0.2, 0.2)}), ("lora", 100, {"x": (0.4, 0.4), "y": (0.9, 0.8)}))
            for t, pair in accs.items() for s, acc in enumerate(pair)]
    md = C.ResultsTable(recs).to_markdown()
    assert "| x | **60.0 ± 14.1** | 40.0 ± 0.0 |" in md
    assert "| y | 20.0 ± 0.0 | **85.0 ± 7.1** |" in md
    assert "| **mean** | 40.0 ± 7.1 | **62.5 ± 3.5** |" in md
    # Worst cells, cells below 80 %, and the first method against the others task by task.
    assert "| art | 20.0 % (y, seed 0) | 4 of 4 | – |" in md
    assert "| lora | 40.0 % (x, seed 0) | 2 of 4 | 1 / 0 / 1 |" in md
    # a seed-free method ran one cell per task, which fills every seed's row: counted once, "all seeds"
    base = [{"method": "base", "task": t, "seed": s, "accuracy": 0.0, "trainable_params": 0, "lr": None, "cell": f"b-{t}"}
            for t in ("x", "y") for s in (0, 1)]
    md = C.ResultsTable(recs + base).to_markdown()
    assert "| base | 0.0 % (x, all seeds) | 2 of 2 | 2 / 0 / 0 |" in md
    assert md.startswith("Accuracy (%) on each task's test split, mean ± std")  # no rows, steps or batch recorded


def test_markdown_says_how_many_test_rows_and_which_recipe_scored_the_table():
    """results.md said "on each task's test split" where --eval-size had cut a 200-row split to 40."""
    rec = {"method": "art", "task": "x", "seed": 0, "accuracy": 0.5, "trainable_params": 1, "lr": 0.05,
           "eval_n": 40, "steps": 20, "batch_size": 8}
    base = dict(rec, method="base", steps=0, lr=None)
    assert C.ResultsTable([rec, base]).to_markdown().startswith(
        "Accuracy (%) on each task's test split (40 test rows per task; 20 steps at batch 8), seed 0 only")
    mixed = [rec, dict(rec, task="y", eval_n=200)]
    assert "(40–200 test rows per task, eval_n in results.csv; 20 steps at batch 8)" in C.ResultsTable(mixed).to_markdown()
    # A table left by Ctrl-C (or written while cells run) looked finished, its means over different cells.
    partial = C.ResultsTable([rec, base], meta={"planned_rows": 4}).to_markdown()
    assert partial.startswith("**Partial: 2 of 4 runs finished**")
    assert not C.ResultsTable([rec, base], meta={"planned_rows": 2}).to_markdown().startswith("**Partial")


def test_resume_skips_finished_cells(model, tmp_path, monkeypatch):
    task = make_task(tmp_path / "t")
    calls: list[str] = []
    real = harness.train
    monkeypatch.setattr(harness, "train", lambda cfg, **kw: calls.append(cfg.method) or real(cfg, **kw))
    kw = common(tmp_path, model, methods="art,base", tasks=str(task))
    first = C.compare(seeds="0", **kw)
    assert sorted(calls) == ["art", "base"]
    calls.clear()
    again = C.compare(seeds="0", **kw)
    assert calls == [] and again.records == first.records
    # One more seed: only ART trains again (base is seed-free); an interrupted cell re-runs.
    C.compare(seeds="0,1", **kw)
    assert calls == ["art"]
    calls.clear()
    cell = next(r["cell"] for r in first if r["method"] == "art")
    (tmp_path / "results" / "cells" / cell / "cell.json").unlink()
    table = C.compare(seeds="0,1", **kw)
    assert calls == ["art"] and len(table) == 4


def test_stop_keeps_finished_cells_and_resumes(model, tmp_path):
    task = make_task(tmp_path / "t")
    kw = common(tmp_path, model, methods="base,art", tasks=str(task), seeds="0")
    asked = iter([False] * 2 + [True] * 100)  # stop during ART's first cell
    partial = C.compare(should_stop=lambda: next(asked), **kw)
    assert [r["method"] for r in partial] == ["base"] and partial.meta["stopped"]
    assert len(C.compare(**kw)) == 2


def test_lr_grid_never_reads_the_test_split(model, tmp_path, monkeypatch):
    task = make_task(tmp_path / "t")
    evaluate_module = importlib.import_module("artstudio.evaluation")
    real = evaluate_module.evaluate
    seen: list[set[str]] = []
    monkeypatch.setattr(evaluate_module, "evaluate", lambda method, rows, *a, **k: seen.append({e.id for e in rows}) or real(method, rows, *a, **k))
    kw = common(tmp_path, model, methods="art", tasks=str(task), seeds="0", lr_grid="art=0.01,0.3", val_fraction=0.3)
    table = C.compare(**kw)
    train_ids, test_ids = {e.id for e in TRAIN}, {e.id for e in TEST}
    pick = table.meta["lr_selection"]["art"]["t"]
    assert set(pick["val_ids"]) <= train_ids and len(pick["val_ids"]) == 3
    assert [ids for ids in seen if ids == set(pick["val_ids"])] == [set(pick["val_ids"])] * 2, "one score per lr"
    assert all(ids <= train_ids for ids in seen[:-1]), "nothing before the final evaluation reads test rows"
    assert seen[-1] == test_ids, "the test split is read once, by the final evaluation"
    assert table[0]["lr"] == pick["lr"] and table[0]["lr_source"] == "grid"
    seen.clear()
    assert C.compare(**kw).records == table.records and seen == [], "a finished grid and cell are not re-run"
    # Poisoned test answers change nothing about the choice.
    poisoned = make_task(tmp_path / "p", answers=["wrong"] * len(TEST))
    (tmp_path / "p" / "card.json").write_text(json.dumps({"name": "t", "metric": "exact"}))
    again = C.compare(**(kw | {"tasks": str(poisoned), "out": str(tmp_path / "poisoned")}))
    assert again.meta["lr_selection"]["art"]["t"]["lr"] == pick["lr"]
    assert again.meta["lr_selection"]["art"]["t"]["candidates"] == pick["candidates"]


def test_grid_seeds_average_the_pick_over_seeds_and_their_own_splits(model, tmp_path, monkeypatch):
    """--grid-seeds 2: the grid runs on seeds 0 and 1, each with its own validation rows (carved from the
    training rows), and the rate picked is the one with the best mean; seed 0's grid runs are reused."""
    task = make_task(tmp_path / "t")
    kw = common(tmp_path, model, methods="art", tasks=str(task), seeds="0,1", lr_grid="art=0.01,0.3", val_fraction=0.3)
    one = C.compare(**kw)
    ran: list[tuple] = []
    real = harness._run_cell
    monkeypatch.setattr(harness, "_run_cell", lambda config, cell, *a: ran.append((cell.phase, cell.seed, cell.lr)) or real(config, cell, *a))
    table = C.compare(**(kw | {"grid_seeds": 2, "overwrite": True}))
    assert sorted(r for r in ran if r[0] == "grid") == [("grid", 1, 0.01), ("grid", 1, 0.3)], "seed 0's grid is reused"
    pick = table.meta["lr_selection"]["art"]["t"]
    assert pick["grid_seeds"] == [0, 1]
    splits = [set(pick["val_ids_by_seed"][s]) for s in (0, 1)]
    train_ids = {e.id for e in TRAIN}
    assert all(ids <= train_ids and len(ids) == 3 for ids in splits) and splits[0] != splits[1]
    assert splits[0] == set(one.meta["lr_selection"]["art"]["t"]["val_ids"])
    for lr, score in pick["candidates"].items():
        assert score["val_accuracy"] == pytest.approx(sum(score["by_seed"].values()) / 2)
    best = max(pick["candidates"].values(), key=lambda c: (c["val_accuracy"], -c["val_loss"]))
    assert pick["candidates"][pick["lr"]] is best
    assert {r["lr"] for r in table} == {pick["lr"]} and {r["lr_source"] for r in table} == {"grid"}


def test_grid_seeds_are_checked(model, tmp_path):
    kw = common(tmp_path, model, methods="art", tasks=str(make_task(tmp_path / "t")), seeds="0,1")
    with pytest.raises(ConfigError, match="--grid-seeds is 3 but --seeds names 2 seeds"):
        C.compare(**kw, lr_grid="auto", grid_seeds=3)
    with pytest.raises(ConfigError, match="--grid-seeds is 0; expected a whole number"):
        C.compare(**kw, lr_grid="auto", grid_seeds=0)
    with pytest.raises(ConfigError, match="no grid runs: add --lr-grid"):
        C.compare(**kw, grid_seeds=2)
    assert not (tmp_path / "results").exists()


def test_a_cell_records_the_run_diagnosis(model, tmp_path, monkeypatch):
    """A cell that cannot fit its training rows says so in its record (the stuck level raised, so the tiny
    model's flat loss counts as a fit problem); the lr grid's runs, which only rank rates, never check."""
    monkeypatch.setattr("artstudio.diagnosis.STUCK_LOSS", 100.0)
    task = make_task(tmp_path / "t")
    table = C.compare(**common(tmp_path, model, methods="art", tasks=str(task), seeds="0", steps=20,
                               lr_grid="art=1e-9,2e-9", val_fraction=0.3))
    (record,) = table.records
    assert record["diagnosis"] == "cannot-fit" and 0 <= record["train_accuracy"] < 0.9
    assert f"| art | t | 0 | cannot-fit | {100 * record['train_accuracy']:.0f} % |" in table.to_markdown()
    grid = [json.loads(p.read_text()) for p in (tmp_path / "results" / "grid").glob("*/cell.json")]
    assert len(grid) == 2 and all(g["phase"] == "grid" and "diagnosis" not in g for g in grid)


def test_lr_grid_parsing():
    assert C.parse_lr_grid(None, ["art"]) == {}
    auto = C.parse_lr_grid("auto", ["art", "base", "random-canvas"])
    assert list(auto) == ["art"] and len(auto["art"]) == 3 and 0.05 in auto["art"]
    assert C.parse_lr_grid("art=0.02, 0.05", ["art"]) == {"art": [0.02, 0.05]}
    for bad, match in (("lora=1e-3", "not in --methods"), ("art=fast", "not a number"), ("art", "no '='"),
                       ("base=0.1", "trains nothing"), ("art=-1", "positive")):
        with pytest.raises(ConfigError, match=match):
            C.parse_lr_grid(bad, ["art", "base"])


def test_lr_grid_refuses_a_method_named_twice():
    """'art=0.02;art=0.05' silently kept only the last entry."""
    with pytest.raises(ConfigError, match="--lr-grid names method 'art' twice.*'art=0.02,0.05'"):
        C.parse_lr_grid("art=0.02;art=0.05", ["art"])
    with pytest.raises(ConfigError, match="'art' twice"):
        C.parse_lr_grid("art=0.02; art =0.05", ["art"])
    with pytest.raises(ConfigError, match="lr grid for 'art' gives 0.02 twice"):  # it ran one value, no search
        C.parse_lr_grid("art=0.02,0.02", ["art"])


def test_seeds_are_parsed_and_a_repeated_seed_is_refused():
    """`--seeds 0,0` ran one seed and said nothing (a typo for '0,1')."""
    assert C.parse_seeds("0, 1,2") == [0, 1, 2] and C.parse_seeds(3) == [3] and C.parse_seeds([2, 0]) == [2, 0]
    for bad, match in (("0,0", "seed 0 is given twice"), ("1,01", "seed 1 is given twice"),
                       ("a,b", "integers separated by commas"), (" , ", "no seeds given"),
                       ("0,,1", "has an empty item"), ("0,", "has an empty item")):  # they ran 0,1 and 0 silently
        with pytest.raises(ConfigError, match=match):
            C.parse_seeds(bad)


def test_a_mistyped_task_leaves_no_output_folder(tmp_path):
    """`--tasks max-brackt --out runs/c3` refused the task but left an empty runs/c3 behind."""
    with pytest.raises(DataError, match="'max-brackt' is neither a folder nor a built-in task"):
        C.compare(methods="art", tasks="max-brackt", out=str(tmp_path / "runs" / "c3"))
    (tmp_path / "only-train").mkdir()
    write_jsonl(tmp_path / "only-train" / "train.jsonl", TRAIN)
    with pytest.raises(DataError, match="no test.jsonl"):
        C.compare(methods="art", tasks=str(tmp_path / "only-train"), out=str(tmp_path / "runs" / "c4"))
    assert not (tmp_path / "runs").exists()


def test_bad_input_is_named(model, tmp_path):
    with pytest.raises(ConfigError, match="unknown or unavailable method"):
        C.compare(**common(tmp_path, model, methods="art,nope", tasks=str(tmp_path)))
    with pytest.raises(DataError, match="no test.jsonl"):
        (tmp_path / "only-train").mkdir()
        write_jsonl(tmp_path / "only-train" / "train.jsonl", TRAIN)
        C.compare(**common(tmp_path, model, methods="art", tasks=str(tmp_path / "only-train")))
    with pytest.raises(DataError, match="neither a folder nor a built-in task"):
        C.compare(**common(tmp_path, model, methods="art", tasks="no-such-task"))
    with pytest.raises(ConfigError, match="unknown compare option"):
        C.compare(methods="art", stepz=3)


def test_a_refused_comparison_leaves_no_folder(model, tmp_path):
    """A canvas size the model cannot take, a bad dtype or a zero validation share left compare_config.json
    and tasks/ behind; options for a method that does not run were ignored."""
    write_jsonl(tmp_path / "t" / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "t" / "test.jsonl", TEST)
    run = dict(common(tmp_path, model, methods="art,lora", tasks=str(tmp_path / "t")), out=str(tmp_path / "o"))
    for bad, message in [(dict(method_options={"art": {"canvas_size": 95}}), "does not fit this model"),
                         (dict(method_options={"vera": {"d_initiall": 0.1}}), "unknown option.*d_initiall"),
                         (dict(method_options={"lora": {"zz": 1}}), "unknown option.*zz"),
                         (dict(lr_grid="auto", val_fraction=0.0), "--val-fraction is 0.0"),
                         (dict(dtype="fp8"), "is not a dtype"), (dict(device="tpu"), "is not a device")]:
        with pytest.raises(artstudio.ArtStudioError, match=message):
            C.compare(**(run | bad))
        assert not (tmp_path / "o").exists(), bad


def test_a_folder_of_ones_own_is_not_mixed_with_a_comparison_and_a_refused_recipe_is_not_recorded(model, tmp_path):
    """compare --out into a folder holding a.txt wrote its table beside it; an --overwrite whose options were then
    refused (--starts 0) had already recorded them in compare_config.json over the table's own recipe."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"mine holds files that are not a comparison \(a.txt\)"):
        C.compare(**common(tmp_path, model, methods="base", tasks="max-bracket", seeds="0", eval_size=2, out=str(mine)))
    assert [p.name for p in mine.iterdir()] == ["a.txt"]
    out = tmp_path / "results"
    C.compare(**common(tmp_path, model, methods="base", tasks="max-bracket", seeds="0", eval_size=2))
    recorded = (out / "compare_config.json").read_text()
    with pytest.raises(ConfigError, match=r"canvas option starts \(--starts\) is 0; expected 1 or more"):
        C.compare(**common(tmp_path, model, methods="art", tasks="max-bracket", seeds="0", eval_size=2, overwrite=True,
                           method_options={"art": {"canvas_size": 64, "starts": 0}}))
    assert (out / "compare_config.json").read_text() == recorded


def test_builtin_tasks_and_eval_size(tmp_path):
    tasks = C.prepare_tasks("add-json,max-bracket", tmp_path, eval_size=5)
    assert [t.name for t in tasks] == ["add-json", "max-bracket"]
    assert len(tasks[0].eval_file.read_text().splitlines()) == 5 and tasks[0].card["metric"] == "json"
    assert (tmp_path / "tasks" / "add-json" / "train.jsonl").exists()
    assert C.prepare_tasks("add-json", tmp_path)[0].digest != tasks[0].digest, "the scored rows are part of the key"
    assert len(C.prepare_tasks("heldout", tmp_path / "all")) == 13


def test_tasks_that_share_a_name_are_each_scored_on_their_own_rows(tmp_path, caplog):
    """Two folders whose cards share a name wrote their first --eval-size test rows to one file, so one task
    was scored on the other's rows; a task listed twice ran twice under two names."""
    for folder, answer in (("a", "x"), ("b", "y")):
        write_jsonl(tmp_path / folder / "train.jsonl", TRAIN)
        write_jsonl(tmp_path / folder / "test.jsonl", [Example(f"q{i}", answer) for i in range(4)])
        (tmp_path / folder / "card.json").write_text(json.dumps({"name": "same", "metric": "exact"}))
    tasks = C.prepare_tasks(f"{tmp_path / 'a'},{tmp_path / 'b'}", tmp_path / "out", eval_size=3)
    assert [t.name for t in tasks] == ["same", "same-1"]
    assert [{e.answer for e in load_jsonl(t.eval_file)} for t in tasks] == [{"x"}, {"y"}]
    with caplog.at_level(logging.WARNING, logger="artstudio.compare"):
        twice = C.prepare_tasks(f"{tmp_path / 'a'},{tmp_path}/./a,add-json,add-json", tmp_path / "out2")
    assert [t.name for t in twice] == ["same", "add-json"]
    assert "listed twice" in caplog.text


def test_test_rows_repeating_training_prompts_are_said_once_per_task_not_per_cell(model, tmp_path, caplog):
    task = make_task(tmp_path / "seen")
    write_jsonl(task / "test.jsonl", TRAIN[:2] + TEST[:1])  # two of the three test prompts are training prompts
    with caplog.at_level(logging.WARNING, logger="artstudio"):
        C.compare(methods="art", tasks=str(task), seeds="0,1", **common(tmp_path, model))
    said = [r.getMessage() for r in caplog.records if "ask a prompt that is also in the training rows" in r.getMessage()]
    assert said == ["2 of the 3 test rows in task seen ask a prompt that is also in the training rows; their score "
                    "counts what the run memorised, not only what it learnt (leave them out of the test rows for a "
                    "held-out score)"]


def test_peak_memory_sees_an_allocation():
    with C.PeakMemory("cpu") as meter:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert meter.delta_mb > 48 and meter.peak_mb >= meter.start_mb + meter.delta_mb - 1


class _Contaminating(BaseMethod):
    """A badly behaved method: leaves a hook and a changed weight in the backbone it was lent."""

    name = "contaminating"

    def __init__(self, backbone, config=None):
        super().__init__(backbone, config)
        emb = backbone.input_embeddings()
        emb.register_forward_hook(lambda m, i, o: o * 1.5)
        with torch.no_grad():
            emb.weight[0] += 1.0


def _logits(backbone) -> torch.Tensor:
    method = build_method("base", backbone)
    with torch.no_grad():
        from artstudio.forward import token_logprobs

        return token_logprobs(method, TRAIN[:3])[0]


def test_guard_reloads_a_contaminated_backbone(model):
    guard = C.BackboneGuard(lambda: load_backbone(model))
    before = _logits(guard.backbone)
    _Contaminating(guard.backbone)
    assert not torch.equal(_logits(guard.backbone), before)
    guard.release(None)
    assert guard.reloads == 1 and guard.clean()
    assert torch.equal(_logits(guard.backbone), before)


def test_guard_unloads_a_peft_wrapper_without_reloading(model):
    from peft import LoraConfig, get_peft_model

    guard = C.BackboneGuard(lambda: load_backbone(model))
    before = _logits(guard.backbone)

    class PeftLike:  # what a LoRA method exposes: `.model` is the PEFT wrapper around the backbone
        model = get_peft_model(guard.backbone.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))

    assert not guard.clean()
    guard.release(PeftLike)
    assert guard.reloads == 0 and guard.clean()
    assert torch.equal(_logits(guard.backbone), before)


@pytest.mark.slow
@pytest.mark.skipif("lora" not in artstudio.methods.method_names(), reason="the LoRA baseline is not installed")
def test_base_is_unchanged_by_a_lora_cell(model, tmp_path):
    task = make_task(tmp_path / "t")
    alone = C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0", out=str(tmp_path / "a")))
    after = C.compare(**common(tmp_path, model, methods="lora,base", tasks=str(task), seeds="0",
                               lr_grid="lora=0.5", out=str(tmp_path / "b")))
    preds = [(tmp_path / d / "cells" / t.select(method="base")[0]["cell"] / "run" / "eval" / "predictions.jsonl").read_text()
             for d, t in (("a", alone), ("b", after))]
    assert preds[0] == preds[1]


def test_compare_grpo_from_the_command_line(model, tmp_path):
    """`artstudio compare --objective grpo` takes train's --grpo-* options and GRPO's default learning rates."""
    from artstudio.cli import main
    from artstudio.training import default_lr

    task = make_task(tmp_path / "sum")
    out = tmp_path / "results"
    argv = ["compare", "--model", model, "--methods", "art,lora,base", "--tasks", str(task), "--seeds", "0",
            "--steps", "1", "--batch-size", "2", "--objective", "grpo", "--grpo-group-size", "2",
            "--grpo-reward", "numeric", "--method-options", json.dumps(OPTIONS), "--out", str(out)]
    assert main(argv) == 0
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert rows["art"]["objective"] == "grpo" and rows["art"]["lr"] == pytest.approx(default_lr("art", "grpo"))
    assert rows["lora"]["lr"] == pytest.approx(default_lr("lora", "grpo"))
    run_config = json.loads(next((out / "cells").glob("*/run/config.json")).read_text())
    assert run_config["grpo"] == {"group_size": 2, "reward": "numeric"}
    # Its loss is a surrogate near 0: the plot of the steps draws each method's mean sampled reward instead.
    assert len(rows["art"]["reward_curve"]) == 1 and 0.0 <= rows["art"]["reward_curve"][0] <= 1.0
    from artstudio.comparison.plots import _plot_losses
    from artstudio.comparison.results import ResultsTable
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = _plot_losses(plt, ResultsTable.from_json(out / "results.json"))
    assert fig._suptitle.get_text().startswith("Mean reward of the sampled completions per step")
    plt.close(fig)
    with pytest.raises(ConfigError, match="objective is sft"):
        C.compare(**common(tmp_path, model, methods="art", tasks=str(task), grpo={"group_size": 2}))
    with pytest.raises(ConfigError, match="unknown GRPO option"):
        C.compare(**common(tmp_path, model, methods="art", tasks=str(task), objective="grpo", grpo={"groups": 2}))


def test_time_left_follows_the_measured_speed(model, tmp_path, monkeypatch):
    """A slow probe overestimates; after the first cell the estimate uses the speed that cell measured."""
    monkeypatch.setattr(harness, "_probe", lambda *a, **k: (100.0, 0.0))
    events: list[dict] = []
    C.compare(progress=events.append, **common(tmp_path, model, methods="art", tasks=str(make_task(tmp_path / "t")),
                                                seeds="0,1"))
    assert events[0]["phase"] == "estimate" and events[0]["eta_seconds"] == pytest.approx(400.0)
    done = [e for e in events if e["phase"] == "test"]
    assert len(done) == 2 and done[0]["eta_seconds"] < 50 and done[1]["eta_seconds"] == 0


@pytest.mark.slow
def test_workers_share_the_cells_and_the_folder(model, tmp_path, monkeypatch, capfd):
    """--workers 2: two processes split the cells (grids first, then test runs) in one results folder;
    the caller then finds every cell finished and writes the table, as a one-process run would."""
    tasks = [make_task(tmp_path / "a"), make_task(tmp_path / "b")]
    kw = common(tmp_path, model, methods="art,base", tasks=",".join(str(t) for t in tasks), seeds="0,1",
                lr_grid="art=0.01,0.3", val_fraction=0.3)
    capfd.readouterr()
    table = C.compare(workers=2, **kw)
    said = capfd.readouterr().err
    # the pass collecting the workers' runs says nothing: it used to announce "0 to do" and count each run again
    assert "compare · 2 workers" in said and "0 to do" not in said and "compare: 1/10" not in said, said
    assert len(table) == 8 and {r["lr_source"] for r in table if r["method"] == "art"} == {"grid"}
    logs = [(tmp_path / "results" / "workers" / f"worker-{k}.log").read_text() for k in range(2)]
    assert all("worker" in log for log in logs)
    assert not any("RuntimeWarning" in log for log in logs), logs  # runpy's "found in sys.modules" began each log
    assert not any("Loading weights" in log or "\r" in log for log in logs), logs  # transformers' redrawn bar
    # Workers take cells as they free up (4 grid runs, 4 ART test runs, 2 seed-free base runs): each
    # settles the whole plan, and the launch's claims are cleared at the end.
    assert all("10/10 runs" in log for log in logs)
    assert not list((tmp_path / "results" / "workers").glob("claims-*"))
    assert table.meta["elapsed_seconds"] > 5  # the workers' time, not only the final table's
    # Every cell is on disk: a one-process run with the same folder trains nothing.
    calls: list[str] = []
    real = harness.train
    monkeypatch.setattr(harness, "train", lambda cfg, **k: calls.append(cfg.method) or real(cfg, **k))
    assert C.compare(**kw).records == table.records and calls == []
    # ... and a finished comparison re-run with workers starts none.
    (tmp_path / "results" / "workers" / "worker-0.log").unlink()
    assert C.compare(workers=2, **kw).records == table.records and calls == []
    assert not (tmp_path / "results" / "workers" / "worker-0.log").exists()
    with pytest.raises(ConfigError, match="--workers"):
        C.compare(workers=0, **kw)


def test_progress_counts_only_the_runs_of_the_plan_on_disk(model, tmp_path):
    """`compare --workers` counted every cell.json in the folder: resumed with a changed recipe it printed
    "243/156 runs". The count is the plan's runs on disk; a test run waiting on its grid is not counted."""
    task = str(make_task(tmp_path / "t"))
    C.compare(**common(tmp_path, model, methods="art", tasks=task, seeds="0", lr_grid="art=0.01,0.3", val_fraction=0.3))
    assert len(list((tmp_path / "results").glob("*/*/cell.json"))) == 3  # two grid runs, one test run
    grown = C.CompareConfig(**common(tmp_path, model, methods="art", tasks=task, seeds="0",
                                     lr_grid="art=0.01,0.03,0.3", val_fraction=0.3, overwrite=True))
    plan = harness._Comparison(grown, None, None)
    assert len(plan.grid_plan()) + len(plan.test_cells()) == 4
    assert plan.finished_count() == 2  # the two grid runs it shares; its test run waits on the third rate


def test_a_worker_skips_the_cells_another_worker_has_claimed(model, tmp_path):
    """--workers: a cell claimed by one worker is never run by another (no run twice, none lost)."""
    config = C.CompareConfig(**common(tmp_path, model, methods="art,base", tasks=str(make_task(tmp_path / "t")),
                                      seeds="0"))
    plan = harness._Comparison(config, None, None)
    cells = plan.test_cells()
    art = next(c for c in cells.values() if c.method == "art")
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / art.key(config)).touch()  # another worker has it
    harness._Comparison(config, None, None).run_share(0, 2, claims)
    done = {c.method: (harness._cell_dir(config, c) / "cell.json").is_file() for c in cells.values()}
    assert done == {"art": False, "base": True}
    assert sorted(p.name for p in claims.iterdir()) == sorted(c.key(config) for c in cells.values())


def test_a_stopped_worker_says_so_in_one_line(model, tmp_path, monkeypatch, capsys):
    """A worker's log ended in a Terminated traceback after the comparison's Ctrl-C."""
    from artstudio.comparison import worker
    from artstudio.errors import Terminated

    spec = tmp_path / "config.json"
    spec.write_text(json.dumps(common(tmp_path, model, methods="base", tasks=str(make_task(tmp_path / "t")), seeds="0")))
    for stop, status in ((Terminated, 143), (KeyboardInterrupt, 130)):
        def run_share(self, *args, stop=stop):
            raise stop
        monkeypatch.setattr(harness._Comparison, "run_share", run_share)
        assert worker.main([str(spec), "1", "2", str(tmp_path / "claims")]) == status
        err = capsys.readouterr().err  # (the shared options' warning may come first, where logging prints it)
        assert err.endswith("worker 1 stopped; its finished cells are kept\n") and "Traceback" not in err


def test_the_start_announcement_reads_well_for_a_tiny_plan(capsys):
    """It said `1 methods × 1 tasks × 1 seeds = 1 runs ...; estimated 0 min 00 s here`."""
    events = []
    plan = object.__new__(harness._Comparison)
    plan.methods, plan.tasks, plan.seeds, plan.remaining = ["art"], ["t"], [0], 12.0
    plan.bar = type("Bar", (), {"emit": staticmethod(events.append)})()
    plan._announce(1, 0, 0, (0.0, 0.0))
    msg = capsys.readouterr().err
    assert "compare: 1 method × 1 task × 1 seed = 1 run, 0 to do; estimated under a minute here" in msg
    plan.methods, plan.tasks, plan.seeds, plan.remaining = ["art", "base"], ["t", "u"], [0, 1], 125.0
    plan._announce(8, 2, 0, (0.0, 0.0))
    assert "2 methods × 2 tasks × 2 seeds = 8 runs + 2 lr-grid runs, 0 to do; estimated 2 min 05 s" in capsys.readouterr().err
    assert events[0]["message"] in msg
    # base runs once per task ("2 × 2 × 2 = 6 runs" did not add up); with nothing that trains, no step is timed.
    plan._announce(6, 0, 0, (0.0, 0.0))
    assert "= 6 runs (a method that trains nothing runs once per task), 0 to do" in capsys.readouterr().err
    plan.methods, plan.config = ["base", "t2c"], type("Config", (), {"batch_size": 8})()
    plan._announce(2, 0, 2, (1.93, 0.05))
    said = capsys.readouterr().err
    assert "(probe: 50 ms per scored example)" in said and "training step" not in said


def test_an_out_folder_holds_one_kind_of_result(model, tmp_path):
    """compare and tune wrote into a training run's folder, and train into a comparison's, mixing their files."""
    from artstudio.training import TrainConfig, train
    from artstudio.tune import tune

    write_jsonl(tmp_path / "t" / "train.jsonl", TRAIN)
    write_jsonl(tmp_path / "t" / "test.jsonl", TEST)
    comparison = tmp_path / "comparison"
    comparison.mkdir()
    (comparison / "compare_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds a comparison \\(compare_config.json\\), not a run"):
        train(TrainConfig(data=str(tmp_path / "t"), out=str(comparison), model=model, steps=1), progress=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds a run \\(config.json\\), not a comparison"):
        C.compare(**dict(common(tmp_path, model, methods="art", tasks=str(tmp_path / "t")), out=str(run)))
    with pytest.raises(ConfigError, match="holds a run \\(config.json\\), not a tuning study"):
        tune(method="lora", data=str(tmp_path / "t"), model=model, trials=1, out=str(run))
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    # train wrote a run into an evaluation's folder, a run's final/ and a task's data folder without a word
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "predictions.jsonl").write_text("")
    (tmp_path / "fin").mkdir()
    (tmp_path / "fin" / "method.json").write_text("{}")
    for folder, what in (("ev", "an evaluation"), ("fin", "a run's saved method"), ("t", "a task's data")):
        with pytest.raises(ConfigError, match=f"--out .*{folder} holds {what} .*, not a run; their files would mix"):
            train(TrainConfig(data=str(tmp_path / "t"), out=str(tmp_path / folder), model=model, steps=1), progress=False)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["test.jsonl", "train.jsonl"]


def test_a_rerun_with_other_options_is_refused_unless_overwrite(model, tmp_path, caplog):
    """A rerun into the same --out with other --steps silently replaced the earlier table."""
    import logging

    task = make_task(tmp_path / "t")
    C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0"))
    table = (tmp_path / "results" / "results.csv").read_bytes()
    with caplog.at_level(logging.WARNING, logger="artstudio.compare"):
        C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0"))
    assert "other options" not in caplog.text  # the same comparison: a resume, nothing to say
    with pytest.raises(ConfigError, match=r"holds a comparison with another recipe: --steps 3 \(it has 2\).*--overwrite"):
        C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0", steps=3))
    assert (tmp_path / "results" / "results.csv").read_bytes() == table
    with pytest.raises(ConfigError, match=r"--lr-grid 'auto' \(it has none\)"):  # it printed None
        C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0", lr_grid="auto"))
    with caplog.at_level(logging.WARNING, logger="artstudio.compare"):
        C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0", steps=3, overwrite=True))
    assert "held a comparison with other options (--steps 3 (it has 2))" in caplog.text
    # More methods grow the table; leaving one out again would rewrite it without that one (it did, with a warning)
    grown = common(tmp_path, model, methods="base,random-canvas", tasks=str(task), seeds="0", steps=3)
    C.compare(**grown)
    table = (tmp_path / "results" / "results.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"holds results for what this run leaves out \(--methods random-canvas\)"):
        C.compare(**common(tmp_path, model, methods="base", tasks=str(task), seeds="0", steps=3))
    assert (tmp_path / "results" / "results.csv").read_bytes() == table


def test_an_option_newer_than_the_folder_counts_as_its_default(model, tmp_path):
    """A folder from before --grid-seeds existed: asking for 3 grid seeds there is another recipe, refused."""
    from artstudio.comparison.harness import check_same_comparison

    record = tmp_path / "compare_config.json"
    config = C.CompareConfig(**common(tmp_path, model, methods="art", tasks="t", seeds="0,1,2", lr_grid="auto"))
    old = json.loads(json.dumps(dataclasses.asdict(config)))
    del old["grid_seeds"]
    record.write_text(json.dumps(old))
    check_same_comparison(record, config)  # the default: the same comparison, resumed
    with pytest.raises(ConfigError, match=r"another recipe: --grid-seeds 3 \(it has 1\)"):
        check_same_comparison(record, dataclasses.replace(config, grid_seeds=3))


def test_a_reward_file_keys_grpo_cells_by_its_code_and_a_task_folder_is_the_same_however_written(
        model, tmp_path, monkeypatch):
    """An edited reward file reused the cells its old code trained ("6 runs, 0 to do"), while the same file named by
    its absolute path was "another recipe"; './mine' after 'mine' was a task "left out"."""
    from artstudio.comparison.harness import check_same_comparison

    monkeypatch.chdir(tmp_path)
    task = make_task(tmp_path / "mine")
    (tmp_path / "myrew.py").write_text("def bracket(prompt, completion, answer):\n    return float(completion == answer)\n")
    kw = common(tmp_path, model, methods="base", tasks="mine", seeds="0")
    config = C.CompareConfig(objective="grpo", grpo={"reward": "myrew.py:bracket", "group_size": 2}, **kw)
    (cell,) = harness._Comparison(config, None, None).test_cells().values()
    absolute = dataclasses.replace(config, grpo={"reward": f"{tmp_path / 'myrew.py'}:bracket", "group_size": 2})
    assert cell.key(absolute) == cell.key(config)
    record = tmp_path / "compare_config.json"
    record.write_text(json.dumps(dataclasses.asdict(config), default=str))
    check_same_comparison(record, absolute)  # the same recipe
    check_same_comparison(record, dataclasses.replace(absolute, tasks=f"./{task.name}"))  # the same task
    before = cell.key(config)
    (tmp_path / "myrew.py").write_text("def bracket(prompt, completion, answer):\n    return 0.5\n")
    assert cell.key(config) != before
    named = dataclasses.replace(config, grpo={"reward": "exact", "group_size": 2})  # a named reward: no file to read
    assert cell.key(named) == cell.key(dataclasses.replace(named, grpo={"reward": "exact", "group_size": 2}))


def test_the_shipped_model_keys_its_cells_by_name_not_by_folder(tmp_path, monkeypatch):
    """A cell's key held the model's folder: the same comparison from another checkout, or with the model named
    'studio-tiny' instead of left out, trained every cell again (a 3-hour comparison restarted from nothing)."""
    from artstudio.backbone import DEFAULT_MODEL

    task = make_task(tmp_path / "t")
    kw = dict(methods="base", tasks=str(task), seeds="0", eval_size=2, out=str(tmp_path / "results"))
    table = C.compare(model=DEFAULT_MODEL, **kw)
    cells = tmp_path / "results" / "cells"
    (first,) = cells.iterdir()
    calls: list = []
    monkeypatch.setattr(harness, "train", lambda cfg, **k: calls.append(cfg) or pytest.fail("trained again"))
    assert C.compare(model="studio-tiny", **kw).records == table.records and calls == []
    assert list(cells.iterdir()) == [first]
    # A folder whose cells were keyed by the model's folder (before this version) keeps them.
    config = C.CompareConfig(model=DEFAULT_MODEL, **kw)
    comparison = harness._Comparison(config, None, None)
    (cell,) = comparison.test_cells().values()
    assert cell.key(config) == first.name != cell.key(config, located=True)
    first.rename(cells / cell.key(config, located=True))
    assert C.compare(model=DEFAULT_MODEL, **kw).records == table.records and calls == []
    assert [p.name for p in cells.iterdir()] == [cell.key(config, located=True)]
