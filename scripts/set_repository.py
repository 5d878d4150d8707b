"""Point every GitHub link of the project (Colab badges, Colab install cell) at OWNER/REPO.

Usage: python scripts/set_repository.py OWNER/REPO

The repository is named once, in pyproject.toml ([project.urls] Repository); this script
rewrites that line and every link that repeats it, in README.md and the notebooks.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG = re.compile(r"^[\w.-]+/[\w.-]+$")


def main(new_slug: str) -> None:
    if not SLUG.match(new_slug):
        sys.exit(f"set_repository: {new_slug!r} is not OWNER/REPO")
    pyproject = ROOT / "pyproject.toml"
    old_slug = re.search(r'Repository = "https://github\.com/([\w.-]+/[\w.-]+)"',
                         pyproject.read_text())[1]
    files = [pyproject, ROOT / "README.md", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in files:
        text = path.read_text()
        updated = text.replace(f"github.com/{old_slug}", f"github.com/{new_slug}")
        updated = updated.replace(f"github/{old_slug}/", f"github/{new_slug}/")
        if updated != text:
            path.write_text(updated)
            print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
