"""`tilework demo`, the README's first command after the install, ends well."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_completes_a_run_and_receives_every_webhook(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tilework",
            "demo",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "completed" in output and "every webhook arrived" in output
    for flag in ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED"):
        assert flag in output
    assert (tmp_path / "demo" / "demo-output.mp4").stat().st_size > 0
