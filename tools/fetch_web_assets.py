"""Fetch the browser assets that the built book serves itself (MathJax, RequireJS, the
ipywidgets HTML manager), so that its pages work with no network.

Each package named in ``tools/web_assets.json`` is downloaded from the npm registry with
``npm pack`` (the tarball alone, no dependency tree), checked against its pinned sha512
integrity, and the listed files are unpacked into ``_vendor/``. Sphinx copies ``_vendor/`` into
the built site's ``_static/`` (see ``_config.yml``). Re-running is a no-op when ``_vendor/``
already matches the pins.

Usage: python tools/fetch_web_assets.py [--dest _vendor]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tools" / "web_assets.json"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _npm_pack(spec: str, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "fetch_web_assets: npm is not installed; install Node.js (e.g. apt-get install npm)"
        )
    result = subprocess.run(
        [npm, "pack", "--json", "--silent", spec],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(result.stdout)
    return workdir / info[0]["filename"]


def _extract(tarball: Path, files: dict[str, str], dest: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        members = archive.getmembers()
        for source, target in files.items():
            chosen = [
                m
                for m in members
                if m.isfile()
                and (m.name == source or (source.endswith("/") and m.name.startswith(source)))
            ]
            chosen = [m for m in chosen if not m.name.endswith(".map")]
            if not chosen:
                sys.exit(f"fetch_web_assets: {source!r} not found in {tarball.name}")
            for member in chosen:
                relative = member.name[len(source) :] if source.endswith("/") else ""
                out = dest / target / relative if relative else dest / target
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as fin, open(out, "wb") as fout:
                    shutil.copyfileobj(fin, fout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "_vendor")
    args = parser.parse_args(argv)
    manifest_text = MANIFEST.read_text()
    stamp = args.dest / ".manifest.json"
    if stamp.is_file() and stamp.read_text() == manifest_text:
        print(f"web assets up to date in {args.dest}")
        return 0
    manifest = json.loads(manifest_text)
    staging = args.dest.with_name(args.dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package in manifest["packages"]:
            tarball = _npm_pack(package["spec"], Path(tmp))
            got = _integrity(tarball)
            if got != package["integrity"]:
                sys.exit(
                    f"fetch_web_assets: integrity mismatch for {package['spec']}: "
                    f"expected {package['integrity']}, got {got}"
                )
            _extract(tarball, package["files"], staging)
            print(f"fetched {package['spec']}")
    (staging / ".manifest.json").write_text(manifest_text)
    shutil.rmtree(args.dest, ignore_errors=True)
    staging.rename(args.dest)
    print(f"web assets ready in {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
