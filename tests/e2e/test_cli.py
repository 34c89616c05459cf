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
from tests.e2e.conftest import DOCKER, NATIVE, NATIVE_V1, BootKuiperd, targets
from tests.e2e.kuiper import KuiperREST
from tests.e2e.scenarios import file_action, read_lines, stop_rule, uid
from tests.protocol.events import wait_for


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ekuiper._cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@targets(NATIVE, NATIVE_V1, DOCKER)
def test_newcomer_loop_ends_with_data_in_a_rule(kuiper: KuiperREST, tmp_path: Path) -> None:
    """A scaffolded plugin validates, runs, packages, installs over REST and feeds a rule.

    Against the compose stack the server runs in a container that cannot see this
    machine's files, with eKuiper's shipped settings: install uploads the zip.
    """
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
    server = ("--server", kuiper.base_url)
    installed = cli("install", str(tmp_path / "myplug.zip"), *server, cwd=tmp_path)
    state = "running" if kuiper.major >= 2 else "installed"
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip().startswith(f"myplug: {state}"), installed.stdout
    assert _uploads(kuiper) == [], "the upload stays behind"
    try:
        rows = _rule_rows(kuiper, "ticks", "shout(datasource) AS loud, seq")
        assert rows[0] == {"loud": rows[0]["loud"], "seq": 1}
        assert rows[0]["loud"].startswith("DS-")
        status = cli("status", "myplug", *server, cwd=tmp_path)
        assert status.returncode == 0
        assert status.stdout.splitlines()[0] == f"myplug v0.1.0: {state}"
        listed = cli("list", *server, cwd=tmp_path)
        assert f"myplug\tv0.1.0\t{state}\tsources: ticks; functions: shout" \
            in listed.stdout.splitlines()
    finally:
        removed = cli("remove", "myplug", *server, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    wait_for(lambda: not kuiper.plugin_pids("myplug"), timeout=10, what="myplug exit")
    gone = cli("status", "myplug", *server, cwd=tmp_path)
    assert gone.returncode == 1
    assert "no plugin 'myplug'" in gone.stderr


@targets(NATIVE, DOCKER)
def test_download_from_a_private_address_is_refused_with_the_fix(kuiper: KuiperREST,
                                                                 tmp_path: Path) -> None:
    """As shipped, eKuiper 2.x refuses a loopback URL; the CLI names the setting and fix."""
    refused = cli("install", "http://127.0.0.1:9/myplug.zip", "--server", kuiper.base_url,
                  cwd=tmp_path)
    assert refused.returncode == 1
    assert "is in internal network" in refused.stderr
    assert "basic.enablePrivateNet is false as shipped" in refused.stderr
    assert "myplug" not in {p["name"] for p in kuiper.get("/plugins/portables").body}


def _uploads(kuiper: KuiperREST) -> list[str]:
    resp = kuiper.get("/config/uploads")
    assert resp.status == 200, resp
    return [path for path in resp.body or [] if "myplug" in path]


def _rule_rows(kuiperd: KuiperREST, source: str, select: str) -> list[dict]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, source, uid("ds-"))
    out = kuiperd.out_path(f"{rule}.txt")
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}", [file_action(out)])
    assert resp.status in (200, 201), resp
    kuiperd.wait_status(rule, lambda s: s.get(f"source_{stream}_0_records_in_total", 0) >= 2)
    stop_rule(kuiperd, rule)
    rows = read_lines(kuiperd, out)
    assert kuiperd.delete(f"/rules/{rule}").status == 200
    assert kuiperd.delete(f"/streams/{stream}").status == 200
    return rows


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
