"""The bench's per-task peak RSS (tools/bench_dry_run.py): read from a real process's log lines.

A child process plays ``airflow dags test``: it logs the two lines ``dag.test()`` writes around each
task and touches a known amount of memory inside each "task". It waits for the test after each
line, so the reading does not depend on how fast the monitor is. The expected sizes are the
allocations' own, not figures from the module under test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tools.bench_dry_run import TaskMemory

MB = 2**20

CHILD = textwrap.dedent(
    """
    import sys

    def say(line):
        print(line, flush=True)
        sys.stdin.readline()  # the test has handled the line

    say("2026-12-03T08:45:16Z [info] [DAG TEST] starting task_id=big map_index=-1 [airflow]")
    block = b"\\x01" * (400 * 2**20)  # touches every page
    say("2026-12-03T08:45:17Z [info] [DAG TEST] end task task_id=big map_index=-1 [airflow]")
    del block
    say("2026-12-03T08:45:18Z [info] [DAG TEST] starting task_id=small map_index=-1 [airflow]")
    block = b"\\x01" * (40 * 2**20)
    say("2026-12-03T08:45:19Z [info] [DAG TEST] end task task_id=small map_index=-1 [airflow]")
    say("2026-12-03T08:45:20Z [info] [DAG TEST] starting task_id=dies map_index=-1 [airflow]")
    say("a line that is no task boundary: task_id=ignored")
    """
)


def _play(memory_factory=TaskMemory) -> TaskMemory:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    memory = memory_factory(proc.pid)
    for line in proc.stdout:
        memory.line(line)
        if "ignored" in line:
            memory.finish()  # what dry_run does when the process ends without the task's end line
        proc.stdin.write("\n")
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait()
    return memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_each_task_gets_its_own_peak_not_the_process_peak_so_far():
    memory = _play()
    assert memory.method == "clear_refs"
    assert set(memory.peaks) == {"big", "small", "dies"}
    # "big" held 400 MB; "small" started after it was freed, so its mark was reset below that.
    assert memory.peaks["big"] >= 400
    assert memory.peaks["small"] < 400
    assert memory.peaks["small"] >= 40
    # Each task's starting RSS is kept: "small" started after the 400 MB were freed, and added 40.
    assert memory.start_rss["small"] < 400
    assert memory.peaks["small"] - memory.start_rss["small"] >= 39
    assert memory.peaks["big"] - memory.start_rss["big"] >= 399
    # The task whose end line never came is still recorded, from the process's mark.
    assert memory.peaks["dies"] >= memory.peaks["small"] - 1
    assert memory.largest() == ("big", memory.peaks["big"])
    assert set(memory.seconds) == {"big", "small", "dies"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_without_the_reset_the_figure_is_the_process_peak_and_says_so():
    class NoReset(TaskMemory):
        def _reset(self) -> None:
            self.method = "process peak (clear_refs not writable)"

    memory = _play(NoReset)
    assert memory.method.startswith("process peak")
    # Still an upper bound for every task: never below what the task itself touched.
    assert memory.peaks["big"] >= 400
    assert memory.peaks["small"] >= 400


def test_no_task_lines_means_no_figure():
    memory = TaskMemory(pid=2**22 + 1)  # no such process
    memory.line("2026-12-03 [info] Filling up the DagBag")
    memory.finish()
    assert memory.peaks == {}
    assert memory.largest() is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--full-run-users", "-5"], "--full-run-users must be 0 (off) or at least 50"),
        (["--full-run-users", "10"], "--full-run-users must be 0 (off) or at least 50"),
        (["--full-run-users", "1e6"], "invalid int value"),
        (["--full-run-only"], "--full-run-only needs --full-run-users"),
    ],
)
def test_bench_refuses_a_full_run_it_cannot_do(argv, message, capsys):
    from tools.bench import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_full_run_options_parse():
    from tools.bench import parse_args

    args = parse_args(["--full-run-users", "1000000", "--full-run-only"])
    assert (args.full_run_users, args.full_run_only) == (1_000_000, True)
    assert parse_args([]).full_run_users == 0  # off unless asked for
