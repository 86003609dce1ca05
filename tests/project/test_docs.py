"""The docs a newcomer walks: the README's two commands are the ones that install and
test (CI runs the same test command), every relative link in the README and docs/
leads somewhere, and the generated reference pages say what the code says."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agentlog.errors import AgentlogError
from agentlog.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def bash_blocks(text: str) -> list[list[str]]:
    """The command lines of each bash block (a line ending in `\\` joined to the next)."""
    return [
        [
            line
            for line in "\n".join(block.splitlines()[1:-1]).replace("\\\n", " ").splitlines()
            if line.strip()
        ]
        for block in FENCE.findall(text)
        if block.startswith("```bash")
    ]


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings."""
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_readme_starts_with_what_it_is_then_exactly_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("# agentlog\n\nThe flight recorder for AI agents on Kafka")
    first_block = bash_blocks(text)[0]
    assert len(first_block) == 2, first_block
    install, test = first_block
    assert "pip install -e '.[test]'" in install and install.endswith("agentlog demo")
    # CI runs the README's test command, word for word.
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
    assert shlex.split(test)[1:] == ["-m", "pytest"]


def test_the_readme_stays_a_few_screens() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words < 1500, f"README.md has {words} words: move the detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, broken


def test_the_docs_never_send_a_reader_outside_the_project() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "DESIGN.md" not in text, page


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["configuration.md", "errors.md"])
def test_the_generated_pages_are_what_the_code_says(name: str) -> None:
    made = generator().PAGES[name]()
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == made, f"docs/{name} is stale: run python docs/generate.py"


def test_every_setting_and_error_is_described() -> None:
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"`AGENTLOG_{name.upper()}`" in configuration
    errors = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for cls in generator().error_classes():
        if issubclass(cls, AgentlogError):
            assert cls.__dict__.get("__doc__"), f"{cls.__name__} has no docstring"
            assert f"## {cls.__name__}\n" in errors


def test_the_check_names_a_stale_page(tmp_path: Path) -> None:
    # The contributor's command: exit 0 while the pages match, 1 naming the page otherwise.
    script = ROOT / "docs" / "generate.py"
    copy = tmp_path / "docs"
    copy.mkdir()
    (copy / "generate.py").write_text(script.read_text(encoding="utf-8"))
    done = subprocess.run([sys.executable, str(copy / "generate.py")], capture_output=True)
    assert done.returncode == 0, done.stderr
    check = [sys.executable, str(copy / "generate.py"), "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0
    page = copy / "errors.md"
    page.write_text(page.read_text(encoding="utf-8").replace("## Fenced", "## Fence"))
    stale = subprocess.run(check, capture_output=True, text=True)
    assert stale.returncode == 1 and "docs/errors.md" in stale.stderr
    assert "configuration.md" not in stale.stderr


def parsed(line: str) -> list[str]:
    """The command path of an `agentlog ...` line, its options parsed as the CLI would."""
    import click

    from agentlog.cli import cli

    args = shlex.split(line.split("  #")[0])[1:]
    command: click.Command = cli
    path = ["agentlog"]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            break  # a group whose default takes an argument (`agentlog replay conv-42`)
        path.append(args.pop(0))
        command = sub
    command.make_context(" ".join(path), args)  # raises on an unknown option or command
    return path


def test_every_command_the_docs_show_is_a_command_with_those_options() -> None:
    shown = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for block in bash_blocks(page.read_text(encoding="utf-8")):
            for line in block:
                # A synopsis (`[--group G]`, `redrive ID | skip ID`) is not a command line.
                if line.startswith("agentlog ") and "[" not in line and " | " not in line:
                    shown.append(parsed(line))
    assert ["agentlog", "replay", "rerun"] in shown and ["agentlog", "export", "training"] in shown
    assert len(shown) > 40
