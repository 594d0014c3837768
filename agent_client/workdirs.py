"""Which working directories the agent may run Claude Code in."""

import os


class WorkdirRefused(ValueError):
    pass


def normalise_roots(roots):
    """Resolve the --root directories (symlinks included) once, at start."""
    resolved = []
    for root in roots or [os.path.expanduser("~")]:
        path = os.path.realpath(os.path.expanduser(root))
        if not os.path.isdir(path):
            raise WorkdirRefused(f"--root {root} is not a directory")
        resolved.append(path)
    return resolved


def within(real, base):
    """Whether real path `real` is `base` or lies under it (both resolved already)."""
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def resolve_workdir(path, roots):
    """The real path of `path` if it lies under one of `roots`; refused otherwise.

    The check uses the real path, so a symlink inside a root that points
    elsewhere is refused as well.
    """
    real, _ = confine(path, roots)
    if not os.path.isdir(real):
        raise WorkdirRefused(f"{path} is not a directory on this machine")
    return real


def confine(path, roots):
    """(real path of `path`, the root it lies under); WorkdirRefused if it lies under none.

    `path` need not exist.
    """
    expanded = os.path.expanduser(path)
    # A relative path would be taken from wherever the agent was started.
    if not os.path.isabs(expanded):
        raise WorkdirRefused(f"{path} is not an absolute path")
    try:
        real = os.path.realpath(expanded)
    except (ValueError, OSError) as error:  # a NUL byte, a symlink loop
        raise WorkdirRefused(f"{path} cannot be resolved: {error}") from None
    root = next((root for root in roots if within(real, root)), None)
    if root is None:
        raise WorkdirRefused(f"{path} is outside this agent's --root directories")
    return real, root
