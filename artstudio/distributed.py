"""Data-parallel training over several processes, through accelerate's process state.

    torchrun --nproc_per_node 2 -m artstudio train --data add-json --out runs/dp        # one machine
    accelerate launch --num_processes 8 -m artstudio train --data add-json --out runs/dp
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_endpoint HOST:29500 -m artstudio train ...

A launcher (torchrun, `accelerate launch`, a cluster's) sets `WORLD_SIZE`/`RANK` for each process;
`Processes.from_env()` then starts accelerate's `PartialState` (gloo on CPU, NCCL on GPUs, one GPU
per process) and the training loop does the rest (`artstudio.training`):

- every process builds the same method from the same seed, so they start equal;
- each step's global batch (`--batch-size` rows per micro-batch, as on one process) is split by rows:
  process k takes rows k, k + N, ...; the objective scales its part so that the parts sum to the
  one-process loss (SFT: each part's answer tokens are divided by the whole batch's count), and the
  trainable parameters' gradients are summed over processes before clipping and the update, so every
  process takes the same step and the run equals one process's at the same global batch;
- only the main process writes: the run folder (lock, checks, `--overwrite`), `config.json` (which
  records the number of processes), metrics, checkpoints, snapshots, the final method, the
  evaluation and the artwork. `--resume` reads the checkpoint in every process.

With `--fsdp` (or `accelerate launch --config_file examples/fsdp.yaml`, which sets
`ACCELERATE_USE_FSDP`) the frozen backbone's blocks are also sharded over the processes with FSDP2
(`Processes.shard_frozen`); the trainable parameters stay whole and replicated. Every process then
takes part in every forward, so evaluation runs in every process (the main one writes it), and the
shared prefix is off: the rows' backward reaches the prefix's cached keys and values inside each
block, a path FSDP's hooks do not see, so a block's weights would be freed before that backward.

Without a launcher (no `WORLD_SIZE`, or 1) nothing here is imported beyond this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


def fsdp_from_launcher() -> bool:
    """`accelerate launch` with an FSDP configuration asks for a sharded backbone."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")


def launcher_asked_for_more(ppid: int | None = None) -> int | None:
    """The processes `accelerate launch --num_processes N` was asked for when it started only this one.

    Without GPUs and without --multi_gpu (or a config file naming a multi-process type), accelerate
    runs the command once, in one process, and says nothing; a run then looked data-parallel and was
    not. Read from the launcher's own command line (Linux /proc); None when it cannot tell or all is well."""
    if "ACCELERATE_MIXED_PRECISION" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    try:
        argv = open(f"/proc/{ppid or os.getppid()}/cmdline", "rb").read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--num_processes=") else (
            argv[i + 1] if arg == "--num_processes" and i + 1 < len(argv) else None)
        if value is not None and value.isdigit() and int(value) > 1:
            return int(value)
    return None


def end_processes() -> None:
    """Leave the process group at the end of a command that succeeded in every process.

    Without this, gloo's worker threads outlive the interpreter and a process can die with
    "terminate called without an active exception" (SIGABRT) after its work is done. Not called after
    an error: a process that failed alone would wait here for the others forever.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@dataclass
class Processes:
    """Where this process stands among the run's processes (one, unless a launcher started several)."""

    rank: int = 0
    world: int = 1
    device: str | None = None  # the device a launcher gave this process (its own GPU), if any

    @classmethod
    def from_env(cls) -> "Processes":
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        # Without an accelerator accelerate only forms a CPU group when told to (gloo, or MPI where built in).
        state = PartialState(cpu=not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU") == "true")
        device = str(state.device) if state.device.type != "cpu" else "cpu"
        return cls(rank=state.process_index, world=state.num_processes, device=device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: list) -> list:
        """This process's rows of a global batch: rows rank, rank + world, ..."""
        return rows[self.rank::self.world]

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Sum the parameters' gradients over processes, in one collective (missing ones count as zero)."""
        if self.world == 1 or not params:
            return
        import torch.distributed as dist

        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        start = 0
        for p in params:
            n = p.numel()
            p.grad = flat[start:start + n].view_as(p).clone()
            start += n

    def sum(self, value: float) -> float:
        """A number summed over processes (each process's share of the loss, a skip flag)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def broadcast(self, obj: Any) -> Any:
        """The main process's `obj`, in every process."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._collective_device())
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def shard_frozen(self, model: torch.nn.Module, keep: list[torch.nn.Parameter]) -> int:
        """Shard the frozen model's blocks over the processes with FSDP2 (`fully_shard`); returns how many.

        Each block that transformers keeps whole (`_no_split_modules`: decoder layers, vision blocks)
        holds 1/N of its weights in every process and gathers the rest for its forward and backward.
        Each tower that holds blocks (the language model, the vision tower) becomes a root for them,
        since the vision tower is called on its own for the canvas. Everything else (embeddings, norms,
        the merger) and every trainable parameter (`keep`: a canvas, adapters inside the blocks) stays
        whole in every process; the trainable ones' gradients are summed by `sum_gradients` as without
        FSDP. A model already sharded (a run's starts share one backbone) is left as it is.
        """
        if getattr(model, "_artstudio_fsdp", 0):
            return model._artstudio_fsdp
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from .errors import ConfigError

        kinds = set(getattr(model, "_no_split_modules", None) or [])
        named = [(n, m) for n, m in model.named_modules() if type(m).__name__ in kinds]
        if not named:
            raise ConfigError(f"{type(model).__name__} names no blocks to shard (transformers' _no_split_modules); "
                              "train it without --fsdp")
        mesh = init_device_mesh("cuda" if str(self.device or "cpu").startswith("cuda") else "cpu", (self.world,))
        keep_ids = {id(p) for p in keep}
        for _, block in named:
            fully_shard(block, mesh=mesh, ignored_params={p for p in block.parameters() if id(p) in keep_ids})
        in_blocks = {id(p) for _, b in named for p in b.parameters()}
        for name in sorted({n.rsplit(".", 2)[0] for n, _ in named}):  # "...visual.blocks.3" -> "...visual"
            tower = model.get_submodule(name)
            fully_shard(tower, mesh=mesh, ignored_params={p for p in tower.parameters()
                                                          if id(p) not in in_blocks or id(p) in keep_ids})
        model._artstudio_fsdp = len(named)
        return len(named)

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device(self.device) if dist.get_backend() == "nccl" and self.device else torch.device("cpu")
