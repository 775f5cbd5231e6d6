"""The README's commands work as written (issue 21 item 6), so that the README cannot drift again.

Every `mnas ...` line of the README's bash blocks is read as a shell would (continuations joined,
comments dropped). By default, cheaply: every line parses with today's options, every command it
names answers `--help`, and the commands that cost nothing (`models`, `arch show`, `space sample`)
run. Marked slow: every line that can run on the built-in data runs in order, in one scratch folder,
with tiny budgets substituted here (not in the README): CIFAR paths become `digits`, trials and
epochs shrink, and the lookup-table lines measure a narrowed space. Lines are skipped that need the
network (pip), a device server (--url, device serve), torchrun or Ray, the user's own data, or that
are placeholders ("...").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_lines(lang: str = "bash") -> list[str]:
    """The README's command lines in `lang` blocks, continuations joined, in order."""
    lines = []
    for block_lang, body in re.findall(r"```(\w*)\n(.*?)```", README.read_text(), re.S):
        if block_lang == lang:
            lines += [line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def mnas_commands() -> list[list[str]]:
    """argv (after `mnas`) of every README line that runs `mnas`."""
    out = []
    for line in readme_lines():
        argv = shlex.split(line, comments=True)
        if argv and argv[0] == "mnas":
            out.append(argv[1:])
    return out


def skip_reason(argv: list[str]) -> str | None:
    """Why a README line cannot run here with the built-in data (None: it can)."""
    if "..." in argv or any("..." in a for a in argv):
        return "a placeholder ('...')"
    if "--url" in argv or argv[:2] == ["device", "serve"]:
        return "needs a device server"
    if "ray" in argv:
        return "needs Ray"
    if any(a.startswith("my_images") for a in argv):
        return "the user's own data"
    if "cuda" in " ".join(argv):
        return "needs CUDA"
    for i, arg in enumerate(argv):  # --data becomes digits; another file of ../shared must be there
        if arg.startswith("../shared/") and not (i and argv[i - 1] == "--data") and not (README.parent / arg).exists():
            return f"{arg} is absent"
    return None


def _command_path(argv: list[str]) -> tuple[str, ...]:
    """The sub-command words at the start of argv (`latency build-lut`, `search`, ...)."""
    from mnas.cli import build_parser

    parser, path = build_parser(), []
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
        path.append(word)
    return tuple(path)


def _parse(argv: list[str]) -> tuple[int, str]:
    from mnas.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0), err.getvalue()
    return 0, ""


COMMANDS = mnas_commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 30 and ["models"] in COMMANDS


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_parses(argv):
    # before: 'mnas instance eval runs/insta --budget-ms 1.0 --measure --json' (--measure needed a number)
    code, err = _parse([a for a in argv if a != "..."])
    assert code == 0, err


def test_every_command_the_readme_names_answers_help(capsys):
    from mnas.cli import main

    paths = sorted({_command_path(argv) for argv in COMMANDS})
    assert ("latency", "build-lut") in paths and ("instance", "eval") in paths
    for path in paths:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0, path
        out = capsys.readouterr().out
        assert out.startswith(f"usage: mnas {' '.join(path)}"), path


def test_the_cheap_readme_commands_run(capsys):
    from mnas.cli import main

    cheap = [a for a in COMMANDS if _command_path(a) in (("models",), ("arch", "show"), ("space", "sample"))
             and skip_reason(a) is None]
    assert len(cheap) >= 5
    for argv in cheap:
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert out.strip(), argv
        if argv[:2] == ["space", "sample"] and "--profile" in argv:
            assert out.count("peak=") == int(argv[argv.index("--n") + 1])  # before: params and MACs only


def test_help_names_every_option_and_its_default():
    """Every option of every command has help text, and its default shows (issue 21 item 6: `arch show`'s
    options had no help, `instance train --data` claimed the model's data, epoch defaults were hidden)."""
    from mnas.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*path, name))
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield path, parser, action

    missing = []
    for path, parser, action in walk(build_parser(), ()):
        name = "/".join(action.option_strings) or action.dest
        if not (action.help or "").strip():
            missing.append(f"mnas {' '.join(path)} {name}: no help")
        elif action.option_strings and action.default not in (None, False, True, argparse.SUPPRESS, []):
            shown = parser._get_formatter()._get_help_string(action)
            if "default" not in shown.lower():
                missing.append(f"mnas {' '.join(path)} {name}: default {action.default!r} not shown")
    assert not missing, missing
    help_of = {(tuple(p), a.dest): a.help for p, _, a in walk(build_parser(), ())}
    assert "trained on" not in help_of[(("instance", "train"), "data")]
    for key in ((("instance", "train"), "pretrain_epochs"), (("instance", "train"), "search_epochs"),
                (("train",), "epochs"), (("search",), "epochs"), (("supernet", "train"), "epochs")):
        assert "default" in help_of[key], key


