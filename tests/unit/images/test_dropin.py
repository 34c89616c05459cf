"""images/dropin.py: one bad drop-in folder never keeps eKuiper from starting.

The program runs as it does in the container: a separate process, the mount and
KUIPER_HOME from the environment, file modes honoured (root runs it without the
capabilities that bypass them, as the container's uid 1001 has none).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._cli.validate import NAME_RE
from tests.conftest import REPO, skip_or_fail

DROPIN = REPO / "images" / "dropin.py"
ENTRYPOINT = REPO / "images" / "docker-entrypoint.sh"

_spec = importlib.util.spec_from_file_location("dropin", DROPIN)
assert _spec is not None and _spec.loader is not None
dropin: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dropin)


def _as_container_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_or_fail("as root, setpriv is needed to run dropin.py with file modes honoured")
    return [str(setpriv), "--bounding-set=-dac_override,-dac_read_search"]


@dataclass
class Boot:
    code: int
    lines: list[str]

    def line(self, start: str) -> str:
        """The one output line starting with ``dropin: <start>``."""
        found = [line for line in self.lines if line.startswith(f"dropin: {start}")]
        assert len(found) == 1, f"no single line starting {start!r} in {self.lines}"
        return found[0]


@dataclass
class Stage:
    """A read-only-style mount of plugin folders and a KUIPER_HOME, as in the image."""

    mount: Path
    home: Path

    def plugin(self, name: str, *, functions: tuple[str, ...] = (), sources: tuple[str, ...] = (),
               executable: str | None = None, **descriptor: Any) -> Path:
        folder = self.mount / name
        folder.mkdir()
        main = f"{name}.py"
        (folder / main).write_text("print('hello')\n")
        (folder / f"{name}.json").write_text(json.dumps({
            "version": "v1", "language": "python", "executable": executable or main,
            "sources": list(sources), "sinks": [], "functions": list(functions),
            **descriptor}))
        for symbol in functions:
            (folder / "functions").mkdir(exist_ok=True)
            (folder / "functions" / f"{symbol}.json").write_text(f'{{"about": "{name}"}}')
        for symbol in sources:
            (folder / "sources").mkdir(exist_ok=True)
            (folder / "sources" / f"{symbol}.yaml").write_text(f"default: {{by: {name}}}\n")
        return folder

    def boot(self, env: dict[str, str] | None = None) -> Boot:
        done = subprocess.run(
            [*_as_container_user(), sys.executable, str(DROPIN)],
            env={"PATH": os.environ.get("PATH", ""), "EKUIPER_DROPIN_PLUGINS": str(self.mount),
                 "KUIPER_HOME": str(self.home), **(env or {})},
            capture_output=True, text=True, errors="replace", timeout=60)
        return Boot(done.returncode, done.stderr.splitlines())

    @property
    def portable(self) -> Path:
        return self.home / "plugins" / "portable"

    def installed(self) -> list[str]:
        return sorted(p.name for p in self.portable.iterdir())

    def manifest(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            (self.home / "plugins" / ".dropin-installed.json").read_text())
        return value["plugins"]

    def etc(self, rel: str) -> str:
        return (self.home / "etc" / rel).read_text()


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    """An empty mount and KUIPER_HOME; the good plugin 'good' is in the mount."""
    mount, home = tmp_path / "mount", tmp_path / "kuiper"
    mount.mkdir()
    (home / "plugins" / "portable").mkdir(parents=True)
    for kind in ("sources", "sinks", "functions"):
        (home / "etc" / kind).mkdir(parents=True)
    s = Stage(mount, home)
    s.plugin("good", functions=("hello",))
    return s


@pytest.fixture(autouse=True)
def _restore_modes(tmp_path: Path) -> Any:
    # Tests make files unreadable; pytest must still be able to remove them.
    yield
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755)


def assert_only_good_installed(stage: Stage, boot: Boot) -> None:
    assert boot.code == 0, boot.lines
    assert stage.installed() == ["good"]
    assert stage.etc("functions/hello.json") == '{"about": "good"}'
    assert boot.line("installed plugin 'good'")
    assert not (stage.home / "plugins" / ".dropin-work").exists()


# -- links ------------------------------------------------------------------------------------

def test_dangling_symlink_skips_its_folder(stage: Stage) -> None:
    """A link to nothing inside a folder skips that folder, naming the link."""
    stage.plugin("bad")
    (stage.mount / "bad" / "lib.py").symlink_to(stage.mount / "bad" / "gone.py")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'").endswith(
        f"bad/lib.py is a symbolic link to nothing ({str(stage.mount / 'bad' / 'gone.py')!r})")


def test_looping_symlink_skips_its_folder(stage: Stage) -> None:
    """Two links pointing at each other skip their folder, naming the loop."""
    bad = stage.plugin("bad")
    (bad / "a").symlink_to(bad / "b")
    (bad / "b").symlink_to(bad / "a")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == ("dropin: skipped 'bad': bad/a is a symbolic link "
                                          "that loops; bad/b is a symbolic link that loops")


@pytest.mark.parametrize("target", ["nowhere", "self"])
def test_plugin_folder_that_is_a_broken_link_is_skipped(stage: Stage, target: str) -> None:
    """A plugin folder that is itself a dangling or looping link is skipped."""
    link = stage.mount / "bad"
    link.symlink_to(stage.mount / "nowhere" if target == "nowhere" else link)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'").startswith("dropin: skipped 'bad': bad is a symbolic link")


def test_link_to_a_folder_holding_it_is_refused(stage: Stage) -> None:
    """A link to an enclosing folder (which would copy forever) skips its folder."""
    bad = stage.plugin("bad")
    (bad / "sub").mkdir()
    (bad / "sub" / "up").symlink_to(bad)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == ("dropin: skipped 'bad': 'bad/sub/up' is a symbolic "
                                          "link to a folder that holds it (a loop)")


def test_link_out_of_the_mount_is_refused(stage: Stage, tmp_path: Path) -> None:
    """A link leading out of the mount skips its folder; one inside the mount is copied."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for plugins")
    bad = stage.plugin("bad")
    (bad / "secret.txt").symlink_to(secret)
    (stage.mount / "good" / "shared.py").symlink_to(bad / "bad.py")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == (
        f"dropin: skipped 'bad': bad/secret.txt is a symbolic link leading out of the mounted "
        f"folder (to {str(secret)!r}); copy what it points to into the folder instead")
    shared = stage.portable / "good" / "shared.py"
    assert not shared.is_symlink() and shared.read_text() == "print('hello')\n"


