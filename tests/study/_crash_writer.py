"""Run by test_crash_safety: a search-like writer that loops until it is killed.

Every figure is a function of the trial number, so the test can check each stored trial exactly.
Usage: python _crash_writer.py DB
"""

import sys

from mnas.study import SQLiteStorage


def figures(n: int) -> dict:
    return {"accuracy": n / 1000, "latency_ms": 1.0 + n, "reward": n / 2000, "params": 10 * n,
            "extra": {"n": n, "pad": "x" * (n % 50)}}


def main(path: str) -> None:
    storage = SQLiteStorage(path)
    storage.requeue_running()  # what a resuming driver does first
    # Rebuild what the strategy was told from the study itself (a result may have been stored
    # without its state in the two-step branch below), as a resuming driver would.
    told = [t.number for t in storage.get_trials(["complete", "failed"])]
    if told:
        storage.save_strategy_state({"told": told}, n_told=len(told))
    print("ready", flush=True)
    while True:
        n = storage.create_trial([1, 2, 3], f"arch-{storage.count_trials()}")
        storage.update_trial(n, latency_seconds=0.5)
        told.append(n)  # the strategy is told first, then result and state are stored in one go
        if n % 5 == 4:
            storage.fail_trial(n, f"failure {n}", strategy_state={"told": told}, n_told=len(told))
        elif n % 5 == 3:  # the two-step way: a kill in between leaves the state one result behind
            storage.complete_trial(n, **figures(n))
            storage.save_strategy_state({"told": told}, n_told=len(told))
        else:
            storage.complete_trial(n, **figures(n), strategy_state={"told": told}, n_told=len(told))
        print(n, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
