"""cluster.yaml (AWS) and cluster-onprem.yaml (local provider): Ray's own validation, and the
safety properties (only SSH open, dashboard on 127.0.0.1, token auth, no secrets in the files).

Nothing here contacts a cloud or a host: the configs go through the same ``prepare_config`` +
``validate_config`` that ``ray up`` runs before its provider-specific bootstrap.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CLUSTER_FILES = ["cluster.yaml", "cluster-onprem.yaml"]
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
SSH_PORT = 22


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def prepared(name: str) -> dict[str, Any]:
    """The config as ``ray up`` sees it after merging the provider's defaults."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(copy.deepcopy(load(name)))


def commands(config: dict[str, Any], keys: tuple[str, ...] = COMMAND_KEYS) -> Iterator[str]:
    for key in keys:
        yield from config.get(key) or []


def ray_start_commands(config: dict[str, Any], key: str) -> list[str]:
    return [c for c in config[key] if re.search(r"\bray start\b", c)]


# --- Ray's own validation -------------------------------------------------------------------

@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_ray_validates_the_cluster_config(name):
    from ray.autoscaler._private.util import validate_config

    config = prepared(name)
    validate_config(config)  # raises on a schema violation or inconsistent node types
    assert config["head_node_type"] in config["available_node_types"]


def test_ray_validation_is_not_vacuous():
    """A misspelled top-level key in the same config is refused by the same validation."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load("cluster.yaml")
    config["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(config))


def test_aws_cluster_has_a_cpu_head_and_autoscaled_gpu_workers():
    config = prepared("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0
    gpu_workers = [t for n, t in types.items()
                   if n != config["head_node_type"] and t["resources"].get("GPU", 0) >= 1]
    assert gpu_workers, "a worker node type with GPUs"
    for worker in gpu_workers:
        assert 0 <= worker["min_workers"] < worker["max_workers"] <= config["max_workers"]
    assert config["provider"]["cache_stopped_nodes"] is False  # `ray down` terminates


def test_onprem_cluster_lists_documentation_range_hosts():
    import ipaddress

    config = load("cluster-onprem.yaml")
    provider = config["provider"]
    assert provider["type"] == "local"
    doc_ranges = [ipaddress.ip_network(n) for n in
                  ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]  # RFC 5737
    for ip in [provider["head_ip"], *provider["worker_ips"]]:
        assert any(ipaddress.ip_address(ip) in net for net in doc_ranges), ip
    assert config["auth"]["ssh_user"] and config["auth"]["ssh_private_key"].startswith("~/")
    node_type = prepared("cluster-onprem.yaml")["available_node_types"]["local.cluster.node"]
    assert node_type["max_workers"] == len(provider["worker_ips"])


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_project_and_search_spaces_reach_every_node(name):
    """The sources, search_spaces/ and what `pip install -e` needs are mounted, each from a path
    of the repository; never the repository root (`ray up` would hash all of .venv/)."""
    import tomllib

    config = prepared(name)
    mounts = {remote: local for remote, local in config["file_mounts"].items()
              if not local.startswith("~")}
    assert all((REPO / local).exists() for local in mounts.values()), mounts
    assert all((REPO / local).resolve() != REPO for local in mounts.values()), mounts
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    by_local = {Path(local).as_posix(): remote for remote, local in mounts.items()}
    for needed in ("pyproject.toml", pyproject["readme"], "tune_nas", "search_spaces"):
        assert needed in by_local, f"{name}: {needed} is not mounted"
    root = by_local["pyproject.toml"].rsplit("/", 1)[0]
    assert all(by_local[p] == f"{root}/{p}" for p in by_local), "one tree, as in the repository"
    install = " ".join(commands(config, ("setup_commands",)))
    assert f"-e {root}" in install, "setup_commands install the mounted project"
    assert re.search(r"ray\[default\]==\d", install), "Ray pinned to the client's version"


# --- safety: nothing but SSH opened ---------------------------------------------------------

def test_aws_security_group_adds_no_rule():
    config = load("cluster.yaml")
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        assert rule.get("FromPort") == SSH_PORT and rule.get("ToPort") == SSH_PORT, rule
    for node_type in config["available_node_types"].values():
        # Ray's own group (rules below) is used, not some other group with unknown rules
        assert not {"SecurityGroupIds", "NetworkInterfaces"} & set(node_type["node_config"])


def test_aws_effective_inbound_rules_open_only_ssh_to_the_outside():
    """The rules Ray writes into the group it creates, computed by Ray itself."""
    pytest.importorskip("boto3", reason="Ray's AWS module needs boto3 (pip install boto3)")
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    extra = load("cluster.yaml")["provider"]["security_group"]["IpPermissions"]
    rules = _create_default_inbound_rules({"sg-cluster"}, extra)
    for rule in rules:
        outside = rule.get("IpRanges") or rule.get("Ipv6Ranges") or rule.get("PrefixListIds")
        if outside:
            assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (22, 22, "tcp"), rule
        else:  # only members of the cluster's own group
            assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == ["sg-cluster"], rule


FIREWALL_OPEN = re.compile(
    r"ufw\s+allow\s+(?!from\b)(?P<ufw>\S+)"           # ufw allow 8265/tcp
    r"|ufw\s+allow\s+from\s.*?\bport\s+(?P<ufwp>\d+)"  # ufw allow from any to any port 8265
    r"|--dport\s+(?P<ipt>\d+)"                          # iptables/nft ... --dport 8265
    r"|firewall-cmd\s.*--add-port[= ](?P<fwd>\d+)")     # firewall-cmd --add-port=8265/tcp


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_no_command_opens_a_port_other_than_ssh(name):
    config = prepared(name)
    for command in commands(config):
        for match in FIREWALL_OPEN.finditer(command):
            port = next(v for v in match.groupdict().values() if v)
            assert port.split("/")[0] in ("22", "ssh", "OpenSSH"), f"{name}: {command}"
    assert not config.get("docker"), "docker run options could publish ports"


def test_firewall_scan_catches_what_it_should():
    for opening in ["sudo ufw allow 8265/tcp", "ufw allow from any to any port 6379",
                    "iptables -A INPUT -p tcp --dport 10001 -j ACCEPT",
                    "firewall-cmd --permanent --add-port=8265/tcp"]:
        assert FIREWALL_OPEN.search(opening), opening
    assert not FIREWALL_OPEN.search("ufw allow from 192.0.2.0/24")  # the cluster's own hosts


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_dashboards_bound_to_localhost(name):
    config = prepared(name)
    head_starts = ray_start_commands(config, "head_start_ray_commands")
    assert head_starts
    for command in head_starts:
        assert re.search(r"--dashboard-host[= ]127\.0\.0\.1(\s|$)", command), command
    for command in commands(config):
        hosts = re.findall(r"--(?:dashboard-)?host[= ](\S+)", command)
        assert all(h == "127.0.0.1" for h in hosts), command
        assert "--bind_all" not in command and "0.0.0.0" not in command, command


# --- safety: token authentication -----------------------------------------------------------

@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_token_auth_on_every_node(name):
    config = prepared(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = ray_start_commands(config, key)
        assert starts, key
        for command in starts:
            assert re.search(r"(^|[\s;])(export\s+)?RAY_AUTH_MODE=token\b", command), command
    assert not any("RAY_AUTH_MODE=disabled" in c for c in commands(config))


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_token_file_comes_from_the_users_ray_dir(name):
    """The token path is the one the installed Ray reads (~/.ray/auth_token), mounted from the
    user's home on every node: never a file of the repository."""
    from ray._private.authentication.authentication_token_setup import _get_default_token_path

    token_path = "~/" + _get_default_token_path().relative_to(Path.home()).as_posix()
    mounts = load(name)["file_mounts"]
    assert mounts.get(token_path) == token_path, mounts
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=False)
    if tracked.returncode == 0:
        assert not [f for f in tracked.stdout.splitlines() if Path(f).name == "auth_token"]


