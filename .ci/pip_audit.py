"""pip-audit over requirements.txt that cannot pass by auditing nothing.

pip-audit asks PyPI's JSON API (per release) for known vulnerabilities. Where that API cannot
be reached (a mirror that serves only the package index, no internet) pip-audit skips every
package and still prints "No known vulnerabilities found" with exit code 0. This wrapper counts
what was really audited:
- any known vulnerability: exit 1;
- nothing audited at all: a loud warning, exit 0 (exit 1 when ITB_REQUIRE_AUDIT=1, for a CI that
  does reach the vulnerability service);
- otherwise: exit 0, naming any package that could not be audited.

`--report FILE` evaluates an existing `pip-audit --format json` report instead of running it.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def evaluate(report: dict, *, require_audit: bool) -> tuple[int, list[str]]:
    """The exit code and the lines to print for a pip-audit JSON report."""
    dependencies = report["dependencies"]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    lines = []
    for dependency in audited:
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            lines.append(f"pip-audit: {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})")
    if lines:
        return 1, lines
    if not audited:
        example = skipped[0]["skip_reason"] if skipped else "the report lists no package"
        lines.append(
            "pip-audit: WARNING: NOTHING AUDITED: the vulnerability service could not be reached, "
            f"so all {len(skipped)} packages were skipped (e.g. {example})."
        )
        return (1 if require_audit else 0), lines
    lines.append(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities.")
    lines.extend(f"pip-audit: not audited: {d['skip_reason']}" for d in skipped)
    return 0, lines


def run_pip_audit() -> dict | None:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        result = subprocess.run(  # noqa: S603  (fixed argv: this venv's pip-audit)
            [
                str(pip_audit),
                "--requirement",
                str(ROOT / "requirements.txt"),
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "--output",
                str(report_path),
            ],
            capture_output=True,
            text=True,
        )
        if not report_path.exists():
            sys.stderr.write(result.stdout + result.stderr)
            return None
        return json.loads(report_path.read_text())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--report"]:
        report = json.loads(Path(argv[1]).read_text())
    else:
        report = run_pip_audit()
        if report is None:
            print("pip-audit: failed before producing a report", file=sys.stderr)
            return 1
    code, lines = evaluate(report, require_audit=os.environ.get("ITB_REQUIRE_AUDIT") == "1")
    for line in lines:
        print(line, file=sys.stderr if "WARNING" in line else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