def test_plugin_folder_linked_out_of_the_mount_is_refused(stage: Stage, tmp_path: Path) -> None:
    """A plugin folder that is a link to a folder outside the mount is skipped."""
    outside = Stage(tmp_path / "elsewhere", stage.home)
    outside.mount.mkdir()
    outside.plugin("bad")
    (stage.mount / "bad").symlink_to(outside.mount / "bad")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert "bad is a symbolic link leading out of the mounted folder" in boot.line("skipped 'bad'")


# -- unreadable -------------------------------------------------------------------------------

def test_unreadable_file_skips_its_folder_and_leaves_no_partial_copy(stage: Stage) -> None:
    """A file the container user cannot read skips its folder; nothing half-copied stays."""
    bad = stage.plugin("bad")
    (bad / "zz_private.py").write_text("x = 1\n")
    (bad / "zz_private.py").chmod(0)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == (
        f"dropin: skipped 'bad': cannot read bad/zz_private.py as uid {os.getuid()} "
        "(permission denied); make the folder readable: chmod -R a+rX")


@pytest.mark.parametrize("which", ["plugin folder", "subfolder"])
def test_unreadable_folder_is_skipped(stage: Stage, which: str) -> None:
    """A plugin folder or subfolder the container user cannot list is skipped."""
    bad = stage.plugin("bad")
    (bad / "lib").mkdir()
    locked = bad if which == "plugin folder" else bad / "lib"
    locked.chmod(0)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    shown = "bad" if which == "plugin folder" else "bad/lib"
    assert boot.line("skipped 'bad'") == (
        f"dropin: skipped 'bad': cannot read {shown} as uid {os.getuid()} (permission "
        "denied); make the folder readable: chmod -R a+rX")


def test_unreadable_mount_keeps_what_was_installed(stage: Stage) -> None:
    """When the mount cannot be listed, nothing installed earlier is removed."""
    assert stage.boot().code == 0
    stage.mount.chmod(0)
    boot = stage.boot()
    assert boot.code == 0
    assert stage.installed() == ["good"]
    assert list(stage.manifest()) == ["good"]
    assert boot.line(f"cannot read {stage.mount}")