# --- safety: no secrets in the files --------------------------------------------------------

SECRET_PATTERNS = [
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"(?i)aws_secret_access_key|aws_session_token"), "AWS credentials"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), "a long hex string (a Ray token is 64 hex digits)"),
    (re.compile(r"(?i)\b(RAY_AUTH_TOKEN|PGPASSWORD|[A-Z_]*PASSWORD|[A-Z_]*SECRET)\s*="),
     "a secret assigned in the environment"),
    (re.compile(r"(?i)(password|passwd|secret|token)\s*:\s*[\"']?[^\s\"'~/.][^\s\"']*"),
     "a secret-looking YAML value"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
]


def _scalars(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + "/" + str(key), str(key)
            yield from _scalars(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _scalars(value, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_no_secret_literal_in_the_file(name):
    text = (REPO / name).read_text()
    for pattern, what in SECRET_PATTERNS:
        match = pattern.search(text)
        assert match is None, f"{name}: {what}: {match.group(0)!r}"
    # values under secret-sounding keys are paths (to files outside the repo), never secrets
    config = load(name)
    for path, value in _scalars(config):
        leaf = path.rsplit("/", 1)[-1].lower()
        if re.search(r"password|secret|token|private_key", leaf) and value != leaf:
            assert value.startswith(("~/", "/")), f"{name}: {path} = {value!r}"
    # and the token of this machine, if there is one, is nowhere in the file
    from ray._private.authentication.authentication_token_setup import _get_default_token_path

    token_file = _get_default_token_path()
    if token_file.is_file() and token_file.read_text().strip():
        assert token_file.read_text().strip() not in text


def test_secret_scan_catches_what_it_should():
    """The patterns above are not vacuous: each kind of leak is caught."""
    leaks = ["export RAY_AUTH_TOKEN=abc", "PGPASSWORD=hunter2 python -m tune_nas.launch",
             "password: hunter2", "--storage postgresql://u:hunter2@db/tune",
             "token: " + "ab" * 32, "AKIA" + "A" * 16]
    for leak in leaks:
        assert any(p.search(leak) for p, _ in SECRET_PATTERNS), leak
    for fine in ["~/.ray/auth_token: ~/.ray/auth_token", "export RAY_AUTH_MODE=token;",
                 "ssh_private_key: ~/.ssh/id_ed25519"]:
        assert not any(p.search(fine) for p, _ in SECRET_PATTERNS), fine


# --- README.md names real things ------------------------------------------------------

def test_cluster_docs_name_real_flags_files_and_presets():
    from tune_nas.launch import build_parser

    text = (REPO / "README.md").read_text()
    known = {s for action in build_parser()._actions for s in action.option_strings}
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.DOTALL)).replace("\\\n", " ")
    launches = [ln.split("tune_nas.launch", 1)[1].split("'")[0]
                for ln in blocks.splitlines() if "tune_nas.launch" in ln]
    assert launches
    for args in launches:
        for flag in re.findall(r"(?<!\S)--[a-z][a-z-]*", args):
            assert flag in known, f"README.md: tune_nas.launch {flag}"
        for preset in re.findall(r"--space\s+(\w+)(?:\s|$)", args):
            assert (REPO / "search_spaces" / f"{preset}.py").is_file(), preset
    for path in set(re.findall(r"(?<![\w/.-])((?:\.ci/|docs/)?[\w-]+\.(?:yaml|sh))\b", text)):
        assert (REPO / path).is_file(), f"README.md names {path}"
