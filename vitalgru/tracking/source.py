"""Which code made a run: the git commit of the checkout that holds this package, whether
its tracked files differed from that commit, and a digest of the package's source.

MLflow tags a run with the commit of the repository holding the *entry script*; the
``vitalgru`` console script lives in a virtual environment that git ignores, so runs made
by ``vitalgru train``, ``make run`` or a Prefect worker carried no commit at all, and
``vitalgru.version`` is the same for every commit between releases. The commit is looked
up here from the package's own folder; an installed wheel (no repository, or no git) gets
no commit tag and no error, and the source digest still tells its code apart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import vitalgru

logger = logging.getLogger(__name__)

GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "vitalgru.git.dirty"
SOURCE_DIGEST_TAG = "vitalgru.source_digest"
_PACKAGES = ("vitalgru", "pipelines")  # the installed packages (pyproject's find.include)


def source_tags(package_dir: str | Path | None = None) -> dict[str, str]:
    """The tags naming the code under ``package_dir`` (default: this ``vitalgru``).

    ``mlflow.source.git.commit`` and ``vitalgru.git.dirty`` (``"true"`` when a tracked file
    of the checkout differs from that commit: the commit alone does not name the code) only
    where the package's files are tracked by a git repository and git runs; always
    ``vitalgru.source_digest`` (:func:`source_digest`).
    """
    pkg = Path(package_dir) if package_dir is not None else Path(vitalgru.__file__).parent
    tags = {SOURCE_DIGEST_TAG: source_digest(pkg.resolve().parent)}
    # ``ls-files --error-unmatch``: the package must be *tracked*, not merely inside a work
    # tree (a virtual environment's site-packages under a checkout is ignored by it)
    if _git(pkg, "ls-files", "--error-unmatch", "--", "__init__.py") is None:
        return tags
    commit = _git(pkg, "rev-parse", "--verify", "HEAD")
    status = _git(pkg, "status", "--porcelain", "--untracked-files=no")
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        if status is not None:
            tags[GIT_DIRTY_TAG] = "true" if status else "false"
    return tags


def source_digest(root: Path) -> str:
    """SHA-256 (16 hex digits) over the ``.py`` and ``.yaml`` files of the packages under
    ``root`` (``vitalgru`` and, where it is installed beside it, ``pipelines``), each with
    its path: the code that trained, also where there is no git."""
    h = hashlib.sha256()
    for name in _PACKAGES:
        pkg = root / name
        if not (pkg / "__init__.py").is_file():
            continue
        files = [f for ext in ("*.py", "*.yaml") for f in pkg.rglob(ext) if f.is_file()]
        for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(cwd: Path, *args: str) -> str | None:
    """``git -C cwd args`` output, stripped; None where git is missing or fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # status must not take the index lock
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True, text=True, timeout=20, env=env, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        logger.debug("git %s in %s: %s", " ".join(args), cwd, e)
        return None
    return out.stdout.strip() if out.returncode == 0 else None
