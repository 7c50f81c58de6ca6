"""The README links only files that exist in the repository, and `make run PORT=…` links to that port."""

import os
import re
import subprocess
from pathlib import Path

from django.conf import settings

BASE = Path(settings.BASE_DIR)
README = (BASE / "README.md").read_text()

LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
HTML_SRC = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
# Files named in code spans: `refills/forecasting.py`, `docs/domain.md`, `.ci/run`.
CODE_PATH = re.compile(
    r"`(\.?[\w-]+(?:/[\w.-]+)*(?:\.(?:py|md|yml|yaml|toml|txt|png|cfg|ini|json|html|css|js|sh)|/run))`"
)


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith(("#", "//"))


def test_every_relative_link_and_image_in_the_readme_is_a_file_of_the_repository():
    targets = [t for t in LINK.findall(README) + HTML_SRC.findall(README) if _relative(t)]

    missing = [t for t in targets if not (BASE / t.split("#")[0]).exists()]

    assert targets  # the README does link files (screenshots, docs)
    assert not missing, f"README.md links files that do not exist: {missing}"


def test_every_file_path_the_readme_names_exists():
    named = [p for p in CODE_PATH.findall(README) if "/" in p]

    missing = [p for p in named if not (BASE / p).exists()]

    assert len(named) > 5
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_make_run_on_another_port_gives_links_on_that_port():
    # `make -n` prints the recipe with its variables expanded, and runs nothing.
    env = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "PORT")}
    make = ["make", "-n", "run"]
    out = subprocess.run([*make, "PORT=8101"], cwd=BASE, env=env, capture_output=True, text=True, check=True).stdout
    default = subprocess.run(make, cwd=BASE, env=env, capture_output=True, text=True, check=True).stdout
    chosen = subprocess.run(
        make, cwd=BASE, env={**env, "SITE_URL": "https://itb.example.org"}, capture_output=True, text=True, check=True
    ).stdout

    assert "honcho start --port 8101" in out
    assert "Links in emails, invitations and calendar feeds: http://127.0.0.1:8101" in out
    assert "Links in emails, invitations and calendar feeds: http://127.0.0.1:8000" in default
    assert "Links in emails, invitations and calendar feeds: https://itb.example.org" in chosen
