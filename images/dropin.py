"""Install the drop-in plugins mounted at $EKUIPER_DROPIN_PLUGINS before eKuiper boots.

The image's entrypoint runs this at every boot, as the kuiper user, from a read-only
mount. Every folder ``<name>/`` holding ``<name>.json`` (language, an executable inside
the folder) is copied to ``$KUIPER_HOME/plugins/portable/<name>``, and the metadata files
of the symbols it declares (``sources/<sym>.yaml|json``, ``sinks/<sym>.json``,
``functions/<sym>.json``) to ``etc/``, as eKuiper's REST install would. Plugins this
script installed earlier whose folder is gone are removed again: a manifest beside
``portable/`` records each plugin it installed and the ``etc/`` files it wrote.

Nothing here may keep eKuiper from starting. Each folder is checked and installed on its
own: copied aside, then renamed into place, so no half-copied folder is ever left. One
that cannot be installed is reported on one line and skipped (a copy installed at an
earlier boot stays as it was); symbolic links leading out of the mount are refused, and
no file in ``etc/`` that this script did not write for that plugin is replaced. The
program exits 0 whatever happens.

It runs with the image's Python, beside the SDK installed from the same checkout, and
reads the symbol kinds (descriptor keys, metadata folders) from the SDK's table.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple, Optional

try:
    from ekuiper._kinds import KINDS as SYMBOL_KINDS
    from ekuiper._kinds import SOURCE
except ImportError as exc:  # only a broken image lacks the SDK: eKuiper must start anyway
    print(f"dropin: cannot import the SDK ({exc}); starting without drop-in plugins; "
          "install ekuiper-plugin-sdk into this Python", file=sys.stderr, flush=True)
    sys.exit(0)

# The plugin and symbol name rule of `ekuiper-plugin validate`: the names end up in SQL,
# socket file names and paths. Whole-string, so a trailing newline does not pass.
NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
# The descriptor keys, which are also the folders of the symbols' metadata files.
KINDS = tuple(kind.plural for kind in SYMBOL_KINDS)
# A source's configuration (.yaml) goes to etc/ beside the metadata, as eKuiper's install does.
META_EXTENSIONS = {kind: (".yaml", ".json") if kind == SOURCE.plural else (".json",)
                   for kind in KINDS}
MAX_DESCRIPTOR_BYTES = 1 << 20
# Files and folders one plugin may hold: links inside the mount can multiply a tree.
MAX_ENTRIES = 200_000
# How many of a folder's problems its skip line names.
MAX_PROBLEMS_SHOWN = 5
MANIFEST_NAME = ".dropin-installed.json"
# Beside portable/ (eKuiper takes every folder in portable/ for a plugin): copies being
# made and folders being removed, on the same file system so renames are atomic.
WORK_NAME = ".dropin-work"
ETC_TEMP_RE = re.compile(r"\A\.dropin-.*\.tmp\Z")

# etc/ files a plugin owns, relative to etc/; None: installed by an older version of this
# script, which did not record them (the files of the symbols it declares are its own).
Owned = Optional[list[str]]


def say(message: str) -> None:
    """One line on stderr; names are repr()'d, so only our own text could break lines."""
    text = message.replace("\r", "\\r").replace("\n", "\\n")
    try:
        print(f"dropin: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # no stderr: nothing to tell, and eKuiper must start anyway


class Skip(Exception):
    """A folder that cannot be installed; the arguments are what is wrong with it."""


# -- pure checks --------------------------------------------------------------------------

class Descriptor(NamedTuple):
    language: str
    executable: str
    symbols: dict[str, list[str]]


def name_problem(name: str) -> str | None:
    """What is wrong with a folder name as a plugin name, or None."""
    if NAME_RE.match(name):
        return None
    return ("not a plugin name; rename the folder to letters, digits and underscores, not "
            "starting with a digit")


def check_descriptor(name: str, raw: bytes) -> tuple[Descriptor | None, list[str]]:
    """Parse and check the bytes of ``<name>.json``: (descriptor, []) or (None, problems)."""
    label = f"{name}.json"
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        return None, [f"{label} is larger than {MAX_DESCRIPTOR_BYTES} bytes; a descriptor "
                      "names the language, the executable and the symbols"]
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [f"{label} is not UTF-8 text; save it as UTF-8"]
    except RecursionError:
        return None, [f"{label} is nested too deeply to read"]
    except ValueError as exc:
        return None, [f"{label} is not valid JSON ({exc})"]
    if not isinstance(value, dict):
        return None, [f"{label} must hold a JSON object"]
    found = []
    language = value.get("language")
    if language not in ("python", "go"):
        found.append(f'"language" is {_short(language)}; use "python" (or "go")')
    executable = value.get("executable")
    if not isinstance(executable, str) or not executable:
        found.append('"executable" is missing; name the main program, e.g. "main.py"')
    else:
        found.extend(executable_problems(executable))
    symbols: dict[str, list[str]] = {}
    for kind in KINDS:
        listed = value.get(kind, [])
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            found.append(f'"{kind}" must be a list of symbol names')
            continue
        bad = [s for s in listed if not NAME_RE.match(s)]
        if bad:
            found.append(f'"{kind}" holds {_short(bad[0])}, not a symbol name; use letters, '
                         "digits and underscores, not starting with a digit")
        symbols[kind] = list(dict.fromkeys(listed))
    if found:
        return None, found
    assert isinstance(language, str) and isinstance(executable, str)
    return Descriptor(language, executable, symbols), []


def executable_problems(executable: str) -> list[str]:
    """What is wrong with the descriptor's executable as a path inside the folder."""
    # eKuiper joins the executable to the plugin folder: it must stay inside it.
    if "\x00" in executable or "\\" in executable:
        return [f'"executable" {_short(executable)} is not a file name; name a file in the '
                'folder, e.g. "main.py"']
    normal = posixpath.normpath(executable)
    if posixpath.isabs(executable) or normal == ".." or normal.startswith("../"):
        return [f'"executable" {_short(executable)} is outside the plugin folder; name a '
                'file in it, e.g. "main.py"']
    return []


def meta_files(descriptor: Descriptor) -> list[str]:
    """The metadata files the declared symbols may have, relative to the folder and etc/."""
    return [f"{kind}/{symbol}{ext}" for kind in KINDS for symbol in descriptor.symbols[kind]
            for ext in META_EXTENSIONS[kind]]


def is_meta_path(rel: str) -> bool:
    """Whether ``rel`` is a path this script may write (or remove) under etc/."""
    kind, sep, file = rel.partition("/")
    if not sep or kind not in META_EXTENSIONS:
        return False
    return any(file.endswith(ext) and NAME_RE.match(file[:-len(ext)])
               for ext in META_EXTENSIONS[kind])


def parse_manifest(text: str) -> tuple[dict[str, Owned], list[str]]:
    """The plugins the manifest records and what was wrong with it; entries that are not
    safe plugin names or etc/ paths are left out, so nothing else is ever removed."""
    try:
        value = json.loads(text)
    except RecursionError:
        return {}, ["the manifest is nested too deeply to read"]
    except ValueError as exc:
        return {}, [f"the manifest is not valid JSON ({exc})"]
    found: list[str] = []
    entries: dict[str, Owned] = {}
    if isinstance(value, list):  # an older version of this script: names only
        for name in value:
            if isinstance(name, str) and NAME_RE.match(name):
                entries[name] = None
            else:
                found.append(f"ignored the manifest entry {_short(name)}: not a plugin name")
        return entries, found
    plugins = value.get("plugins") if isinstance(value, dict) else None
    if not isinstance(plugins, dict):
        return {}, ['the manifest is not {"plugins": {...}}']
    for name, entry in plugins.items():
        if not NAME_RE.match(name):
            found.append(f"ignored the manifest entry {_short(name)}: not a plugin name")
            continue
        etc = entry.get("etc") if isinstance(entry, dict) else []
        if etc is None:
            entries[name] = None
            continue
        if not isinstance(etc, list):
            found.append(f"ignored the etc files of {name!r} in the manifest: not a list")
            etc = []
        kept = [rel for rel in etc if isinstance(rel, str) and is_meta_path(rel)]
        found.extend(f"ignored the etc file {_short(rel)} of {name!r} in the manifest: not a "
                     "metadata file" for rel in etc if rel not in kept)
        entries[name] = list(dict.fromkeys(kept))
    return entries, found


def render_manifest(entries: dict[str, Owned]) -> str:
    return json.dumps({"plugins": {name: {"etc": entries[name]} for name in sorted(entries)}},
                      indent=1)


def _short(value: Any) -> str:
    """repr() of a value from a descriptor or manifest, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# -- reading a mounted folder -------------------------------------------------------------

class Tree(NamedTuple):
    """What copying a folder makes: folders (parents first) and files, with where each
    file's bytes really are (symbolic links inside the mount are followed)."""

    root: str
    dirs: list[str]
    files: dict[str, str]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _resolve(path: str, rel: str, mount: str) -> str:
    """Where a symbolic link leads; Skip when nowhere, in a loop, or out of the mount."""
    try:
        target = str(Path(path).resolve(strict=True))
    except FileNotFoundError:
        raise Skip(f"{rel} is a symbolic link to nothing ({_readlink(path)!r})") from None
    except (RuntimeError, OSError):  # Python < 3.13 says RuntimeError for a loop
        raise Skip(f"{rel} is a symbolic link that loops") from None
    if not _inside(target, mount):
        raise Skip(f"{rel} is a symbolic link leading out of the mounted folder (to "
                   f"{target!r}); copy what it points to into the folder instead")
    return target


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _unreadable(rel: str, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return (f"cannot read {rel} as uid {os.getuid()} (permission denied); make the "
                "folder readable: chmod -R a+rX")
    return f"cannot read {rel} ({exc.strerror or exc})"


def plan_tree(root: str, name: str, mount: str) -> Tree:
    """Everything copying the folder ``name`` (really at ``root``, inside ``mount``)
    involves; Skip with every problem found. Reads names and file types, no content."""
    problems: list[str] = []
    dirs: list[str] = []
    files: dict[str, str] = {}
    # Iterative: a deep tree must not exhaust the recursion limit.
    stack = [(name, "", root, (root,))]
    while stack:
        shown, rel, real, ancestors = stack.pop()
        try:
            with os.scandir(real) as listing:
                children = sorted(entry.name for entry in listing)
        except OSError as exc:
            problems.append(_unreadable(shown, exc))
            continue
        for child in children:
            if child == "__pycache__" or child.endswith(".pyc"):
                continue
            child_rel = f"{rel}/{child}" if rel else child
            child_shown = f"{shown}/{child}"
            path = os.path.join(real, child)
            try:
                target = _resolve(path, child_shown, mount) if os.path.islink(path) else path
                mode = os.stat(target).st_mode
            except Skip as skip:
                problems.extend(skip.args)
                continue
            except OSError as exc:
                problems.append(_unreadable(child_shown, exc))
                continue
            if len(dirs) + len(files) >= MAX_ENTRIES:
                raise Skip(f"holds more than {MAX_ENTRIES} files and folders")
            if stat.S_ISDIR(mode):
                if target in ancestors:
                    problems.append(f"{_short(child_shown)} is a symbolic link to a folder "
                                    "that holds it (a loop)")
                    continue
                dirs.append(child_rel)
                stack.append((child_shown, child_rel, target, (*ancestors, target)))
            elif stat.S_ISREG(mode):
                files[child_rel] = target
            else:  # reading a pipe would block the boot; devices and sockets are no files
                problems.append(f"{_short(child_shown)} is not a file or folder (a pipe, "
                                "socket or device); remove it")
    if problems:
        raise Skip(*problems)
    return Tree(root, dirs, files)


def read_descriptor(name: str, tree: Tree) -> Descriptor:
    real = tree.files.get(f"{name}.json")
    if real is None:
        raise Skip(f"no {name}/{name}.json; a plugin folder holds a descriptor named after it")
    try:
        with open(real, "rb") as fh:
            raw = fh.read(MAX_DESCRIPTOR_BYTES + 1)
    except OSError as exc:
        raise Skip(_unreadable(f"{name}/{name}.json", exc)) from None
    descriptor, found = check_descriptor(name, raw)
    if descriptor is None:
        raise Skip(*found)
    executable = posixpath.normpath(descriptor.executable)
    shown = _short(descriptor.executable)
    try:
        # Resolved through any link inside the folder, it must still be a file in it.
        real_exe = str(Path(tree.root, executable).resolve(strict=True))
    except (OSError, RuntimeError, ValueError):
        raise Skip(f'"executable" {shown} is not in the folder') from None
    if not _inside(real_exe, tree.root):
        raise Skip(f'"executable" {shown} leads out of the plugin folder (to '
                   f"{real_exe!r}); put the program in the folder")
    if executable not in tree.files:
        raise Skip(f'"executable" {shown} is not a file in the folder')
    return descriptor


# -- installing -----------------------------------------------------------------------------

class Layout(NamedTuple):
    source: Path
    home: Path

    @property
    def portable(self) -> Path:
        return self.home / "plugins" / "portable"

    @property
    def manifest(self) -> Path:
        return self.home / "plugins" / MANIFEST_NAME

    @property
    def work(self) -> Path:
        return self.home / "plugins" / WORK_NAME

    @property
    def etc(self) -> Path:
        return self.home / "etc"


class Dropin:
    """One boot's run: read the manifest, remove what is gone, install what is there,
    write the manifest after every change (so a crash loses no record)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.installed: dict[str, Owned] = {}

    def run(self) -> None:
        layout = self.layout
        # kuiperd 2.4 panics at boot when a plugins/ kind folder is missing, as on an empty
        # volume (Kubernetes never fills one from the image).
        for kind in (*KINDS, "portable", "wasm"):
            (layout.home / "plugins" / kind).mkdir(parents=True, exist_ok=True)
        self.installed = self._read_manifest()
        try:
            self._clean_leftovers()
            names = self._list_source()
            if names is not None:
                for gone in sorted(set(self.installed) - set(names)):
                    self._guarded(gone, self._remove)
                for name in names:
                    self._guarded(name, self._consider)
        finally:
            self._write_manifest()
            _rmtree(layout.work)

    def _guarded(self, name: str, step: Any) -> None:
        try:
            step(name)
        except Skip as skip:
            reasons = list(skip.args)
            shown = reasons[:MAX_PROBLEMS_SHOWN]
            if len(reasons) > len(shown):
                shown.append(f"and {len(reasons) - len(shown)} more")
            kept = ("; the copy installed at an earlier boot stays"
                    if name in self.installed else "")
            say(f"skipped {name!r}: " + "; ".join(shown) + kept)
        except Exception as exc:  # one folder's surprise must not cost the others
            say(f"skipped {name!r}: {type(exc).__name__}: {exc}")
        finally:
            _rmtree(self.layout.work / name)

    # -- the manifest and what an interrupted run left --------------------------------

    def _read_manifest(self) -> dict[str, Owned]:
        try:
            text = self.layout.manifest.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            say(f"cannot read the manifest {self.layout.manifest} ({exc.strerror or exc}); "
                "no plugin installed earlier is removed this time")
            return {}
        entries, found = parse_manifest(text)
        for problem in found:
            say(problem)
        return entries

    def _write_manifest(self) -> None:
        manifest = self.layout.manifest
        temp = manifest.with_name(manifest.name + ".tmp")
        try:
            temp.write_text(render_manifest(self.installed), encoding="utf-8")
            os.replace(temp, manifest)
        except OSError as exc:
            say(f"cannot write the manifest {manifest} ({exc.strerror or exc}); plugins "
                "installed now are not removed when their folder goes")

    def _clean_leftovers(self) -> None:
        _rmtree(self.layout.work)
        self.layout.work.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            try:
                with os.scandir(self.layout.etc / kind) as listing:
                    leftovers = [e.path for e in listing
                                 if ETC_TEMP_RE.match(e.name) and not e.is_dir()]
            except OSError:
                continue
            for path in leftovers:
                _unlink(path)

    def _list_source(self) -> list[str] | None:
        """The folder names to consider; None when the mount cannot be read (then
        nothing installed earlier is removed)."""
        source = self.layout.source
        try:
            with os.scandir(source) as listing:
                entries = sorted(listing, key=lambda e: e.name)
                # Loose files beside the plugin folders (a README) are not plugins.
                names = [e.name for e in entries
                         if not e.name.startswith((".", "_")) and not _is_plain_file(e)]
        except FileNotFoundError:
            say(f"{source} is not mounted; no drop-in plugins to install")
            return []
        except OSError as exc:
            say(_unreadable(str(source), exc) + " — starting without drop-in plugins")
            return None
        return names

    # -- one folder -----------------------------------------------------------------

    def _consider(self, name: str) -> None:
        problem = name_problem(name)
        if problem is not None:
            raise Skip(problem)
        mount = str(self.layout.source.resolve())
        top = os.path.join(mount, name)
        root = _resolve(top, name, mount) if os.path.islink(top) else top
        if not os.path.isdir(root):
            raise Skip("not a folder; a plugin is a folder named after it")
        tree = plan_tree(root, name, mount)
        descriptor = read_descriptor(name, tree)
        self._install(name, descriptor, tree)

    def _install(self, name: str, descriptor: Descriptor, tree: Tree) -> None:
        layout = self.layout
        staging = layout.work / name
        copy = staging / "new"
        copy.mkdir(parents=True)
        for rel in tree.dirs:
            (copy / rel).mkdir()
        for rel, real in tree.files.items():
            try:
                shutil.copy2(real, copy / rel)
            except OSError as exc:
                raise Skip(_unreadable(f"{name}/{rel}", exc)) from None
        writes, owned = self._plan_etc(name, descriptor, tree)
        temps: list[tuple[Path, Path]] = []
        try:
            for rel in writes:
                final = layout.etc / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                temps.append((final.with_name(f".dropin-{final.name}.tmp"), final))
                shutil.copyfile(tree.files[rel], temps[-1][0])
            self._swap_in(copy, layout.portable / name, staging / "old")
        except BaseException:
            for temp, _ in temps:
                _unlink(temp)
            raise
        for temp, final in temps:
            os.replace(temp, final)
        previous = self.installed.get(name)
        # Files an older version wrote are not known for sure: those are left.
        for rel in sorted(set(previous or []) - set(owned)):
            _unlink(layout.etc / rel)
        self.installed[name] = owned
        self._write_manifest()
        declared = set(meta_files(descriptor))
        for rel in sorted(tree.files):
            kind, _, file = rel.partition("/")
            if kind in KINDS and file and "/" not in file and rel not in declared:
                say(f"plugin {name!r}: {rel} is not copied to etc/; it is no metadata file "
                    f"of a symbol {name}.json declares")
        summary = ", ".join(f"{kind}: {', '.join(descriptor.symbols[kind]) or '-'}"
                            for kind in KINDS)
        say(f"installed plugin {name!r} ({descriptor.language}; {summary})")

    @staticmethod
    def _swap_in(copy: Path, target: Path, aside: Path) -> None:
        """Rename the new copy into place. A folder cannot be renamed over another: the
        previous copy goes aside first, and comes back if the new one cannot go in."""
        moved = False
        if os.path.lexists(target):
            if target.is_symlink() or not target.is_dir():
                target.unlink()
            else:
                os.rename(target, aside)
                moved = True
        try:
            os.rename(copy, target)
        except BaseException:
            if moved:
                os.rename(aside, target)
            raise

    def _owned(self, name: str, descriptor: Descriptor) -> list[str]:
        owned = self.installed.get(name, [])
        if owned is None:  # recorded by an older version: its symbols' files are its own
            return [rel for rel in meta_files(descriptor)
                    if (self.layout.etc / rel).is_file()]
        return owned

    def _plan_etc(self, name: str, descriptor: Descriptor,
                  tree: Tree) -> tuple[list[str], list[str]]:
        """(files to write into etc/, files the plugin owns after); Skip on a conflict."""
        own = set(self._owned(name, descriptor))
        others = {rel: other for other, files in self.installed.items()
                  if other != name and files for rel in files}
        writes, owned, conflicts = [], [], []
        for rel in meta_files(descriptor):
            if rel not in tree.files:
                continue
            target = self.layout.etc / rel
            if rel in others:
                conflicts.append(f"etc/{rel} belongs to drop-in plugin {others[rel]!r}; "
                                 "two plugins cannot declare the same symbol")
            elif rel in own or not os.path.lexists(target):
                writes.append(rel)
                owned.append(rel)
            elif target.is_file() and not target.is_symlink() \
                    and _same_bytes(target, tree.files[rel]):
                continue  # already there as it would be: leave it, and it is not ours
            else:
                conflicts.append(f"etc/{rel} already exists and was not installed for this "
                                 "plugin (it is eKuiper's own or another plugin's); rename "
                                 "the symbol, or remove that file")
        if conflicts:
            raise Skip(*conflicts)
        return writes, owned

    def _remove(self, name: str) -> None:
        owned = self.installed[name]
        target = self.layout.portable / name
        if target.is_symlink() or (os.path.lexists(target) and not target.is_dir()):
            say(f"left {target}: it is not the folder this script installed")
        elif target.exists():
            aside = self.layout.work / name / "gone"
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, aside)  # out of eKuiper's sight at once, deleted after
        for rel in owned or []:
            _unlink(self.layout.etc / rel)
        del self.installed[name]
        self._write_manifest()
        say(f"removed plugin {name!r}: its folder is no longer in {self.layout.source}")


def _is_plain_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _same_bytes(a: Path, b: str) -> bool:
    try:
        if a.stat().st_size != os.stat(b).st_size:
            return False
        return a.read_bytes() == Path(b).read_bytes()
    except OSError:
        return False


def _rmtree(path: Path) -> None:
    """Remove a folder of ours, also when a copy made it read-only; never raises."""
    def make_writable(_fn: Any, failed: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)
        except OSError:
            pass

    try:
        if os.path.islink(path):  # not ours to follow: a link is only unlinked
            os.unlink(path)
            return
        if not os.path.lexists(path):
            return
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable)
        else:
            shutil.rmtree(path, onerror=make_writable)
    except OSError:
        pass


def _unlink(path: str | Path) -> None:
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    except FileNotFoundError:
        pass


def main() -> int:
    """Always 0: eKuiper starts whatever this run met."""
    try:
        layout = Layout(Path(os.environ.get("EKUIPER_DROPIN_PLUGINS", "/opt/ekuiper/plugins")),
                        Path(os.environ.get("KUIPER_HOME", "/kuiper")))
        Dropin(layout).run()
    except BaseException as exc:  # nothing here may keep eKuiper down
        say(f"stopped early ({type(exc).__name__}: {exc}); eKuiper starts with the plugins "
            "installed so far")
    return 0


if __name__ == "__main__":
    sys.exit(main())
