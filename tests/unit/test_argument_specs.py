"""Every role's argument spec matches its defaults, and every entry point has a spec."""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir())


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_spec_defaults_equal_defaults_file(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = specs["main"]["options"]
    # settings without a default (set per host, like zookeeper_id) are the spec's own, documented with the rest
    extra = yaml.safe_load((role / "meta" / "argument_specs.extra.yml").read_text()) \
        if (role / "meta" / "argument_specs.extra.yml").exists() else {}
    per_host = set((extra or {}).get("main_options") or {})
    assert set(main) - per_host == set(defaults), "spec and defaults/main.yml list different variables"
    for name in per_host:
        assert "default" not in main[name] and main[name].get("description"), name
    for name, value in defaults.items():
        assert main[name].get("default") == value, name
        assert main[name].get("description"), f"{name} has no description"
        assert name.startswith(role.name + "_"), f"{name} does not start with the role name {role.name}_"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_every_entry_point_has_a_spec(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    entry_points = {p.stem for p in (role / "tasks").glob("*.yml")}
    internal = {"archive", "install", "cluster", "security", "time_sync", "disks", "metrics"}
    assert entry_points - internal <= set(specs), sorted(entry_points - internal - set(specs))