# -- odd content ------------------------------------------------------------------------------

def test_pipe_in_a_folder_is_refused_without_blocking(stage: Stage) -> None:
    """A named pipe (reading it would block the boot) skips its folder at once."""
    bad = stage.plugin("bad")
    os.mkfifo(bad / "queue")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == ("dropin: skipped 'bad': 'bad/queue' is not a file "
                                          "or folder (a pipe, socket or device); remove it")


BAD_DESCRIPTORS = {
    "not JSON": (b'{"language": "python",', "bad.json is not valid JSON (Expecting property "
                 "name enclosed in double quotes: line 1 column 23 (char 22))"),
    "100k deep": (b"[" * 100_000 + b"]" * 100_000, "bad.json is nested too deeply to read"),
    "not UTF-8": (b'{"language": "\xff"}', "bad.json is not UTF-8 text; save it as UTF-8"),
    "too large": (b" " * (1 << 20) + b"{}", "bad.json is larger than 1048576 bytes; a "
                  "descriptor names the language, the executable and the symbols"),
    "not an object": (b'["python"]', "bad.json must hold a JSON object"),
}


@pytest.mark.parametrize("kind", list(BAD_DESCRIPTORS))
def test_bad_descriptor_skips_its_folder(stage: Stage, kind: str) -> None:
    """A descriptor that cannot be read as a JSON object skips its folder, saying why."""
    raw, reason = BAD_DESCRIPTORS[kind]
    (stage.plugin("bad") / "bad.json").write_bytes(raw)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == f"dropin: skipped 'bad': {reason}"


@pytest.mark.parametrize("executable", ["../good/good.py", "/usr/bin/python3", "lib/run.py"])
def test_executable_outside_the_folder_is_refused(stage: Stage, executable: str) -> None:
    """An executable that is, or resolves, outside the plugin folder skips the folder."""
    bad = stage.plugin("bad", executable=executable)
    (bad / "lib").symlink_to(stage.mount / "good")
    (stage.mount / "good" / "run.py").write_text("")
    boot = stage.boot()
    assert boot.code == 0, boot.lines
    assert "bad" not in stage.installed()
    reason = boot.line("skipped 'bad'")
    if executable == "lib/run.py":
        assert reason == (f"dropin: skipped 'bad': \"executable\" 'lib/run.py' leads out of "
                          f"the plugin folder (to {str(stage.mount / 'good' / 'run.py')!r}); "
                          "put the program in the folder")
    else:
        assert reason == (f"dropin: skipped 'bad': \"executable\" {executable!r} is outside "
                          "the plugin folder; name a file in it, e.g. \"main.py\"")


@pytest.mark.parametrize("name", ["with-dash", "1plug", "new\nline", "caf\u00e9", "sp ace"])
def test_folder_with_an_odd_name_is_skipped_on_one_line(stage: Stage, name: str) -> None:
    """A folder whose name breaks the plugin-name rule is skipped, named on one line."""
    stage.plugin(name)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line(f"skipped {name!r}") == (
        f"dropin: skipped {name!r}: not a plugin name; rename the folder to letters, digits "
        "and underscores, not starting with a digit")


def test_folder_with_a_name_that_is_not_utf8_is_skipped(stage: Stage) -> None:
    """A folder name that is not UTF-8 is skipped and shown escaped."""
    os.mkdir(os.fsencode(stage.mount) + b"/bad\xff")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad\\udcff'") == (
        "dropin: skipped 'bad\\udcff': not a plugin name; rename the folder to letters, "
        "digits and underscores, not starting with a digit")


@pytest.mark.parametrize("symbol", ["../../escape", "ok\n", ""])
def test_symbol_name_that_is_no_identifier_is_refused(stage: Stage, symbol: str) -> None:
    """A declared symbol that is not an identifier (it would become an etc/ path) skips."""
    stage.plugin("bad", sinks=[symbol])
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'") == (
        f"dropin: skipped 'bad': \"sinks\" holds {symbol!r}, not a symbol name; use letters, "
        "digits and underscores, not starting with a digit")


