"""The README's examples run, and its quick-start test command is the one CI runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_readme_example_runs(block):
    exec(compile(block, "README.md", "exec"), {})


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert len(commands) == 2
    assert "pageflags scan" in commands[0] and "pip install" in commands[0]
    assert "pytest" in commands[1] and "pip install" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
