"""The plugin author's loop against a real kuiperd: new -> validate -> run -> package ->
install -> data in a rule -> status -> remove, all through `ekuiper-plugin`."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import PLUGINS
from tests.e2e.conftest import BootKuiperd
from tests.e2e.kuiper import Kuiperd
from tests.e2e.scenarios import file_action, read_lines, stop_rule, uid
from tests.protocol.events import wait_for


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ekuiper._cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_newcomer_loop_ends_with_data_in_a_rule(boot_kuiperd: BootKuiperd,
                                                tmp_path: Path) -> None:
    """A scaffolded plugin validates, runs, packages, installs and feeds a rule."""
    assert cli("new", "myplug", "--source", "ticks", "--function", "shout",
               cwd=tmp_path).returncode == 0
    folder = tmp_path / "myplug"
    validated = cli("validate", str(folder), cwd=tmp_path)
    assert (validated.returncode, validated.stdout.strip()) == (0, "myplug: ok")
    ran = cli("run", str(folder), "--source", "ticks", "--datasource", "dev",
              "--conf", '{"interval": 0.01}', "--count", "2", cwd=tmp_path)
    assert ran.stdout.splitlines() == ['{"seq": 1, "datasource": "dev"}',
                                       '{"seq": 2, "datasource": "dev"}']
    packaged = cli("package", str(folder), cwd=tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    kuiperd = boot_kuiperd()
    installed = cli("install", str(tmp_path / "myplug.zip"), "--server", kuiperd.base_url,
                    cwd=tmp_path)
    assert (installed.returncode, installed.stdout.strip()) == (0, "myplug: running"), \
        installed.stderr
    rows = _rule_rows(kuiperd, "ticks", "shout(datasource) AS loud, seq")
    assert rows[0] == {"loud": rows[0]["loud"], "seq": 1}
    assert rows[0]["loud"].startswith("DS-")
    status = cli("status", "myplug", "--server", kuiperd.base_url, cwd=tmp_path)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0] == "myplug v0.1.0: running"
    listed = cli("list", "--server", kuiperd.base_url, cwd=tmp_path)
    assert listed.stdout.startswith("myplug\tv0.1.0\trunning\tsources: ticks; functions: shout")
    removed = cli("remove", "myplug", "--server", kuiperd.base_url, cwd=tmp_path)
    assert removed.returncode == 0
    wait_for(lambda: not kuiperd.plugin_pids("myplug"), timeout=5, what="myplug exit")
    gone = cli("status", "myplug", "--server", kuiperd.base_url, cwd=tmp_path)
    assert gone.returncode == 1
    assert "no plugin 'myplug'" in gone.stderr


def _rule_rows(kuiperd: Kuiperd, source: str, select: str) -> list[dict]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, source, uid("ds-"))
    out = kuiperd.out_path(f"{rule}.txt")
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}", [file_action(out)])
    assert resp.status in (200, 201), resp
    kuiperd.wait_status(rule, lambda s: s.get(f"source_{stream}_0_records_in_total", 0) >= 2)
    stop_rule(kuiperd, rule)
    return read_lines(kuiperd, out)


def _tiny_wheel(folder: Path) -> str:
    """A local wheel of a module `tinydep` (installable offline), returned by name."""
    name = "tinydep-1.0-py3-none-any.whl"
    files = {"tinydep.py": b"def greet(who):\n    return 'hi ' + who\n",
             "tinydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\n"
                                                b"Version: 1.0\n",
             "tinydep-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                             b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("tinydep-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(folder / name, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr("tinydep-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return name


def test_requirements_are_installed_for_the_plugin(boot_kuiperd: BootKuiperd,
                                                   tmp_path: Path) -> None:
    """requirements.txt is installed by the generated install.sh; the plugin imports it."""
    assert cli("new", "withdeps", "--function", "greet", cwd=tmp_path).returncode == 0
    folder = tmp_path / "withdeps"
    wheel = _tiny_wheel(folder)
    (folder / "requirements.txt").write_text(f"./{wheel}\n")
    symbols = folder / "symbols.py"
    symbols.write_text(symbols.read_text().replace(
        "return str(args[0]).upper()", "import tinydep\n        return tinydep.greet(args[0])"))
    kuiperd = boot_kuiperd(drop_in=(PLUGINS / "pysam",))
    installed = cli("install", str(folder), "--server", kuiperd.base_url,
                    "--shell-para", sys.executable, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert (kuiperd.home / "plugins" / "portable" / "withdeps" / ".deps" / "tinydep.py").is_file()
    rows = _rule_rows(kuiperd, "pyjson", "greet(name) AS g")
    assert {row["g"] for row in rows} == {"hi pyjson"}


def test_validate_reports_mismatch_with_fix(tmp_path: Path) -> None:
    """validate names the file, the problem and the fix, and exits 1."""
    assert cli("new", "broken", "--source", "a", cwd=tmp_path).returncode == 0
    descriptor = tmp_path / "broken" / "broken.json"
    data = json.loads(descriptor.read_text())
    data["sources"].append("ghost")
    descriptor.write_text(json.dumps(data))
    result = cli("validate", str(tmp_path / "broken"), cwd=tmp_path)
    assert result.returncode == 1
    assert ("ERROR broken/broken.py: source 'ghost' is in the descriptor but not in "
            "PluginConfig") in result.stderr
    assert "fix: register it in PluginConfig sources or drop it from broken.json" in result.stderr
    assert "ERROR broken/sources/ghost.yaml: missing" in result.stderr