def test_deeply_nested_folder_is_copied(stage: Stage) -> None:
    """A tree 600 folders deep is copied (the walk does not recurse)."""
    deep = stage.mount / "good" / Path(*["d"] * 600)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("leaf")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert (stage.portable / "good" / Path(*["d"] * 600) / "leaf.txt").read_text() == "leaf"


# -- etc/ -------------------------------------------------------------------------------------

def test_ekuipers_own_etc_file_is_never_replaced(stage: Stage) -> None:
    """A plugin whose metadata would replace a file eKuiper ships is skipped."""
    (stage.home / "etc" / "sources" / "mqtt.yaml").write_text("eKuiper's own\n")
    stage.plugin("bad", sources=("mqtt",))
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert stage.etc("sources/mqtt.yaml") == "eKuiper's own\n"
    assert boot.line("skipped 'bad'") == (
        "dropin: skipped 'bad': etc/sources/mqtt.yaml already exists and was not installed "
        "for this plugin (it is eKuiper's own or another plugin's); rename the symbol, or "
        "remove that file")


def test_another_plugins_etc_file_is_never_replaced(stage: Stage) -> None:
    """Of two plugins declaring the same source, the second is skipped; the first's file stays."""
    stage.plugin("alpha", sources=("shared",))
    stage.plugin("beta", sources=("shared",))
    boot = stage.boot()
    assert boot.code == 0
    assert stage.installed() == ["alpha", "good"]
    assert stage.etc("sources/shared.yaml") == "default: {by: alpha}\n"
    assert boot.line("skipped 'beta'") == (
        "dropin: skipped 'beta': etc/sources/shared.yaml belongs to drop-in plugin 'alpha'; "
        "two plugins cannot declare the same symbol")


def test_only_declared_symbol_metadata_goes_to_etc(stage: Stage) -> None:
    """Metadata of symbols the descriptor does not declare stays in the plugin folder."""
    folder = stage.mount / "good"
    (folder / "functions" / "other.json").write_text("{}")
    (folder / "sources").mkdir()
    (folder / "sources" / "mqtt.yaml").write_text("not declared\n")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert sorted(os.listdir(stage.home / "etc" / "functions")) == ["hello.json"]
    assert os.listdir(stage.home / "etc" / "sources") == []
    assert (stage.portable / "good" / "sources" / "mqtt.yaml").exists()
    assert stage.manifest() == {"good": {"etc": ["functions/hello.json"]}}
    assert boot.line("plugin 'good': sources/mqtt.yaml") == (
        "dropin: plugin 'good': sources/mqtt.yaml is not copied to etc/; it is no metadata "
        "file of a symbol good.json declares")


def test_unwritable_etc_skips_only_the_plugins_that_need_it(stage: Stage) -> None:
    """When etc/sources cannot be written, a plugin with a source is skipped, others install."""
    shutil.rmtree(stage.home / "etc" / "sources")
    (stage.home / "etc" / "sources").write_text("not a folder")
    stage.plugin("bad", sources=("feed",))
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert boot.line("skipped 'bad'").startswith("dropin: skipped 'bad': FileExistsError: ")


def test_removed_folder_takes_its_etc_files_along(stage: Stage) -> None:
    """A plugin whose folder is gone is removed, with the etc files installed for it."""
    stage.plugin("gone", sources=("feed",))
    assert stage.boot().code == 0
    shutil.rmtree(stage.mount / "gone")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert not (stage.home / "etc" / "sources" / "feed.yaml").exists()
    assert boot.line("removed plugin 'gone'")


def test_update_replaces_the_plugins_own_etc_files(stage: Stage) -> None:
    """A reinstalled plugin replaces the etc files it installed before, and drops unused ones."""
    stage.plugin("feed", sources=("one", "two"))
    assert stage.boot().code == 0
    (stage.mount / "feed" / "sources" / "one.yaml").write_text("default: {v: 2}\n")
    descriptor = json.loads((stage.mount / "feed" / "feed.json").read_text())
    (stage.mount / "feed" / "feed.json").write_text(json.dumps({**descriptor, "sources": ["one"]}))
    boot = stage.boot()
    assert boot.code == 0
    assert stage.etc("sources/one.yaml") == "default: {v: 2}\n"
    assert not (stage.home / "etc" / "sources" / "two.yaml").exists()
    assert stage.manifest()["feed"] == {"etc": ["sources/one.yaml"]}


