"""requirements.lock, which the image installs with --require-hashes, against pyproject.toml,
without a network: a dependency added or raised in pyproject without re-locking
(scripts/lock.sh) fails here instead of in the image build's `pip check`."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# The image: python:3.11-slim on x86_64 (the platform scripts/lock.sh locks for).
IMAGE_ENVIRONMENT = {
    "python_version": "3.11", "python_full_version": "3.11.0", "os_name": "posix",
    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
    "platform_python_implementation": "CPython", "implementation_name": "cpython",
}


@dataclass
class Locked:
    version: Version
    marker: Marker | None
    hashes: list[str]
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Locked]:
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    via_block = False
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            # uv's annotations: "# via a" or "# via" followed by "#   a" lines.
            comment = stripped.lstrip("#").strip()
            if current is None:
                continue
            if comment.startswith("via"):
                via_block = comment == "via"
                if not via_block:
                    current.via.append(comment.removeprefix("via").strip())
            elif via_block and comment:
                current.via.append(comment)
            continue
        via_block = False
        requirement, *options = re.split(r"\s+(?=--)", stripped)
        req = Requirement(requirement)
        pins = [spec for spec in req.specifier if spec.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"not pinned: {stripped}"
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
        current = Locked(Version(pins[0].version), req.marker, hashes)
        locked[canonicalize_name(req.name)] = current
    return locked


def _extra_requirements(name: str, extra: str) -> list[Requirement]:
    """What `name[extra]` adds, on the image, from the installed package's metadata: the
    lock file does not record it, and there is no index to ask."""
    added = []
    for line in importlib.metadata.requires(name) or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({**IMAGE_ENVIRONMENT, "extra": extra}) \
                and not req.marker.evaluate({**IMAGE_ENVIRONMENT, "extra": ""}):
            added.append(req)
    return added


def lock_problems(pyproject_text: str, lock_text: str) -> list[str]:
    project = tomllib.loads(pyproject_text)["project"]
    locked = parse_lock(lock_text)
    problems = [f"{name}: no --hash=sha256:" for name, entry in locked.items()
                if not any(h.startswith("sha256:") for h in entry.hashes)]

    def check(req: Requirement, why: str, version_known: bool = True) -> None:
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req} ({why}): not in the lock")
        elif version_known and not req.specifier.contains(locked[name].version,
                                                           prereleases=True):
            problems.append(f"{req} ({why}): locked {locked[name].version}")

    production = set()
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(IMAGE_ENVIRONMENT):
            continue
        production.add(canonicalize_name(req.name))
        check(req, "pyproject")
        for extra in sorted(req.extras):
            installed = Version(importlib.metadata.version(req.name))
            same = canonicalize_name(req.name) in locked \
                and locked[canonicalize_name(req.name)].version == installed
            for added in _extra_requirements(req.name, extra):
                # The installed release tells which packages the extra names; its bounds
                # are only those of the locked release when the versions are the same.
                check(added, f"{req.name}[{extra}]", version_known=same)

    # The optional extras stay out: `embedded` is GPL-2.0 and development-only, `dev` is
    # tooling. A dev package may still be locked when a production package needs it (PyYAML,
    # for uvicorn[standard]), never on pyproject's own account.
    optional = project.get("optional-dependencies", {})
    for line in optional.get("embedded", []):
        name = canonicalize_name(Requirement(line).name)
        if name in locked:
            problems.append(f"{name}: the embedded database is in the lock")
    for extra, lines in optional.items():
        for line in lines:
            name = canonicalize_name(Requirement(line).name)
            if name in locked and name not in production and (
                    not locked[name].via
                    or any("pyproject.toml" in via for via in locked[name].via)):
                problems.append(f"{name}: locked for the {extra!r} extra")
    return problems


def _files() -> tuple[str, str]:
    return (ROOT / "pyproject.toml").read_text(), (ROOT / "requirements.lock").read_text()


def test_lock_satisfies_pyproject_with_hashes_and_no_extras() -> None:
    pyproject, lock = _files()
    assert lock_problems(pyproject, lock) == []
    locked = parse_lock(lock)
    # uvicorn[standard]'s packages (the named one alone would pass a careless check).
    assert {"uvicorn", "httptools", "uvloop", "watchfiles", "websockets"} <= set(locked)
    # The header says how it was made: the command scripts/lock.sh runs.
    assert "uv pip compile pyproject.toml --generate-hashes" in lock.splitlines()[1]
    assert "--python-version 3.11" in lock.splitlines()[1]


def test_a_raised_lower_bound_needs_a_relock() -> None:
    pyproject, lock = _files()
    fastapi = parse_lock(lock)["fastapi"].version
    raised = re.sub(r'"fastapi>=[^"]*"', f'"fastapi>={fastapi.major}.{fastapi.minor + 1}"',
                    pyproject)
    assert raised != pyproject
    assert [p.split(":")[0] for p in lock_problems(raised, lock)] == [
        f"fastapi>={fastapi.major}.{fastapi.minor + 1} (pyproject)"]


def test_a_new_dependency_needs_a_relock() -> None:
    pyproject, lock = _files()
    added = pyproject.replace('dependencies = [\n', 'dependencies = [\n    "httpx>=0.27",\n', 1)
    assert added != pyproject
    assert lock_problems(added, lock) == ["httpx>=0.27 (pyproject): not in the lock"]


def test_an_extras_package_missing_from_the_lock_is_found() -> None:
    pyproject, lock = _files()
    without = re.sub(r"(?m)^watchfiles==.*\n(?:\s+--hash.*\n)*", "", lock)
    assert without != lock
    assert any(p.startswith("watchfiles") and "uvicorn[standard]" in p
               for p in lock_problems(pyproject, without))


def test_the_embedded_database_or_a_dev_tool_in_the_lock_is_found() -> None:
    pyproject, lock = _files()
    entry = " \\\n    --hash=sha256:" + "0" * 64 + "\n    # via org-service (pyproject.toml)\n"
    tainted = lock + "secantusdb==0.7.0" + entry + "pytest==8.3.0" + entry
    assert lock_problems(pyproject, tainted) == [
        "secantusdb: the embedded database is in the lock",
        "secantusdb: locked for the 'embedded' extra",
        "pytest: locked for the 'dev' extra",
    ]


def test_a_package_without_a_hash_is_found() -> None:
    pyproject, lock = _files()
    unhashed = re.sub(r"(?m)^(bcrypt==\S+) \\\n(?:\s+--hash.*\n)*", r"\1\n", lock)
    assert unhashed != lock
    assert lock_problems(pyproject, unhashed) == ["bcrypt: no --hash=sha256:"]
