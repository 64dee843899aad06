"""Run folders: what a command writes (marked as hsickit's, locked, built whole) and how training resumes.

A run folder holds ``config.json``, ``history.csv``, ``metrics.json``, the model, a model card
``README.md`` and ``plots/``, and the marker :data:`RUN_MARKER` that tells hsickit's folders from
anyone else's (only those are replaced with ``--overwrite``). A training command opens its folder
with :func:`start_training_run` (or checkpoints beside it with :func:`resumable_training`); the
same command, run again after an interruption, resumes from what was kept.

Examples
--------
>>> import tempfile
>>> from hsickit.core.runs import RunFolder, staged_folder
>>> out = Path(tempfile.mkdtemp()) / "run"
>>> with staged_folder(out, app="materials", command="train") as tmp:
...     _ = RunFolder(tmp).write_metrics({"mae": 0.3}, split="validation", n_samples=10)
>>> sorted(p.name for p in out.iterdir())
['.hsickit-run.json', 'metrics.json']
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from hsickit.core.errors import HsickitError
from hsickit.core.files import atomic_write, file_digest, jsonable, read_json, write_json
from hsickit.core.serialization import saved_params

__all__ = ["RUN_FORMAT", "RUN_MARKER", "TRAINING_MARKER", "RunFolder", "check_output_file", "check_output_folder",
           "check_run_app", "evaluation_folder", "finish_training_run", "fit_or_load", "lock_run", "mark_run",
           "open_output_folder", "read_run_marker", "resumable_training", "run_lock", "staged_folder",
           "start_training_run", "unfinished_runs", "unlock_run", "versions"]


#: Written into every folder hsickit creates for a run (training, fine-tuning, evaluation, demo):
#: the one sign that a folder is hsickit's own, so ``--overwrite`` may clear it. File names
#: such as ``config.json`` or ``training.json`` are too common to tell.
RUN_MARKER = ".hsickit-run.json"


#: Version of the run-folder layout written in :data:`RUN_MARKER`.
RUN_FORMAT = 1


def _hsickit_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("hsickit")
    except md.PackageNotFoundError:
        return "unknown"


def mark_run(path: str | os.PathLike, app: str, command: str) -> Path:
    """Write :data:`RUN_MARKER` into the folder ``path``: it holds a run of ``hsickit <app> <command>``.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = mark_run(folder, "materials", "train")
    >>> read_run_marker(folder)["app"]
    'materials'
    """
    return write_json(Path(path) / RUN_MARKER, {"hsickit_run": RUN_FORMAT, "app": app, "command": command,
                                                "hsickit": _hsickit_version()})


def read_run_marker(path: str | os.PathLike) -> dict | None:
    """The :data:`RUN_MARKER` of folder ``path`` (app, command, format), or None when it has none
    (or an unreadable one: such a folder is not treated as hsickit's)."""
    marker = Path(path) / RUN_MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "hsickit_run" in data else None


def check_run_app(path: str | os.PathLike, app: str, use: str = "") -> None:
    """Refuse a run folder whose marker says another application wrote it, naming that application.

    ``use``: the command that needs the run (for the message), e.g. ``"hsickit ecg predict"``.
    A folder without a marker (written before hsickit marked its runs) passes: its own files decide.
    """
    marker = read_run_marker(path)
    if marker is None or marker.get("app") in (None, app):
        return
    other, command = marker.get("app"), marker.get("command") or "train"
    raise HsickitError(f"{path} is a {other} run (written by `hsickit {other} {command}`), not a {app} run; "
                       f"use it with `hsickit {other} ...`, or give {use or 'this command'} the folder of "
                       f"`hsickit {app} train --out RUN`")


def _writable_ancestor(path: Path) -> None:
    """Refuse ``path`` up front when the nearest existing folder above it cannot be written."""
    probe = Path(os.path.abspath(path))
    if probe.is_file():  # an output file that exists: its folder decides
        probe = probe.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise HsickitError(f"cannot create {path}: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HsickitError(f"cannot write {path}: permission denied in {probe}; choose a folder you can write to")


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` as a Path when a run may be written there: new, empty, or (with ``overwrite``) a run folder.

    A run folder is one holding :data:`RUN_MARKER`. A finished run is refused unless ``overwrite``;
    any other non-empty folder is always refused and never deleted (a run written before hsickit
    marked its runs included: the message says how to remove it by hand).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HsickitError(f"--out {path} is a file; give a folder for the run")
    if path.is_dir() and any(path.iterdir()):
        if read_run_marker(path) is None:
            looks = [n for n in ("config.json", TRAINING_MARKER) if (path / n).exists()]
            if looks:
                raise HsickitError(
                    f"--out {path} holds {' and '.join(looks)} but no {RUN_MARKER}, so hsickit cannot tell it is "
                    "one of its runs (a run written by an older hsickit, or another program's files) and will "
                    f"neither replace nor resume it; if it is a run you no longer need, remove it by hand "
                    f"(rm -r {path}), or choose a new --out")
            raise HsickitError(f"--out {path} is not empty and holds no hsickit run; choose a new or empty folder")
        if not overwrite:
            raise HsickitError(f"{path} holds a finished run; pass --overwrite to replace it (the folder is cleared), "
                               "or choose a new --out")
    _writable_ancestor(path)
    return path


def check_output_file(path: str | os.PathLike, inputs: Sequence = (), overwrite: bool = False,
                      option: str = "-o/--output") -> Path:
    """``path`` as a Path when a command may write its output file there.

    Refused: a folder; one of the ``inputs`` (symbolic links resolved: writing there would destroy
    the data being read); an existing file unless ``overwrite``; a folder that cannot be written.

    >>> import tempfile
    >>> table = Path(tempfile.mkdtemp()) / "formulas.csv"
    >>> _ = table.write_text("formula\\nNaCl\\n")
    >>> check_output_file(table, inputs=[table], overwrite=True)
    Traceback (most recent call last):
    ...
    hsickit.core.errors.HsickitError: -o/--output ... is the input file ...; writing there would replace your data: choose another output file
    """
    path = Path(path)
    if path.is_dir():
        raise HsickitError(f"{option} {path} is a folder; give a file name, e.g. {path / 'predictions.csv'}")
    if path.exists():
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(source, path):
                raise HsickitError(f"{option} {path} is the input file {source}; writing there would replace "
                                   "your data: choose another output file")
        if not overwrite:
            raise HsickitError(f"{option} {path} exists; pass --overwrite to replace it, or choose another file")
    _writable_ancestor(path)
    return path


def open_output_folder(path: str | os.PathLike, app: str, command: str) -> "RunFolder":
    """The folder of a command's results (``evaluate``, ``matbench``, a demo), marked as hsickit's.

    Written into when it is new, empty, or holds an earlier result of the same command (its files
    are replaced); any other folder is refused, so a command never writes into a folder of
    someone else's files or into a training run.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HsickitError(f"--out {path} is a file; give a folder for the results")
    if path.is_dir() and any(p.name != RUN_MARKER for p in path.iterdir()):
        marker = read_run_marker(path)
        if marker is None:
            raise HsickitError(f"--out {path} is not empty and holds no hsickit results ({RUN_MARKER} missing); "
                               "choose a new or empty folder (an older hsickit's results there: remove them by hand, "
                               f"rm -r {path})")
        if (marker.get("app"), marker.get("command")) != (app, command):
            raise HsickitError(f"--out {path} holds a `hsickit {marker.get('app')} {marker.get('command')}` run; "
                               f"the results of `{app} {command}` go to a folder of their own: choose another --out")
    _writable_ancestor(path)
    run = RunFolder(path)
    mark_run(path, app, command)
    return run


_LOCKS: dict[str, list] = {}  # lock file -> [descriptor, depth]: this process's run-folder locks


def _lock_file(path: str | os.PathLike) -> Path:
    p = Path(os.path.abspath(path))
    return p.parent / f".{p.name}.lock"


def lock_run(path: str | os.PathLike) -> Path | None:
    """Take this process's advisory lock on run folder ``path`` (re-entrant); returns the lock file.

    The lock is ``fcntl.flock`` on ``.<name>.lock`` beside the folder, holding the owner's pid; it
    lasts until :func:`unlock_run` or the process's end (a killed process leaves no stale lock). A
    second writer gets an error naming the owner's pid. Under ``torchrun`` only rank 0 locks.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp()) / "run"
    >>> lock_run(run).name
    '.run.lock'
    >>> unlock_run(run)
    """
    from hsickit.core.distributed import is_main_process

    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        return None
    if not is_main_process():
        return None
    lock = _lock_file(path)
    held = _LOCKS.get(str(lock))
    if held is not None:
        held[1] += 1
        return lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HsickitError(f"{path} is being written by another hsickit process (pid {owner}; lock {lock}); "
                               "wait for it to finish, or stop it, then run the command again") from None
        try:  # the owner may have released and removed the file between our open and flock
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _LOCKS[str(lock)] = [fd, 1]
    return lock


def unlock_run(path: str | os.PathLike) -> None:
    """Release :func:`lock_run`'s lock on ``path`` (the lock file goes once the last holder releases)."""
    lock = _lock_file(path)
    held = _LOCKS.get(str(lock))
    if held is None:
        return
    held[1] -= 1
    if held[1] > 0:
        return
    del _LOCKS[str(lock)]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock)  # while still locked: a waiting process re-checks the inode
    os.close(held[0])


@contextlib.contextmanager
def run_lock(path: str | os.PathLike):
    """:func:`lock_run` for the duration of a block."""
    lock_run(path)
    try:
        yield
    finally:
        unlock_run(path)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, overwrite: bool = False, app: str | None = None,
                  command: str | None = None):
    """Build a folder in a temporary sibling that takes ``path``'s place only when the block succeeds.

    A failure removes the sibling and leaves ``path`` as it was, so no reader ever finds a
    half-written folder. An existing run folder at ``path`` is replaced only with ``overwrite``
    (:func:`check_output_folder`), under the folder's lock (:func:`lock_run`). With ``app``, the
    new folder is marked as a run of ``hsickit <app> <command>`` (:func:`mark_run`).
    Under ``torchrun`` only rank 0 writes, in ``path`` itself.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> with staged_folder(out) as tmp:
    ...     _ = write_json(tmp / "config.json", {}); out.exists()
    False
    >>> sorted(p.name for p in out.iterdir())
    ['config.json']
    """
    from hsickit.core.distributed import is_main_process

    if not is_main_process():
        yield check_output_folder(path, overwrite)
        return
    with run_lock(path):
        path = check_output_folder(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the run folder's mode
        try:
            if app is not None:
                mark_run(tmp, app, command or "")
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        check_output_folder(path, overwrite)  # what is there now (it may have changed meanwhile)
        old = tmp.with_suffix(".old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose numbers a run depends on."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("hsickit", "torch", "numpy", "scikit-learn", "wfdb", "pymatgen", "xarray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def evaluation_folder(run: str | os.PathLike, data: str | os.PathLike, split: str | None = None) -> Path:
    """``RUN/eval-<data file stem>[-<split>]``: where ``evaluate`` writes by default, so it never
    overwrites the run's own (validation) metrics.json and plots.

    >>> evaluation_folder("runs/a", "data/test.csv").as_posix(), evaluation_folder("runs/a", "all.csv", "test").as_posix()
    ('runs/a/eval-test', 'runs/a/eval-all-test')
    """
    name = Path(data).stem
    return Path(run) / (f"eval-{name}-{split}" if split else f"eval-{name}")


class RunFolder:
    """A folder of one training or evaluation run.

    Examples
    --------
    >>> import tempfile
    >>> run = RunFolder(tempfile.mkdtemp())
    >>> _ = run.write_metrics({"accuracy": 0.9, "n_samples": 10}, split="test")
    >>> run.read_json("metrics.json")["split"]
    'test'
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def plots(self) -> Path:
        p = self.path / "plots"
        p.mkdir(exist_ok=True)
        return p

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> dict:
        return read_json(self.path / name)

    def write_json(self, name: str, obj) -> Path:
        return write_json(self.path / name, obj)

    def write_config(self, config: dict) -> Path:
        return self.write_json("config.json", {**config, "versions": versions()})

    def write_history(self, history: list[dict], name: str = "history.csv") -> Path:
        keys: list[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        return atomic_write(self.path / name, buf.getvalue())

    def write_metrics(self, metrics: dict, split: str, n_samples: int | None = None, name: str = "metrics.json",
                      info: dict[str, str] | None = None) -> Path:
        """Flat JSON, metric name -> number (NaN -> null), plus ``n_samples``, ``split`` and the
        strings in ``info`` (what was scored: data folder, records)."""
        flat = {k: jsonable(v) for k, v in metrics.items()}
        n_samples = flat.pop("n_samples", None) if n_samples is None else n_samples
        if n_samples is None:
            raise HsickitError("write_metrics needs n_samples (as an argument or a key of the metrics)")
        bad = [k for k, v in flat.items() if not isinstance(v, (int, float, type(None)))]
        if bad:
            raise HsickitError(f"metrics must be flat name -> number; {bad} are not numbers")
        return self.write_json(name, {**flat, "n_samples": int(n_samples), "split": split, **{k: str(v) for k, v in (info or {}).items()}})

    def write_model_card(self, title: str, sections: dict[str, str], command: str | None = None) -> Path:
        lines = [f"# {title}", "", f"Written {_dt.datetime.now().isoformat(timespec='seconds')} by hsickit.", ""]
        cmd = command or " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])
        lines += ["## Command", "", f"    {cmd}", ""]
        for head, body in sections.items():
            lines += [f"## {head}", "", str(body).rstrip(), ""]
        lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in versions().items()] + [""]
        return atomic_write(self.path / "README.md", "\n".join(lines))


#: Written when a training command starts, removed when its run folder is complete: a folder
#: holding it is an unfinished run, which the same command resumes.
TRAINING_MARKER = "training.json"


def start_training_run(path: str | os.PathLike, settings: dict, inputs: Sequence = (),
                       overwrite: bool = False, app: str | None = None,
                       command: str = "train") -> tuple[RunFolder, bool]:
    """Open the run folder of a training command; returns ``(run, resumed)``.

    Call it once the input has been read and validated. The folder is locked for this process
    (:func:`lock_run`; a second writer is refused, naming this one's pid) until
    :func:`finish_training_run`. A new or empty folder starts a run, marked as hsickit's
    (:func:`mark_run`, as ``hsickit <app> <command>``). An unfinished run (holding
    :data:`TRAINING_MARKER` and :data:`RUN_MARKER`) resumes when ``settings`` and the checksums
    of the ``inputs`` files match those it was started with. A finished run is refused unless
    ``overwrite``, which clears it first; a non-empty folder without :data:`RUN_MARKER` is
    always refused, never cleared.
    """
    path = Path(path)
    lock_run(path)
    try:
        run, resumed = _start_training_run(path, settings, inputs, overwrite, app, command)
    except BaseException:
        unlock_run(path)
        raise
    _unfinished.add(Path(os.path.abspath(path)))
    return run, resumed


#: Training runs this process started and has not finished (:func:`unfinished_runs`).
_unfinished: set[Path] = set()


def unfinished_runs() -> list[Path]:
    """The training runs this process started that are still unfinished on disk (their
    :data:`TRAINING_MARKER` is there): after an interruption, the same command resumes them."""
    return sorted(p for p in _unfinished if (p / TRAINING_MARKER).is_file())


def _start_training_run(path: Path, settings: dict, inputs: Sequence, overwrite: bool, app: str | None,
                        command: str) -> tuple[RunFolder, bool]:
    from hsickit.core.distributed import is_main_process

    record = jsonable({"hsickit_run": RUN_FORMAT, "settings": settings,
                        "inputs": {str(p): file_digest(p) for p in inputs if p is not None}})
    marker = path / TRAINING_MARKER
    # hsickit's own: marked, or (between the two writes below, as another torchrun rank may see it)
    # a training record that says so
    ours = read_run_marker(path) is not None or _own_training_record(marker)
    if marker.exists() and ours and not overwrite:
        old = read_json(marker)
        if not (isinstance(old, dict) and isinstance(old.get("settings"), dict) and isinstance(old.get("inputs"), dict)):
            raise HsickitError(f"{marker} is not the record of an unfinished hsickit run (edited or damaged); "
                               "pass --overwrite to start afresh, or choose a new --out")
        if old != record:
            diff = sorted(k for k in {**old["settings"], **record["settings"]}
                          if old["settings"].get(k) != record["settings"].get(k))
            diff += [f"{p} (its contents)" for p in record["inputs"] if old["inputs"].get(p) != record["inputs"][p]]
            raise HsickitError(f"{path} holds an unfinished run started with other settings or data ({', '.join(diff)}); "
                               "rerun the same command to resume it, or pass --overwrite to start afresh")
        for tmp in path.rglob(".*.tmp"):  # atomic_write's temporaries, left by a killed process
            tmp.unlink()
        return RunFolder(path), True
    if not (marker.exists() and ours):
        check_output_folder(path, overwrite)  # refuses any non-empty folder that is not hsickit's
    if overwrite and path.exists() and ours and is_main_process():
        shutil.rmtree(path)
    run = RunFolder(path)
    write_json(marker, record)  # first: it names the folder as hsickit's on its own
    mark_run(path, app or "", command)
    return run, False


def _own_training_record(marker: Path) -> bool:
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("hsickit_run") is not None
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def resumable_training(estimator, path: str | os.PathLike, settings: dict, inputs: Sequence = (), overwrite: bool = False,
                       verbose: int = 1, app: str | None = None, command: str = "train"):
    """Checkpoint ``estimator`` (its ``checkpoint_dir``, set for the block) while a training command
    that writes its run folder ``path`` whole at the end (:func:`staged_folder`) fits it.

    The checkpoints live beside ``path``, in the unfinished run ``.<name>.training``
    (:func:`start_training_run`: the same ``settings``, ``estimator`` parameters but its ``device``, and
    ``inputs`` resume, ``overwrite`` starts afresh), so ``path`` is never half-written. When the block
    fails, the checkpoints already written stay and the same command resumes from them; when
    it succeeds, they go. ``path`` is locked (:func:`lock_run`) for the whole block.
    """
    path = Path(os.path.abspath(path))  # "." or "run/" name their folder
    home = path.parent / f".{path.name}.training"
    with run_lock(path):  # held until the run folder is written (staged_folder takes it again)
        # where it trains is not what it trains: a run started on a GPU resumes on the CPU (as plants' and materials' do)
        _, resumed = start_training_run(home, {**saved_params(estimator, leave_out=["verbose", "device"]), **settings}, inputs,
                                        overwrite, app=app, command=command)
        checkpoints = home / "checkpoints"
        if resumed and verbose:
            print(f"resuming the unfinished training kept in {home}")
        try:
            estimator.set_params(checkpoint_dir=checkpoints)
            yield
        except BaseException as err:
            if checkpoints.exists() and any(checkpoints.iterdir()):
                if isinstance(err, KeyboardInterrupt):  # the command line says it once (hsickit.core.cli)
                    if hasattr(err, "add_note"):
                        err.add_note(f"what it had trained is kept in {home}: run the same command again to resume")
                elif verbose:
                    print(f"training stopped; what it had trained is kept in {home}: run the same command again to resume")
            else:
                shutil.rmtree(home, ignore_errors=True)
            raise
        finally:
            estimator.set_params(checkpoint_dir=None)
            unlock_run(home)
        shutil.rmtree(home, ignore_errors=True)


def fit_or_load(estimator, folder: str | os.PathLike | None, fit, verbose: int = 0):
    """``fit(estimator)``, saved in ``folder``; if an earlier, interrupted run saved it there, loaded instead.

    ``estimator`` takes a ``checkpoint_dir`` (checkpointed every epoch in ``folder``'s sibling
    ``<name>.training``, from which an interrupted fit resumes) and has ``save`` and a
    ``load`` classmethod. ``folder`` None: just ``fit(estimator)``.
    """
    from hsickit.core.progress import resolve_verbose

    if folder is None:
        return fit(estimator)
    folder = Path(folder)
    if folder.exists():  # staged: present only once saved whole
        if resolve_verbose(verbose):
            print(f"{folder.name}: trained before the run was interrupted; loaded from {folder}")
        return type(estimator).load(folder)
    training = folder.with_name(folder.name + ".training")
    fitted = fit(estimator.set_params(checkpoint_dir=training))
    with staged_folder(folder) as tmp:
        fitted.set_params(checkpoint_dir=None).save(tmp)
    shutil.rmtree(training, ignore_errors=True)
    return fitted


def finish_training_run(run: RunFolder) -> None:
    """Mark ``run`` complete (remove :data:`TRAINING_MARKER`) and release its lock; call it after its last
    output is written."""
    (run / TRAINING_MARKER).unlink(missing_ok=True)
    _unfinished.discard(Path(os.path.abspath(run.path)))
    unlock_run(run.path)