def test_instance_help_defaults_are_the_configs():
    from mnas.cli import build_parser
    from mnas.instance.train import InstanceConfig

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["instance"]._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    config = InstanceConfig()
    for dest, value in (("pretrain_epochs", config.pretrain_epochs), ("search_epochs", config.search_epochs),
                        ("batch_size", config.batch_size), ("seed", config.seed)):
        assert f"default {value})" in helps[dest], (dest, helps[dest])


# -- the whole README, run (slow) --------------------------------------------------------------------
NARROW = ["--ops", "mbconv6", "--kernel-sizes", "3", "--se-ratios", "0", "--skips", "identity", "--filter-mults", "1"]


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    if flag in argv:
        argv = list(argv)
        argv[argv.index(flag) + 1] = value
        return argv
    return [*argv, flag, value]


def tiny(argv: list[str]) -> list[str]:
    """The README line with tiny budgets: digits for CIFAR, few trials/epochs, a narrowed space for tables."""
    argv = ["digits" if i and argv[i - 1] == "--data" else str((README.parent / a).resolve()) if a.startswith("../shared/")
            else a for i, a in enumerate(argv)]
    path = _command_path(argv)
    if path == ("search",):
        strategy = argv[argv.index("--strategy") + 1] if "--strategy" in argv else "ppo"
        if strategy in ("darts", "gdas", "fbnet"):
            argv = [*argv, "--strategy-opt", "epochs=1"]
        elif strategy == "enas":
            argv = ["rounds=1" if a.startswith("rounds=") else a for a in argv]
        elif "--resume" not in argv:  # a resumed study keeps its own budget and settings
            argv = _set(argv, "--trials", "3")
            if "--supernet" not in argv:  # inherited accuracy: no proxy training
                argv = _set(argv, "--epochs", "0.2")
        if "--lut" in argv and strategy != "fbnet":  # the table measured a narrowed space: search that one
            argv += NARROW
        if "--retrain-top" in argv:
            argv = _set(_set(argv, "--retrain-top", "1"), "--retrain-epochs", "1")
    elif path == ("latency", "build-lut"):
        argv = _set(_set(argv, "--fit-archs", "3"), "--repeats", "3")
        if "--space" not in argv or argv[argv.index("--space") + 1] == "mnasnet":
            argv += NARROW
    elif path == ("latency", "validate"):
        argv = _set(_set(argv, "--n", "3"), "--repeats", "3")
    elif path == ("latency", "measure"):
        argv = _set(argv, "--repeats", "3")
    elif path == ("train",) and "--epochs" in argv:
        argv = _set(argv, "--epochs", "1")
    elif path == ("supernet", "train"):  # the narrowed space, so that fbnet's table covers the supernet's
        argv = _set(_set(argv, "--epochs", "1"), "--eval-images", "50")
        argv += NARROW if "--space" not in argv or argv[argv.index("--space") + 1] == "mnasnet" else []
    elif path == ("supernet", "rank-check"):
        argv = _set(_set(_set(_set(argv, "--n", "6"), "--epochs", "0.5"), "--noise", "2"), "--bootstrap", "20")
    elif path == ("instance", "train"):
        argv = [*argv, "--pretrain-epochs", "1", "--search-epochs", "1", "--finetune-epochs", "0.2"]
    elif path == ("instance", "eval") and "--measure" in argv:
        argv = [*argv[: argv.index("--measure") + 1], "5", *argv[argv.index("--measure") + 1:]]
    elif path == ("report",) and "insta" in " ".join(argv):
        argv = _set(argv, "--measure", "5")
    return argv


@pytest.mark.slow  # 22 minutes on a 2-core machine at load 5-9: every search, training and table of the README
@pytest.mark.timeout(3600)
def test_every_readme_line_that_can_run_here_runs(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = []
    for argv in COMMANDS:
        reason = skip_reason(argv)
        if reason is not None:
            log.append(f"skipped ({reason}): mnas {' '.join(argv)}")
            continue
        run = tiny(argv)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "mnas.cli", *run], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        log.append(f"{time.monotonic() - started:6.1f}s rc={proc.returncode}: mnas {shlex.join(run)}")
        print(log[-1], flush=True)  # with -s: where a long run is
        assert proc.returncode == 0, "\n".join(log) + "\n" + proc.stderr[-3000:]
