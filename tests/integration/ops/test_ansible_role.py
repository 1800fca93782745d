"""The Ansible role's contract without running it: variables map 1:1 to config keys, the argument
spec mirrors the defaults, the config template covers every key, and systemd/rtsp2jpg.service is the
role's unit template rendered with the defaults (one source of truth for both install paths).

The config-key parts of the role are generated from the schema: after adding a config key, run
`python tests/integration/ops/test_ansible_role.py` (it also regenerates systemd/rtsp2jpg.service)."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
import yaml

from rtsp2jpg import config

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "ansible" / "roles" / "rtsp2jpg"
STATIC_UNIT = REPO / "systemd" / "rtsp2jpg.service"
# How systemd/rtsp2jpg.service is rendered: a device with both groups, V4L2/DRM decoders and the two
# secrets the example config refers to. (A Jetson or a device without `render` differs only there.)
STATIC_UNIT_VARS = {"__rtsp2jpg_unit_groups": ["video", "render"],
                    "__rtsp2jpg_credential_names": ["MQTT_PASSWORD", "RTSP2JPG_API_KEY"],
                    "__rtsp2jpg_device_policy_closed": True}
# Where the role's default deliberately differs from the schema's, and why.
ROLE_OVERRIDES = {
    "storage.db_path": "/var/lib/rtsp2jpg/rtsp2jpg.db",  # systemd's StateDirectory=
    "http.api_key": "${RTSP2JPG_API_KEY:-}",  # from a credential when one is configured
    "mqtt.password": "${MQTT_PASSWORD:-}",
}
SPEC_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}
LIST_OF_STR = tuple[str, ...]


def is_camera_list(kind: Any) -> bool:
    """`cameras`: a list of sections, set as a whole through rtsp2jpg_cameras."""
    return get_origin(kind) is tuple and dataclasses.is_dataclass(get_args(kind)[0])


def scalar_keys(cls: type = config.Config, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Every key path outside `cameras` that holds a value (scalars and lists of strings) -> (type, default).

    The name stays from when only scalars had role variables; list keys are values too.
    """
    out: dict[str, tuple[Any, Any]] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, key = hints[f.name], prefix + f.name
        if is_camera_list(kind):
            continue
        if dataclasses.is_dataclass(kind):
            out.update(scalar_keys(kind, key + "."))
        else:
            out[key] = (kind, list(f.default) if isinstance(f.default, tuple) else f.default)
    return out


def spec_type(kind: Any) -> str:
    if kind == LIST_OF_STR:
        return "list"
    return SPEC_TYPES[kind]


def role_var(key: str) -> str:
    return "rtsp2jpg_" + key.replace(".", "_")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


DEFAULTS = load(ROLE / "defaults" / "main.yml")
SPEC = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def test_scalar_keys_agree_with_documented_keys() -> None:
    documented = set(config.documented_keys())
    assert set(scalar_keys()) <= documented


@pytest.mark.parametrize("key", sorted(scalar_keys()))
def test_every_config_key_has_a_role_variable_with_the_schema_default(key: str) -> None:
    kind, default = scalar_keys()[key]
    var = role_var(key)
    assert var in DEFAULTS, (f"config key {key} has no role variable {var}: "
                             "run `python tests/integration/ops/test_ansible_role.py`")
    assert DEFAULTS[var] == ROLE_OVERRIDES.get(key, default)
    assert SPEC[var]["type"] == spec_type(kind)
    if kind == LIST_OF_STR:
        assert SPEC[var]["elements"] == "str"


def test_every_config_key_walked_from_the_schema_has_a_role_variable() -> None:
    """Walk the Config dataclasses (not the list above): every leaf key, lists included, maps to a
    variable, and the camera list to rtsp2jpg_cameras."""
    def walk(cls: type, prefix: str) -> list[tuple[str, Any]]:
        out = []
        for f in dataclasses.fields(cls):
            kind = get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(kind):
                out += walk(kind, prefix + f.name + ".")
            else:
                out.append((prefix + f.name, kind))
        return out

    leaves = walk(config.Config, "")
    assert any(kind == LIST_OF_STR for _key, kind in leaves)  # capture.allow_networks at least
    for key, kind in leaves:
        var = "rtsp2jpg_cameras" if is_camera_list(kind) else role_var(key)
        assert var in DEFAULTS and var in SPEC, f"config key {key} has no role variable {var}"


def test_config_template_renders_every_key_from_its_variable() -> None:
    template = (ROLE / "templates" / "config.yaml.j2").read_text()
    missing = [key for key in scalar_keys() if f"{{{{ {role_var(key)} | to_json }}}}" not in template]
    assert not missing
    assert "rtsp2jpg_cameras" in template


def render_config(extra: dict[str, Any]) -> str:
    """templates/config.yaml.j2 rendered by Ansible's own templating, with defaults + `extra`."""
    template = pytest.importorskip("ansible.template")
    from ansible.parsing.dataloader import DataLoader

    variables = {**DEFAULTS, **extra, "ansible_managed": "Managed by Ansible (role rtsp2jpg)"}
    text = (ROLE / "templates" / "config.yaml.j2").read_text()
    return template.Templar(loader=DataLoader(), variables=variables).template(template.trust_as_template(text))


