"""Check the in-repository links of README.md, bench/*.md and docs/.

    python docs/check_links.py

Every relative Markdown link ``[text](target)`` and image ``![alt](target)``
must name a file or folder of this repository (an ``#anchor`` is cut off
first), and so must the targets of MyST ``{image}``/``{include}``
directives. Comments and docstrings in the sources that name a page
(``docs/NAME.md``) must name one that exists. http(s) links are not
checked (CI has no network). Exit status 1 lists what is broken.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DIRECTIVE = re.compile(r"^```\{(?:image|include|figure)\}\s+(\S+)", re.MULTILINE)
DOCS_PATH = re.compile(r"\bdocs/[\w/.-]+\.md\b")
SOURCES = ("python", "csrc", "src", "tests", "bench")


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "bench").glob("*.md")), *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if "_build" not in f.parts and f.is_file()]


def broken_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^```(?!\{).*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # code blocks
    targets = LINK.findall(text) + DIRECTIVE.findall(text)
    out = []
    for target in targets:
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # http(s), mailto, or an anchor on the same page
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            out.append(f"{path.relative_to(ROOT)}: {target}")
    return out


def broken_source_references() -> list[str]:
    out = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".h", ".cpp", ".cu", ".inc", ".sh") or "results" in path.parts:
                continue
            for name in DOCS_PATH.findall(path.read_text(encoding="utf-8", errors="replace")):
                if not (ROOT / name).is_file():
                    out.append(f"{path.relative_to(ROOT)}: {name}")
    return out


def main() -> int:
    problems = [p for f in markdown_files() for p in broken_links(f)] + broken_source_references()
    for problem in problems:
        print(f"broken link: {problem}")
    checked = len(markdown_files())
    print(f"check_links: {checked} Markdown files and the sources' docs/ references, "
          f"{len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
