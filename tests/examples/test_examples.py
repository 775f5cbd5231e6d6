"""The examples run as documented."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_custom_space_and_evaluator_example():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "custom_space_and_evaluator.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "best under 2 ms: r4_k3_s11_e6_i16_o16" in proc.stdout