# -- what was installed earlier ------------------------------------------------------------

def test_broken_folder_keeps_the_copy_installed_earlier(stage: Stage) -> None:
    """A folder that breaks after it was installed keeps its earlier copy, unchanged."""
    assert stage.boot().code == 0
    (stage.mount / "good" / "good.py").write_text("print('v2')\n")
    (stage.mount / "good" / "late.py").write_text("")
    (stage.mount / "good" / "late.py").chmod(0)
    boot = stage.boot()
    assert boot.code == 0
    assert (stage.portable / "good" / "good.py").read_text() == "print('hello')\n"
    assert not (stage.portable / "good" / "late.py").exists()
    assert list(stage.manifest()) == ["good"]
    assert boot.line("skipped 'good'").endswith("; the copy installed at an earlier boot stays")
    assert not (stage.home / "plugins" / ".dropin-work").exists()


@pytest.mark.parametrize("entry", ["..", "../outside", ".", "a/b", "", "good\n"])
def test_hostile_manifest_entry_removes_nothing(stage: Stage, entry: str) -> None:
    """A manifest entry that is not a plugin name is ignored: nothing is removed for it."""
    (stage.home / "plugins" / "outside").mkdir()
    (stage.home / "plugins" / ".dropin-installed.json").write_text(json.dumps([entry]))
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert (stage.home / "plugins" / "outside").is_dir()
    assert boot.line("ignored the manifest entry") == (
        f"dropin: ignored the manifest entry {entry!r}: not a plugin name")
    assert stage.manifest() == {"good": {"etc": ["functions/hello.json"]}}


@pytest.mark.parametrize("text", ["[", "[" * 100_000 + "]" * 100_000, '{"plugins": 1}'])
def test_unreadable_manifest_is_replaced(stage: Stage, text: str) -> None:
    """A manifest that is not valid (not JSON, 100k deep, wrong shape) is written anew."""
    (stage.home / "plugins" / ".dropin-installed.json").write_text(text)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert stage.manifest() == {"good": {"etc": ["functions/hello.json"]}}
    assert boot.line("the manifest is")


def test_hostile_etc_entry_in_manifest_removes_nothing(stage: Stage) -> None:
    """An etc path in the manifest that is not a metadata file is never removed."""
    (stage.home / "etc" / "kuiper.yaml").write_text("eKuiper's config\n")
    (stage.home / "plugins" / ".dropin-installed.json").write_text(json.dumps(
        {"plugins": {"gone": {"etc": ["../kuiper.yaml", "sources/x.yaml/../../kuiper.yaml"]}}}))
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert stage.etc("kuiper.yaml") == "eKuiper's config\n"
    assert boot.line("removed plugin 'gone'")


def test_manifest_of_the_older_script_is_taken_over(stage: Stage) -> None:
    """A manifest listing names only (older script): its plugins update their etc files,
    and the copy it made (read-only folders kept from the mount) is replaced."""
    (stage.home / "plugins" / ".dropin-installed.json").write_text('["good"]')
    (stage.home / "etc" / "functions" / "hello.json").write_text('{"about": "old"}')
    old_copy = stage.portable / "good" / "lib"
    old_copy.mkdir(parents=True)
    (old_copy / "old.py").write_text("")
    old_copy.chmod(0o555)
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert stage.manifest() == {"good": {"etc": ["functions/hello.json"]}}


def test_leftovers_of_an_interrupted_run_are_cleared(stage: Stage) -> None:
    """Copies and etc temp files a killed run left behind are removed at the next boot."""
    leftover = stage.home / "plugins" / ".dropin-work" / "good" / "new"
    leftover.mkdir(parents=True)
    (leftover / "half.py").write_text("")
    (stage.home / "etc" / "sources" / ".dropin-feed.yaml.tmp").write_text("")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert os.listdir(stage.home / "etc" / "sources") == []


# -- the program as a whole -------------------------------------------------------------------

def test_unusable_home_still_exits_0(stage: Stage, tmp_path: Path) -> None:
    """When KUIPER_HOME cannot hold plugins at all, the program says so and exits 0."""
    (tmp_path / "file").write_text("")
    boot = stage.boot({"KUIPER_HOME": str(tmp_path / "file")})
    assert boot.code == 0
    assert boot.line("stopped early (NotADirectoryError: ")


