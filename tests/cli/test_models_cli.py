"""The real `mnas` command: models, arch show, space sample; exit codes and JSON."""

import json
import subprocess
import sys

import pytest

from mnas.space import get_arch


def run(*args, check_rc=0):
    proc = subprocess.run([sys.executable, "-m", "mnas.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == check_rc, proc.stderr
    return proc


def test_models_json_lists_the_zoo():
    data = json.loads(run("models", "--json", "--input-size", "64").stdout)  # params do not depend on size
    rows = {r["name"]: r for r in data["models"]}
    assert rows["mnasnet_a1"]["params"] == 3_887_038
    assert rows["mnasnet_b1_x0.5"]["params"] == 2_218_512
    assert rows["mobilenetv2"]["arch"] == str(get_arch("mobilenetv2"))


def test_arch_show_accepts_names_strings_and_json(tmp_path):
    by_name = json.loads(run("arch", "show", "mnasnet_small", "--json", "--num-classes", "10", "--input-size", "32").stdout)
    blocks = " ".join(str(b) for b in get_arch("mnasnet_small").blocks)
    by_string = json.loads(run("arch", "show", blocks + " | s2_h1280_d0.0_relu", "--json", "--num-classes", "10",
                                   "--input-size", "32").stdout)
    path = tmp_path / "a.json"
    path.write_text(get_arch("mnasnet_small").to_json())
    by_file = json.loads(run("arch", "show", str(path), "--json", "--num-classes", "10", "--input-size", "32").stdout)
    assert by_name["params"] == by_string["params"] == by_file["params"]
    assert by_name["arch"] == by_file["arch"]
    text = run("arch", "show", "mnasnet_small", "--input-size", "32").stdout
    assert "MACs" in text and "32x32" in text


@pytest.mark.parametrize("args, needle", [
    (("arch", "show", "r1_k4_s11_e1_i32_o16"), "k4"),
    (("arch", "show", "missing.json"), "not found"),
    (("space", "sample", "--n", "0"), "positive integer"),
    (("arch", "show", "mnasnet_a1", "--input-size", "abc"), "positive integer"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    from mnas.cli import main

    with pytest.raises(SystemExit) as exc:  # argparse errors exit from inside the parser
        raise SystemExit(main(list(args)))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_bad_input_through_the_real_command():
    proc = run("arch", "show", "r1_k4_s11_e1_i32_o16", check_rc=2)
    assert proc.stderr.startswith("mnas: error:") and "k4" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_space_sample_json_is_seeded():
    a = json.loads(run("space", "sample", "--n", "3", "--seed", "7", "--input-size", "32", "--json").stdout)
    b = json.loads(run("space", "sample", "--n", "3", "--seed", "7", "--input-size", "32", "--json").stdout)
    assert a["samples"] == b["samples"] and len(a["samples"]) == 3
    assert a["size"] == 432**7
