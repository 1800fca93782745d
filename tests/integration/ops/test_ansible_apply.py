"""The Ansible role for real: lint, then site.yml applied to this machine inside a private mount
namespace whose /etc, /var, /opt and /usr are overlays (writes land in a scratch dir; the host is
untouched). Check mode on the fresh machine, apply, apply again (changed=0), check mode (changed=0);
then the installed tree is checked: `rtsp2jpg check-config` accepts the rendered config,
`systemd-analyze verify` accepts the installed unit, and its security exposure is measured.

There is no systemd as PID 1 here, so the service is not started (rtsp2jpg_manage_service: false):
starting it, the watchdog restart and LoadCredential= at run time need a real device.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.service_process import free_port

REPO = Path(__file__).resolve().parents[3]
ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
ANSIBLE_LINT = BIN / "ansible-lint"
OVERLAID = ("etc", "var", "opt", "usr")
# Paths a real install on this machine would already have (then the host check cannot apply).
PREEXISTING = {p for p in ("etc/rtsp2jpg/config.yaml", "etc/systemd/system/rtsp2jpg.service", "opt/rtsp2jpg/venv")
               if (Path("/") / p).exists()}

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(),
                                reason="ansible-core is not installed (scripts/test-requirements.txt)")


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0", "NO_COLOR": "1"}


def test_syntax_check() -> None:
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "inventory.example.yml", "site.yml", "--syntax-check"],
                            cwd=ANSIBLE, env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not ANSIBLE_LINT.exists(), reason="ansible-lint is not installed")
def test_ansible_lint_production_profile() -> None:
    result = subprocess.run([ANSIBLE_LINT, "--offline"], cwd=ANSIBLE, env=env(), capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output


def test_argument_spec_rejects_a_bad_value_before_any_task(tmp_path: Path) -> None:
    """Check mode on this host: validation is the first task, so nothing else runs."""
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"rtsp2jpg": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}}}))
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), "site.yml", "--check",
                             "-e", '{"rtsp2jpg_log_level": "LOUD", "rtsp2jpg_manage_service": false}'],
                            cwd=ANSIBLE, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "rtsp2jpg_log_level" in result.stdout and "LOUD" in result.stdout, result.stdout[-3000:]
    assert "Install the platform's packages" not in result.stdout


PORT = free_port()  # what the variable change in the third apply sets; the installed service listens there
INVENTORY = {"all": {"children": {"rtsp2jpg": {"hosts": {"localhost": {
    "ansible_connection": "local",
    "ansible_python_interpreter": "/usr/bin/python3",
    "rtsp2jpg_manage_service": False,  # no systemd as PID 1 in CI
    "rtsp2jpg_apt_update_cache": False,  # setup.sh installed the packages; no mirror needed
    "rtsp2jpg_http_port": 8099,
    "rtsp2jpg_mqtt_enabled": True,
    "rtsp2jpg_mqtt_host": "127.0.0.1",
    "rtsp2jpg_mqtt_password": "${MQTT_PASSWORD}",
    "rtsp2jpg_capture_allow_networks": ["127.0.0.0/8", "10.0.0.0/8"],  # a list key, as an inventory sets it
    "rtsp2jpg_cameras": [{"id": "front-door", "name": "Front door",
                          "url": "rtsp://viewer:${FRONT_DOOR_PASSWORD}@127.0.0.1:8554/cam"},
                         {"id": "yard", "url": "rtsp://127.0.0.1:8554/yard", "decoder": "ffmpeg"}],
    "rtsp2jpg_credentials": {"MQTT_PASSWORD": "mqtt-s3cret", "FRONT_DOOR_PASSWORD": "door-s3cret"},
}}}}}}

# Runs as root in a private mount namespace: everything mounted here vanishes with the namespace.
SCRIPT = r"""
set -u
S="$1"
for d in {overlaid}; do
  mkdir -p "$S/upper/$d" "$S/work/$d"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$S/upper/$d,workdir=$S/work/$d" "/$d" || exit 97
