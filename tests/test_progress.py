"""Progress in a log file: whole lines, no carriage returns (a compare worker's log, CI, nohup)."""

import io

from artstudio.cli import main
from artstudio.progress import LogProgress, progress_bar, progress_iter


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_tenth_and_the_last():
    out = io.StringIO()
    bar = progress_bar(total=25, desc="art sft", unit="step", file=out, dynamic_ncols=True, mininterval=1.0)
    assert isinstance(bar, LogProgress)
    for step in range(25):
        bar.set_postfix({"loss": f"{1 / (step + 1):.3f}"}, refresh=False)
        bar.update(1)
    bar.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10, lines  # 10 %, 20 %, ... 100 %: 25 steps cross each tenth once
    assert lines[0].startswith("art sft: 3/25 steps (12%), ") and lines[0].endswith("loss=0.333")
    assert lines[-1].startswith("art sft: 25/25 steps (100%)")


def test_closing_early_says_where_it_stopped_and_a_resumed_bar_starts_quiet():
    out = io.StringIO()
    bar = LogProgress(total=100, desc="compare", initial=40, unit="run", file=out)
    bar.set_description("lora · max-bracket · 0")
    bar.set_postfix_str("≈ 2 min left")
    bar.update(3)  # 40 -> 43: the same tenth as the start
    assert out.getvalue() == ""
    bar.close()
    bar.close()
    assert out.getvalue() == "lora · max-bracket · 0: 43/100 runs (43%), 0 s elapsed, ≈ 2 min left\n"


def test_slow_work_still_writes_a_line_every_few_minutes(monkeypatch):
    """A long comparison's first tenth can take a quarter of an hour: while the work moves, a line comes at
    least every `LogProgress.every` seconds; nothing is written while it does not move."""
    import artstudio.progress as P

    now = [1000.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = LogProgress(total=156, desc="compare · 2 workers", unit="run", file=out)
    for _ in range(5):  # 5 runs in 5 minutes: still in the first tenth
        now[0] += 60
        bar.update(1)
    assert out.getvalue() == "compare · 2 workers: 5/156 runs (3%), 300 s elapsed\n"
    now[0] += 600
    bar.update(0)  # polled, nothing new: no line
    assert out.getvalue().count("\n") == 1
    now[0] += 1
    bar.update(1)
    assert out.getvalue().splitlines()[-1] == "compare · 2 workers: 6/156 runs (4%), 901 s elapsed"


def test_a_terminal_gets_tqdm_and_an_iterable_yields_every_item():
    from tqdm import tqdm

    bar = progress_bar(total=3, desc="x", file=_Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
    assert list(progress_iter(range(4), desc="targets")) == [0, 1, 2, 3]


def test_a_command_run_into_a_log_writes_no_carriage_returns(tmp_path, capsys):
    """`artstudio train ... 2> log`: the model's loading bar and the step bar were `\\r`-redrawn lines."""
    assert main(["train", "--data", "max-bracket", "--steps", "2", "--starts", "1", "--eval-size", "4",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "Loading weights" not in err
    assert "art sft: 2/2 steps (100%)" in err


def test_a_start_s_progress_says_it_is_a_start(tmp_path, capsys):
    """The starts' short runs printed "art sft: 1/3 steps", read as the run itself."""
    assert main(["train", "--data", "max-bracket", "--steps", "4", "--starts", "2", "--eval-size", "4",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "start 0-gray · art sft: 1/1 steps" in err and "start 1-t2c · t2c+art sft: 1/1 steps" in err
    assert "art sft: 4/4 steps (100%)" in err