def test_list_values_from_the_inventory_reach_the_rendered_config(tmp_path: Path) -> None:
    """Every list key set as a YAML list in the inventory ends up, as that list, in the config the
    service loads (and the scalar next to it still renders)."""
    lists = {key: ["10.0.0.5", "192.168.1.7"] for key, (kind, _d) in scalar_keys().items() if kind == LIST_OF_STR}
    assert "capture.allow_networks" in lists
    lists["capture.allow_networks"] = ["192.168.1.0/24", "10.0.0.5"]
    rendered = render_config({**{role_var(k): v for k, v in lists.items()}, "rtsp2jpg_http_port": 8123})
    (tmp_path / "config.yaml").write_text(rendered)
    cfg = config.load(tmp_path / "config.yaml", env={})
    for key, value in lists.items():
        node: Any = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == tuple(value), key
    assert cfg.http.port == 8123
    (tmp_path / "defaults.yaml").write_text(render_config({}))
    assert config.load(tmp_path / "defaults.yaml", env={}).capture.allow_networks == ()


def test_argument_spec_mirrors_defaults() -> None:
    assert set(SPEC) == set(DEFAULTS)
    for name, spec in SPEC.items():
        assert spec["default"] == DEFAULTS[name], name
        assert spec.get("description"), name
    assert SPEC["rtsp2jpg_credentials"].get("no_log") is True


def test_role_variables_are_prefixed() -> None:
    assert all(name.startswith("rtsp2jpg_") for name in DEFAULTS)


def render_unit(extra: dict[str, Any]) -> str:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True)  # as Ansible's template module does
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    template = env.from_string((ROLE / "templates" / "rtsp2jpg.service.j2").read_text())
    return template.render(**DEFAULTS, **extra, ansible_managed="Managed by Ansible (role rtsp2jpg)")


def unit_body(text: str) -> str:
    return text[text.index("[Unit]"):]


def test_static_unit_is_the_role_template_rendered_with_defaults() -> None:
    assert unit_body(STATIC_UNIT.read_text()) == unit_body(render_unit(STATIC_UNIT_VARS)), (
        "systemd/rtsp2jpg.service drifted from the role's template; regenerate it with "
        "`python tests/integration/ops/test_ansible_role.py`")


def test_unit_has_the_contract_settings() -> None:
    unit = STATIC_UNIT.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure",
                 "User=rtsp2jpg", "SupplementaryGroups=video render", "StateDirectory=rtsp2jpg",
                 "ConfigurationDirectory=rtsp2jpg", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "NoNewPrivileges=yes", "DeviceAllow=char-video4linux rw",
                 "LoadCredential=MQTT_PASSWORD:/etc/rtsp2jpg/credentials/MQTT_PASSWORD",
                 "ExecStart=/opt/rtsp2jpg/venv/bin/rtsp2jpg serve --config /etc/rtsp2jpg/config.yaml"):
        assert line in unit.splitlines(), line
    restrict = next(x for x in unit.splitlines() if x.startswith("RestrictAddressFamilies="))
    assert "AF_UNIX" in restrict  # sd_notify and journald's stream both need it
    stop = int(next(x for x in unit.splitlines() if x.startswith("TimeoutStopSec=")).split("=")[1])
    assert stop > config.CaptureConfig().stop_timeout_sec + 5  # longer than the service's own deadline


def test_jetson_unit_keeps_the_default_device_policy() -> None:
    unit = render_unit({**STATIC_UNIT_VARS, "__rtsp2jpg_device_policy_closed": False,
                        "__rtsp2jpg_unit_groups": ["video"]})
    assert "DevicePolicy=" not in unit and "SupplementaryGroups=video\n" in unit


def test_jetson_never_gets_a_foreign_opencv() -> None:
    """JetPack's OpenCV has GStreamer and nvv4l2decoder; Ubuntu's or pip's would replace or shadow it."""
    packages = load(ROLE / "vars" / "main.yml")["_rtsp2jpg_packages"]
    assert "python3-opencv" not in packages["jetson"]
    assert "python3-opencv" in packages["debian"] and "gstreamer1.0-libav" in packages["debian"]
    role_text = "\n".join(p.read_text() for p in ROLE.rglob("*.yml"))
    assert "opencv-python" not in role_text and "[opencv]" not in role_text


# -- generation: the config-key parts of the role are generated from the schema ---------------------
DEFAULTS_MARKER = ("# -- configuration keys (generated by `python tests/integration/ops/test_ansible_role.py`;"
                   " set them in the inventory)")
SPEC_MARKER = "      # -- configuration keys (generated by `python tests/integration/ops/test_ansible_role.py`)"


