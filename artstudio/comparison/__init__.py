"""`artstudio compare`: every method × task × seed through the one training loop, then tables and plots.

    artstudio compare --methods art,lora,vera,adalink,soft-prompt,base,random-canvas \\
        --tasks heldout --seeds 0,1,2 --steps 100 --out runs/compare
    artstudio compare --tasks data/my-task --methods art,lora --lr-grid auto      # a user's task folder

    import artstudio
    table = artstudio.compare(methods="art,lora", tasks="add-json", seeds="0,1", steps=50)
    table.to_pandas()          # or iterate: for row in table: ...

Fairness (issue 5): every method sees the same data order (`train.batch_indices` is a function of
the seed alone), the same seed, number of steps, batch size and evaluation (`evaluate.evaluate` on
the task's test split). A method's learning rate is its documented default (`Method.lr_for`) or
is picked by `--lr-grid` on a validation split carved from the TRAINING rows (`data.split_validation`);
the test split is never read while choosing. After the choice, the cell trains on all training rows.

One backbone is loaded per comparison and lent to every cell. PEFT methods (LoRA, VeRA) inject
layers into the model they wrap, so after each cell the harness unloads such a wrapper and checks a
fingerprint of the backbone (module tree, hooks, train/eval flags, requires_grad, weight checksums);
if anything still differs, it reloads the backbone, so a cell can never change the next one's model.

The output folder holds `results.csv`, `results.json`, `results.md`, the plots
(`accuracy.png`, `accuracy_vs_params.png`, `loss_curves.png`, `cost.png`), the prepared task files
under `tasks/`, and one run folder per cell under `cells/<hash>/`. The hash covers everything that
decides a cell's result (method, options, task content, seed, steps, batch size, lr, objective,

The package reads as a recipe, one module per concern:

    config.py    CompareConfig and the parsing of its lists (methods, tasks, seeds, the lr grid)
    tasks.py     the tasks as the harness uses them (prepared once, content-hashed)
    harness.py   the plan of cells and the loop that trains and scores them
    worker.py    the entry point of each process of `--workers N`
    guard.py     one backbone lent to every cell, checked clean after each
    memory.py    peak memory of a block of code (CUDA allocator or process RSS)
    results.py   the table of records: aggregation, CSV / JSON / Markdown
    plots.py     the PNG plots
"""

from __future__ import annotations

from .config import CompareConfig, parse_list, parse_lr_grid, parse_seeds
from .guard import BackboneGuard
from .harness import compare
from .memory import PeakMemory
from .plots import write_plots
from .results import ResultsTable
from .tasks import TaskSpec, prepare_tasks

__all__ = ["CompareConfig", "ResultsTable", "compare", "PeakMemory", "BackboneGuard", "prepare_tasks", "TaskSpec",
           "parse_lr_grid", "parse_list", "parse_seeds", "write_plots"]