def test_python_without_the_sdk_installs_nothing_and_exits_0(stage: Stage) -> None:
    """Run by a Python that lacks the SDK (a broken image), it says so and exits 0."""
    done = subprocess.run(
        [*_as_container_user(), sys.executable, "-S", str(DROPIN)],  # -S: no site-packages
        env={"PATH": os.environ.get("PATH", ""), "EKUIPER_DROPIN_PLUGINS": str(stage.mount),
             "KUIPER_HOME": str(stage.home)},
        capture_output=True, text=True, errors="replace", timeout=60)
    assert done.returncode == 0
    assert done.stderr.startswith("dropin: cannot import the SDK (")
    assert stage.installed() == []


def test_entrypoint_starts_the_command_when_dropin_fails(tmp_path: Path) -> None:
    """Even when dropin.py itself fails, the entrypoint goes on to run eKuiper."""
    crash = tmp_path / "dropin.py"
    crash.write_text("raise SystemExit(3)\n")
    script = ENTRYPOINT.read_text()
    assert "/opt/venv/bin/python /usr/local/lib/ekuiper/dropin.py" in script
    script = script.replace("/opt/venv/bin/python", sys.executable).replace(
        "/usr/local/lib/ekuiper/dropin.py", str(crash))
    done = subprocess.run(["sh", "-c", script, "entrypoint", "echo", "kuiperd started"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "kuiperd started\n")
    assert done.stderr == ("dropin: exited with status 3; starting without checking the "
                           "drop-in plugins\n")


# -- the pure checks --------------------------------------------------------------------------

def test_name_rule_is_the_validators() -> None:
    """dropin.py accepts exactly the plugin names `ekuiper-plugin validate` accepts."""
    assert dropin.NAME_RE.pattern == NAME_RE.pattern


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20)
descriptor_like = st.fixed_dictionaries({}, optional={
    "language": st.sampled_from(["python", "go", "java"]) | json_values,
    "executable": st.sampled_from(["main.py", "../x", "/abs", "a/../../b", ""]) | json_values,
    "sources": st.lists(st.sampled_from(["ok", "../x", "a b", "", "_p"]) | st.text()),
    "sinks": json_values,
    "functions": st.lists(st.text()),
})


@given(st.binary() | descriptor_like.map(lambda d: json.dumps(d).encode()))
def test_check_descriptor_never_raises(raw: bytes) -> None:
    """Any bytes give a descriptor or problems; a descriptor's paths stay in the folder."""
    descriptor, found = dropin.check_descriptor("p", raw)
    assert (descriptor is None) == bool(found)
    if descriptor is not None:
        assert dropin.executable_problems(descriptor.executable) == []
        assert all(dropin.is_meta_path(rel) for rel in dropin.meta_files(descriptor))


manifest_like = st.one_of(
    st.lists(json_values | st.sampled_from(["..", "ok", "a/b"])),
    st.fixed_dictionaries({"plugins": st.dictionaries(
        st.sampled_from(["..", "ok", "a/b", "x\n"]) | st.text(),
        st.fixed_dictionaries({"etc": st.none() | st.lists(
            st.sampled_from(["sources/a.yaml", "../kuiper.yaml", "sinks/a.yaml"]) | st.text())})
        | json_values)}),
    json_values,
)


@given(manifest_like.map(json.dumps) | st.text())
def test_parse_manifest_keeps_only_safe_entries(text: str) -> None:
    """Whatever the manifest holds, only plugin names and metadata paths come out."""
    entries, _ = dropin.parse_manifest(text)
    for name, owned in entries.items():
        assert NAME_RE.match(name)
        assert owned is None or all(dropin.is_meta_path(rel) for rel in owned)


def test_empty_plugins_volume_gets_the_folders_kuiperd_needs(stage: Stage) -> None:
    """On an empty /kuiper/plugins (a fresh volume) every kind folder is made before boot."""
    shutil.rmtree(stage.home / "plugins")
    boot = stage.boot()
    assert_only_good_installed(stage, boot)
    assert sorted(p.name for p in (stage.home / "plugins").iterdir() if p.is_dir()) == [
        "functions", "portable", "sinks", "sources", "wasm"]
