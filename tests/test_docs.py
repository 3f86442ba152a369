"""The manual: the docs site builds strictly, its stage reference is current, the README is short."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tfkfp import docs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
README_MAX_LINES = 150
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # NO_MKDOCS_2_WARNING: Material's banner about its successor, printed on every build
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


def test_site_builds_strictly(tmp_path):
    # --strict turns mkdocs' warnings into a failure: a broken link or anchor, a page outside
    # the nav (validation settings in mkdocs.yml), a missing bench/results snippet.
    proc = _mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    site = tmp_path / "site"
    assert (site / "reference" / "stages" / "index.html").is_file()
    assert (site / "bench" / "results" / "results.png").is_file()
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    # the table comes from bench/results/results.md, not from the page
    table = (REPO / "bench" / "results" / "results.md").read_text().splitlines()
    rows = [r for r in table if r.startswith("|") and not set(r) <= set("|-: ")]
    first_measure = rows[1].split("|")[1].strip()  # rows[0] is the header
    assert first_measure in benchmarks


@pytest.mark.slow  # two more site builds; test_site_builds_strictly stays
def test_strict_build_fails_on_an_orphan_page_a_broken_link_or_anchor(tmp_path):
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    copy = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(DOCS), str(copy)], check=True)
    (copy / "orphan.md").write_text("# Not in the nav\n")
    config["docs_dir"] = str(copy)
    config["hooks"] = [str(REPO / "tfkfp" / "docs.py")]
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(yaml.safe_dump(config))
    proc = _mkdocs_build(config_file, tmp_path / "site")
    assert proc.returncode != 0 and "orphan.md" in proc.stderr, proc.stderr[-2000:]

    (copy / "orphan.md").unlink()
    for link in ("no-such-page.md", "quickstart.md#no-such-heading"):
        (copy / "index.md").write_text(f"# tfkfp\n\n[gone]({link})\n")
        proc = _mkdocs_build(config_file, tmp_path / "site")
        assert proc.returncode != 0 and link.split("#")[-1] in proc.stderr, proc.stderr[-2000:]


def test_every_page_is_in_the_nav():
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    listed = set(pages(nav))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == listed, f"not in the nav: {on_disk - listed}; missing: {listed - on_disk}"


def test_stage_reference_is_current():
    committed = (DOCS / "reference" / "stages.md").read_text()
    assert committed == docs.render(), "docs/reference/stages.md is stale: run `make docs`"


def test_generated_blocks_are_current():
    # The README's and the docs' lists of stages, tasks and commands are generated (make docs).
    for path in docs.BLOCKS:
        assert (REPO / path).read_text() == docs.fill_blocks(path), (
            f"{path} is stale: run `make docs`"
        )


def test_no_stage_list_typed_by_hand():
    # A stage list outside a generated block goes stale when a stage is added.
    from tfkfp.components import STAGES

    names = [docs._name(c) for c in STAGES]
    pages = [REPO / "README.md", DOCS / "index.md", DOCS / "development.md"]
    for page in pages:
        text = re.sub(
            r"<!-- generated:(\S+).*?<!-- /generated:\1 -->", "", page.read_text(), flags=re.S
        )
        for line in text.splitlines():
            listed = [n for n in names if re.search(rf"\b{n}\b", line)]
            assert len(listed) < 6, f"{page.name} lists stages by hand: {line.strip()!r}"


def test_stage_reference_has_every_parameter_documented():
    from tfkfp.components import STAGES

    page = docs.render()
    for component in STAGES:
        section = docs.stage_section(component)
        assert f"## {component.python_func.__name__}" in page
        for name in component.component_spec.inputs or {}:
            assert f"`{name}`" in section, f"{component.name}: {name} missing"
        for name in component.component_spec.outputs or {}:
            assert f"`{name}`" in section, f"{component.name}: {name} missing"
        # every row has a description from the docstring (an empty cell renders as "—")
        rows = [r for r in section.splitlines() if r.startswith("| `")]
        assert rows and all(not r.rstrip().endswith("| — |") for r in rows), section


def test_docstring_sections():
    prose, sections = docs.docstring_sections(
        """Does a thing.

        More about it.

        Args:
            a: First line
                continued.
            b: Second.

        Returns:
            flag: whether it worked.
        """
    )
    assert prose == "Does a thing.\n\nMore about it."
    assert sections["Args"] == {"a": "First line continued.", "b": "Second."}
    assert sections["Returns"] == {"flag": "whether it worked."}


def test_readme_is_short_and_links_into_the_docs():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    links = LINK.findall(text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        assert path.startswith("docs/") and path.endswith(".md"), f"README links {link}"
        page = REPO / path
        assert page.is_file(), f"README links {link}: no such page"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
            slugs = {
                re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings
            }
            assert anchor in slugs, f"README links {link}: no such heading"


def _prose(text: str) -> str:
    """Markdown without fenced code blocks (sample output may show times)."""
    return re.sub(r"^ *```.*?^ *```", "", text, flags=re.M | re.S)


# Measured figures: ratios, sizes, shares, durations (fractional or ranges of seconds, minutes,
# below a second), "N tests", "about N". Whole seconds stay allowed: they are settings (a lease,
# a retry time, a progress interval), not measurements.
MEASURED = re.compile(
    r"\d[\d.,]*\s?(×|x\b|GB|MB|min\b|ms\b|µs\b|%)|\b\d+ tests\b|\babout \d"
    r"|\d+\.\d+\s?s\b|\d+[–-]\d+\s?s\b"
)


def test_no_hand_typed_measurements():
    pages = [REPO / "README.md"] + [p for p in DOCS.rglob("*.md") if p.parent.name != "reference"]
    for page in pages:
        for line in _prose(page.read_text()).splitlines():
            found = MEASURED.search(line)
            assert not found, f"{page.relative_to(REPO)}: {found[0]!r} in {line.strip()!r}"