def _help(cls: type, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def _choices(key: str) -> list[str] | None:
    """An enumerated key's values, read from its check's own message ("must be one of a, b, got ...")."""
    cls: Any = config.Config
    for part in key.split(".")[:-1]:
        cls = get_type_hints(cls)[part]
    field = next(f for f in dataclasses.fields(cls) if f.name == key.split(".")[-1])
    check = field.metadata.get("check")
    try:
        problem = check("\0") if check else None
    except TypeError:
        return None
    match = re.match(r"must be one of (.*), got ", problem or "")
    return match.group(1).split(", ") if match else None


def _owner(key: str) -> tuple[type, str]:
    cls: Any = config.Config
    for part in key.split(".")[:-1]:
        cls = get_type_hints(cls)[part]
    return cls, key.split(".")[-1]


def generated_defaults() -> str:
    lines, section = [DEFAULTS_MARKER], None
    for key, (_kind, default) in scalar_keys().items():
        head = key.split(".")[0] if "." in key else "top level"
        if head != section:
            section = head
            lines.append(f"\n# {head}")
        lines.append(f"# {key}: {_help(*_owner(key))}")
        lines.append(f"{role_var(key)}: {json.dumps(ROLE_OVERRIDES.get(key, default))}")
    return "\n".join(lines) + "\n"


def generated_spec() -> str:
    lines = [SPEC_MARKER]
    for key, (kind, default) in scalar_keys().items():
        description = f"{key}: {_help(*_owner(key))}"
        lines.append(f"      {role_var(key)}:")
        lines.append("        description: >-")
        lines += ["          " + part for part in textwrap.wrap(description, 100)]
        lines.append(f"        type: {spec_type(kind)}")
        if kind == LIST_OF_STR:
            lines.append("        elements: str")
        if _choices(key):
            lines.append(f"        choices: {json.dumps(_choices(key))}")
        lines.append(f"        default: {json.dumps(ROLE_OVERRIDES.get(key, default))}")
    return "\n".join(lines) + "\n"


def generated_config_template() -> str:
    out = ["{{ ansible_managed | comment }}",
           "# Rendered from the role's rtsp2jpg_* variables; ${NAME} comes from $CREDENTIALS_DIRECTORY"
           " (LoadCredential=).",
           "# Validate with: rtsp2jpg check-config FILE (with CREDENTIALS_DIRECTORY set)."]
    opened: list[str] = []
    for key in scalar_keys():
        parts = key.split(".")
        for depth, section in enumerate(parts[:-1]):
            if opened[:depth + 1] != parts[:depth + 1]:
                out.append("  " * depth + section + ":")
        opened = parts[:-1]
        out.append("  " * (len(parts) - 1) + f"{parts[-1]}: {{{{ {role_var(key)} | to_json }}}}")
    out += ["{% if rtsp2jpg_cameras | length > 0 %}", "cameras:",
            "  {{ rtsp2jpg_cameras | to_nice_yaml(indent=2, sort_keys=false) | indent(2) }}",
            "{% else %}", "cameras: []", "{% endif %}"]
    return "\n".join(out) + "\n"


def test_generated_parts_are_current() -> None:
    defaults = (ROLE / "defaults" / "main.yml").read_text()
    spec = (ROLE / "meta" / "argument_specs.yml").read_text()
    hint = "regenerate with `python tests/integration/ops/test_ansible_role.py`"
    assert defaults[defaults.index(DEFAULTS_MARKER):] == generated_defaults(), hint
    assert spec[spec.index(SPEC_MARKER):] == generated_spec(), hint
    assert (ROLE / "templates" / "config.yaml.j2").read_text() == generated_config_template(), hint


def write_generated() -> None:
    """Regenerate the unit, and the config-key parts of defaults, argument spec and config template."""
    header = ("# Installed by hand: copy to /etc/systemd/system/ (see docs/deployment.md).\n"
              "# Generated from ansible/roles/rtsp2jpg/templates/rtsp2jpg.service.j2 by\n"
              "# `python tests/integration/ops/test_ansible_role.py`; the Ansible role installs the same unit.\n")
    for path, marker, text in ((ROLE / "defaults" / "main.yml", DEFAULTS_MARKER, generated_defaults()),
                               (ROLE / "meta" / "argument_specs.yml", SPEC_MARKER, generated_spec())):
        old = path.read_text()
        path.write_text(old[:old.index(marker)] + text)
    (ROLE / "templates" / "config.yaml.j2").write_text(generated_config_template())
    DEFAULTS.clear()
    DEFAULTS.update(load(ROLE / "defaults" / "main.yml"))
    body = render_unit(STATIC_UNIT_VARS)
    STATIC_UNIT.write_text(header + body[body.index("# rtsp2jpg under systemd"):])


def test_generated_role_files_fit_ansible_lint_line_length():
    """ansible-lint's production profile refuses lines over 160 characters; a long help text in
    config/schema.py becomes one in defaults/main.yml. Checked here without running ansible-lint."""
    long_lines = [line for line in generated_defaults().splitlines() if len(line) > 160]
    assert not long_lines, "shorten the help text in rtsp2jpg/config/schema.py: " + "; ".join(long_lines)


if __name__ == "__main__":
    write_generated()
