"""Every message that names a setting names one that exists: a role's default or argument-spec option, or a
playbook's own variable. A message telling an operator to set a variable nothing reads is a wrong fix."""

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b((?:kafka|broker|controller|zookeeper|tuning|java)_[a-z0-9_]+)\b")
# Words in messages that look like settings but name something else.
NOT_SETTINGS = {
    "kafka_controllers", "kafka_brokers",  # the inventory groups
    "broker_gate", "controller_gate", "zookeeper_problems", "tuning_problems",  # functions named in docstrings
    "broker_id", "controller_id",  # fields of the roll engine's records
    "kafka_cleanshutdown",  # Kafka's own marker file (.kafka_cleanshutdown)
    "kafka_role", "kafka_metal_status",  # a label and a job of the scraped metrics
    "kafka_metal_status_up",  # a metric of `kafka-metal status`
}


def known_settings():
    known = set()
    for role in (REPO / "roles").iterdir():
        defaults = role / "defaults" / "main.yml"
        if defaults.exists():
            known |= set(yaml.safe_load(defaults.read_text()) or {})
        for spec in (role / "meta").glob("argument_specs*.yml"):
            data = yaml.safe_load(spec.read_text()) or {}
            entries = data.get("argument_specs") or {k: v for k, v in data.items() if isinstance(v, dict)}
            for entry in entries.values():
                known |= set((entry or {}).get("options") or {})
                known |= set((entry or {}).get("main_options") or {})
            known |= set(data.get("main_options") or {})
    for playbook in list((REPO / "playbooks").glob("*.yml")) + [REPO / "site.yml"]:
        known |= set(NAME.findall(playbook.read_text()))
    modules = {p.stem for p in (REPO / "plugins" / "modules").glob("*.py")}
    filters = {node.name for path in (REPO / "plugins" / "filter").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}
    return known | modules | filters | NOT_SETTINGS


def message_names():
    found = {}
    for folder in ("module_utils", "action", "filter"):
        for path in (REPO / "plugins" / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value:
                    for name in NAME.findall(node.value):
                        found.setdefault(name, set()).add(path.name)
    return found


def test_messages_name_settings_that_exist():
    known = known_settings()
    unknown = {name: sorted(files) for name, files in message_names().items() if name not in known}
    assert unknown == {}, f"messages name settings no role reads: {unknown}"
