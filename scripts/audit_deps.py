"""`make audit`: pip-audit over the virtualenv, honest about what it could check.

pip-audit asks PyPI's JSON API (``/pypi/NAME/VERSION/json``) for each
installed package's known vulnerabilities. Where that API cannot be reached
(a package mirror without it, no network) pip-audit skips every package and
still says "No known vulnerabilities found". This wrapper fails on any known
vulnerability, and when nothing could be checked says so and why, instead of
passing silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    done = subprocess.run(
        [str(BIN / "pip-audit"), "--skip-editable", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: SKIPPED, it could not run here: {last}")
        return 0
    packages = report["dependencies"]
    skipped = [p for p in packages if "skip_reason" in p]
    vulnerable = [p for p in packages if p.get("vulns")]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"pip-audit: {package['name']} {package['version']}: {vuln['id']} ({fixed})")
    if vulnerable:
        return 1
    if packages and len(skipped) == len(packages):
        print(
            f"pip-audit: SKIPPED, no vulnerability data reachable: all {len(packages)} "
            f"packages were skipped ({skipped[0]['skip_reason']}). The package index here "
            "serves no vulnerability API; run `make audit` where pypi.org answers."
        )
        return 0
    audited = len(packages) - len(skipped)
    print(f"pip-audit: {audited} packages audited, no known vulnerabilities", end="")
    print(f"; {len(skipped)} skipped" if skipped else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