done
cd {ansible}
run() {{ name=$1; shift; start=$(date +%s.%N)
  "$@" > "$S/$name.log" 2>&1; echo $? > "$S/$name.rc"
  awk "BEGIN {{ print $(date +%s.%N) - $start }}" > "$S/$name.sec"; }}
play="ansible-playbook -i $S/inventory.yml site.yml"
run check0 $play --check --diff
run apply1 $play --diff
run apply2 $play
run check2 $play --check --diff
run check_jetson $play --check --diff -e '{{"rtsp2jpg_platform": "jetson"}}'
run apply3 $play -e '{{"rtsp2jpg_http_port": {port}}}'
run checkconfig env CREDENTIALS_DIRECTORY=/etc/rtsp2jpg/credentials \
    /opt/rtsp2jpg/venv/bin/rtsp2jpg check-config /etc/rtsp2jpg/config.yaml
run verify systemd-analyze verify --man=no --recursive-errors=no /etc/systemd/system/rtsp2jpg.service
run verify_static systemd-analyze verify --man=no --recursive-errors=no {static_unit}
run security systemd-analyze security --offline=true /etc/systemd/system/rtsp2jpg.service
run security_static systemd-analyze security --offline=true {static_unit}
run serve python3 {serve_script} "$S" {port}
stat -c '%a %U:%G %n' /etc/rtsp2jpg /etc/rtsp2jpg/config.yaml /etc/rtsp2jpg/credentials \
    /etc/rtsp2jpg/credentials/* > "$S/modes.txt"
id rtsp2jpg > "$S/id.txt" 2>&1
cp /etc/systemd/system/rtsp2jpg.service /etc/rtsp2jpg/config.yaml "$S/"
"""


# Runs inside the namespace after the apply: the installed tree, started the way the unit starts it
# (as the service user, with a credentials directory and a notify socket), minus systemd itself.
SERVE = r"""
import json, os, pathlib, shutil, socket, subprocess, sys, time, urllib.request
S = pathlib.Path(sys.argv[1])
out = {}
for d in ("/var/lib/rtsp2jpg", "/var/cache/rtsp2jpg"):  # StateDirectory=, CacheDirectory=
    os.makedirs(d, mode=0o750, exist_ok=True)
    shutil.chown(d, "rtsp2jpg", "rtsp2jpg")
creds = pathlib.Path("/var/tmp/rtsp2jpg-credentials")  # what LoadCredential= builds
creds.mkdir(mode=0o500)
for f in pathlib.Path("/etc/rtsp2jpg/credentials").iterdir():
    shutil.copy(f, creds / f.name)
    shutil.chown(creds / f.name, "rtsp2jpg", "rtsp2jpg")
    os.chmod(creds / f.name, 0o400)
shutil.chown(creds, "rtsp2jpg", "rtsp2jpg")
sock_path = "/var/tmp/rtsp2jpg-notify.sock"
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
os.chmod(sock_path, 0o666)
sock.settimeout(1)
env = {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/rtsp2jpg", "XDG_CACHE_HOME": "/var/cache/rtsp2jpg",
       "CREDENTIALS_DIRECTORY": str(creds), "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "4000000",
       "PYTHONUNBUFFERED": "1"}
log = open(S / "serve-service.log", "wb")
proc = subprocess.Popen(["setpriv", "--reuid=rtsp2jpg", "--regid=rtsp2jpg", "--init-groups",
                         "/opt/rtsp2jpg/venv/bin/rtsp2jpg", "serve", "--config", "/etc/rtsp2jpg/config.yaml"],
                        env=env, stdout=log, stderr=subprocess.STDOUT)
messages = []
deadline = time.monotonic() + 90
while time.monotonic() < deadline and proc.poll() is None:
    try:
        messages.append(sock.recv(4096).decode())
    except TimeoutError:
        continue
    if any("WATCHDOG=1" in m for m in messages):
        break
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/health", timeout=10) as r:
        out["health"] = json.load(r)
except OSError as e:
    out["health_error"] = repr(e)
proc.terminate()
out["exit"] = proc.wait(30)
try:
    while True:
        messages.append(sock.recv(4096).decode())
except (TimeoutError, OSError):
    pass
out["messages"] = messages
out["db_mode"] = oct(os.stat("/var/lib/rtsp2jpg/rtsp2jpg.db").st_mode & 0o777) if os.path.exists(
    "/var/lib/rtsp2jpg/rtsp2jpg.db") else None
(S / "serve.json").write_text(json.dumps(out))
"""


def recap(log: str) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+(.*)", log)
    assert match, log[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the whole sequence once; the tests below read its logs."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("systemd-analyze"):
        pytest.skip("needs root, unshare and systemd-analyze (CI runs as root)")
    scratch = tmp_path_factory.mktemp("ansible-overlay")
    (scratch / "inventory.yml").write_text(yaml.safe_dump(INVENTORY))
    (scratch / "serve.py").write_text(SERVE)
    script = SCRIPT.format(overlaid=" ".join(OVERLAID), ansible=ANSIBLE, serve_script=scratch / "serve.py", port=PORT,
                           static_unit=REPO / "systemd" / "rtsp2jpg.service")
    # Caches and Ansible's temp files go to the scratch dir too, not to root's home.
    run_env = {**env(), "PIP_CACHE_DIR": str(scratch / "pip-cache"), "ANSIBLE_HOME": str(scratch / "ansible-home"),
               "ANSIBLE_LOCAL_TEMP": str(scratch / "ansible-tmp"), "ANSIBLE_REMOTE_TEMP": str(scratch / "ansible-tmp")}
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script, "bash",
                             str(scratch)], env=run_env, capture_output=True, text=True, timeout=1200)
    if result.returncode == 97:
        pytest.skip("overlayfs mounts are not permitted here: " + result.stderr[-500:])
    assert result.returncode == 0, result.stdout + result.stderr
    timings = {p.stem: float((scratch / p.name).read_text() or 0) for p in scratch.glob("*.sec")}
    print("ansible timings (s):", {k: round(v, 1) for k, v in sorted(timings.items())})
    return scratch


def log(scratch: Path, name: str) -> str:
    return (scratch / f"{name}.log").read_text()


def rc(scratch: Path, name: str) -> int:
    return int((scratch / f"{name}.rc").read_text())


def test_check_mode_on_a_fresh_machine_succeeds(applied: Path) -> None:
    assert rc(applied, "check0") == 0, log(applied, "check0")[-4000:]
    assert recap(log(applied, "check0"))["failed"] == 0


def test_apply_then_idempotent_then_check_mode_clean(applied: Path) -> None:
    assert rc(applied, "apply1") == 0, log(applied, "apply1")[-4000:]
    assert recap(log(applied, "apply1"))["changed"] > 0
    assert rc(applied, "apply2") == 0, log(applied, "apply2")[-4000:]
    assert recap(log(applied, "apply2"))["changed"] == 0, log(applied, "apply2")[-4000:]
    assert rc(applied, "check2") == 0, log(applied, "check2")[-4000:]
    assert recap(log(applied, "check2"))["changed"] == 0, log(applied, "check2")[-4000:]


def test_a_changed_variable_changes_the_config_and_notifies_the_restart(applied: Path) -> None:
    text = log(applied, "apply3")
    assert rc(applied, "apply3") == 0, text[-4000:]
    assert recap(text)["changed"] == 1, text[-4000:]
    assert "RUNNING HANDLER [rtsp2jpg : Restart rtsp2jpg]" in text
    assert f"port: {PORT}" in (applied / "config.yaml").read_text()


def test_jetson_keeps_the_default_device_policy_and_installs_no_opencv(applied: Path) -> None:
    """The Jetson branch in check mode: only the unit would change (no device allow-list)."""
    text = log(applied, "check_jetson")
    assert rc(applied, "check_jetson") == 0, text[-4000:]
    assert recap(text)["changed"] == 1, text[-4000:]
    assert "-DevicePolicy=closed" in text and "+# Jetson: the nvhost/nvmap nodes" in text


def test_secrets_never_reach_ansible_output(applied: Path) -> None:
    for name in ("check0", "apply1", "apply2", "check2", "check_jetson", "apply3"):
        text = log(applied, name)
        assert "mqtt-s3cret" not in text and "door-s3cret" not in text, name


def test_installed_config_and_credentials(applied: Path) -> None:
    assert rc(applied, "checkconfig") == 0, log(applied, "checkconfig")
    assert "2 camera(s)" in log(applied, "checkconfig") and "mqtt on" in log(applied, "checkconfig")
    config = yaml.safe_load((applied / "config.yaml").read_text())
    assert config["http"]["port"] == PORT and config["storage"]["db_path"] == "/var/lib/rtsp2jpg/rtsp2jpg.db"
    assert config["cameras"][1] == {"id": "yard", "url": "rtsp://127.0.0.1:8554/yard", "decoder": "ffmpeg"}
    assert config["capture"]["allow_networks"] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert "s3cret" not in (applied / "config.yaml").read_text()
    modes = (applied / "modes.txt").read_text()
    assert "750 root:rtsp2jpg /etc/rtsp2jpg\n" in modes
    assert "640 root:rtsp2jpg /etc/rtsp2jpg/config.yaml" in modes
    assert "700 root:root /etc/rtsp2jpg/credentials\n" in modes
    assert "600 root:root /etc/rtsp2jpg/credentials/MQTT_PASSWORD" in modes
    assert "video" in (applied / "id.txt").read_text()


def test_installed_unit_verifies_and_is_hardened(applied: Path) -> None:
    for name in ("verify", "verify_static"):
        assert rc(applied, name) == 0, log(applied, name)
    unit = (applied / "rtsp2jpg.service").read_text()
    assert "LoadCredential=FRONT_DOOR_PASSWORD:/etc/rtsp2jpg/credentials/FRONT_DOOR_PASSWORD" in unit
    for name in ("security", "security_static"):
        match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", log(applied, name))
        assert match, log(applied, name)[-2000:]
        print(f"systemd-analyze security ({name}): {match.group(1)} {match.group(2)}")
        assert float(match.group(1)) <= 4.0  # "OK" or better; README records the figure


def test_installed_service_runs_as_its_user_with_credentials_and_notify(applied: Path) -> None:
    """The installed venv, started like the unit starts it: READY, STATUS, WATCHDOG, STOPPING, exit 0."""
    result = json.loads((applied / "serve.json").read_text())
    service_log = (applied / "serve-service.log").read_text()
    assert result.get("health", {}).get("ok") is True, (result, service_log[-3000:])
    assert result["health"]["cameras"]["total"] == 2
    text = "\n".join(result["messages"])
    for field in ("READY=1", "STATUS=2 cameras: ", "WATCHDOG=1", "STOPPING=1"):
        assert field in text, (field, result["messages"], service_log[-3000:])
    assert result["exit"] == 0, service_log[-3000:]
    assert result["db_mode"] == "0o600"
    assert "s3cret" not in service_log


def test_host_was_left_untouched(applied: Path) -> None:
    """Everything the role wrote is in the overlays' upper dirs, none of it on the host."""
    for path in ("etc/rtsp2jpg/config.yaml", "etc/systemd/system/rtsp2jpg.service", "opt/rtsp2jpg/venv"):
        assert (applied / "upper" / path).exists(), path
        if path not in PREEXISTING:
            assert not (Path("/") / path).exists(), path
