"""Lumina's Docker deployment with the plugin (issue 20, item 1), tested without a Docker engine.

``deploy/docker-compose.lumina-dedup.yml`` is merged over Lumina's own ``docker-compose.yml``
(``tests/data/lumina-docker-compose.yml``: its services as at irjudson/vam-tools 14b9ea8) by the
compose rules this file implements (:func:`merge`), and the merged ``web`` and ``cw`` services must
run our wrapper, our worker module and queue, from an image built by ``deploy/Dockerfile`` with the
plugin in it. The slow test runs that Dockerfile's RUN line, as written, into a fresh venv that
holds Lumina's environment (Lumina's own dependencies under its pins, or Lumina itself where
``LUMINA_DEDUP_LUMINA_SRC`` names a checkout of it), and imports what the commands load.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lumina_support import REDIS_URL, unavailable

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
OVERRIDE = DEPLOY / "docker-compose.lumina-dedup.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
LUMINA_COMPOSE = Path(__file__).with_name("data") / "lumina-docker-compose.yml"
HOST_DOC = ROOT.parent / "shared" / "lumina-host.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Our queue, as the plugin's settings name it by default.
QUEUE = "lumina-dedup"
WRAPPER = "lumina_plugin.lumina.router:app"
WORKER_MODULE = "lumina_plugin.lumina.celery"


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        unavailable("PyYAML is not installed (it belongs in the dev extra: pip install pyyaml)")
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


# --- Compose: interpolation and the merge rules we rely on ------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty: compose refuses the file."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation, for the forms our files use: ``$$``, ``$VAR``, ``${VAR}``,
    ``${VAR:-default}`` / ``${VAR-default}`` (unset or empty / unset), ``${VAR:?error}`` /
    ``${VAR?error}``, applied to every string of the tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg, have = m.group("op"), m.group("arg") or "", env.get(name)
        missing = have is None or (have == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and missing:
            return arg
        if op in (":?", "?") and missing:
            raise MissingVariable(f"{name}: {arg}")
        return have or ""
    return _VAR.sub(one, value)


def normalize(service: dict[str, Any]) -> dict[str, Any]:
    """A service in compose's canonical form, for the attributes merged here: ``command`` as a list
    (a string is split as compose splits it, shell-words without a shell), ``build`` as a mapping
    (a string is its context) with ``args`` a mapping, ``environment`` a mapping (``KEY=VAL`` items;
    a bare ``KEY`` maps to None)."""
    out = dict(service)
    if isinstance(out.get("command"), str):
        out["command"] = shlex.split(out["command"])
    if isinstance(out.get("build"), str):
        out["build"] = {"context": out["build"]}
    if isinstance(out.get("build"), dict):
        out["build"] = dict(out["build"])
        if "args" in out["build"]:
            out["build"]["args"] = as_mapping(out["build"]["args"])
    if "environment" in out:
        out["environment"] = as_mapping(out["environment"])
    return out


def as_mapping(items: Any) -> dict[str, Any]:
    if isinstance(items, dict):
        return {str(k): (None if v is None else str(v)) for k, v in items.items()}
    pairs = (str(i).split("=", 1) for i in items or [])
    return {p[0]: (p[1] if len(p) > 1 else None) for p in pairs}


#: How compose merges each service attribute our override sets (docs.docker.com/reference/
#: compose-file/merge): ``command``/``entrypoint`` are replaced whole, never appended; a scalar
#: (``image``, ``pull_policy``) is replaced; ``build`` and ``environment`` are mappings, merged key
#: by key (``build.args`` too), the later file winning. Any other attribute in the override fails
#: the test: extend this table (and check compose's rule for it) first.
REPLACE = {"command", "entrypoint", "image", "pull_policy"}
MAPPINGS = {"build", "environment"}


def merge_mapping(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_mapping(out[key], value)
        else:
            out[key] = value
    return out


def merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    base, over = normalize(base), normalize(over)
    out = dict(base)
    for key, value in over.items():
        if key in REPLACE:
            out[key] = value
        elif key in MAPPINGS:
            out[key] = merge_mapping(base.get(key) or {}, value)
        else:
            raise NotImplementedError(f"no merge rule here for service attribute {key!r}")
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``docker compose -f base -f over``: services merged by name (a new one is added as it is);
    other top-level keys of the override replace the base's."""
    out = {k: v for k, v in base.items() if k != "services"}
    out.update({k: v for k, v in over.items() if k != "services"})
    services = {name: normalize(svc) for name, svc in (base.get("services") or {}).items()}
    for name, svc in (over.get("services") or {}).items():
        services[name] = merge_service(services[name], svc) if name in services else normalize(svc)
    out["services"] = services
    return out


def deployment(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Lumina's compose file with ours over it, interpolated as compose would with ``env``."""
    env = {"LUMINA_DEDUP_SRC": str(ROOT)} if env is None else env
    return merge(interpolate(load_yaml(LUMINA_COMPOSE), env), interpolate(load_yaml(OVERRIDE), env))


def test_merge_rules_on_their_own() -> None:
    base = {"services": {"s": {"command": "a b --c='d e'", "image": "x", "build": ".",
                               "environment": ["A=1", "B=2", "C"], "deploy": {"replicas": 6}}}}
    over = {"services": {"s": {"command": ["z"], "image": "y", "build": {"dockerfile": "D", "args": ["K=v"]},
                               "environment": {"B": "3"}}, "t": {"image": "new"}}}
    merged = merge(base, over)["services"]
    assert merged["s"] == {"command": ["z"], "image": "y", "build": {"context": ".", "dockerfile": "D", "args": {"K": "v"}},
                           "environment": {"A": "1", "B": "3", "C": None}, "deploy": {"replicas": 6}}
    assert merged["t"] == {"image": "new"}
    assert normalize(base["services"]["s"])["command"] == ["a", "b", "--c=d e"]
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$SET ${SET} ${EMPTY:-d} ${EMPTY-d} ${UNSET:-d} $$SET", env) == "v v d  d $SET"
    with pytest.raises(MissingVariable, match="UNSET: say so"):
        interpolate("${UNSET:?say so}", env)


def test_fixture_is_lumina_as_the_host_describes_it() -> None:
    """The fixture holds what ../shared/lumina-host.md says of Lumina's deployment (checked against
    the text where ../shared is beside the checkout, as in CI)."""
    services = normalize_all(interpolate(load_yaml(LUMINA_COMPOSE), {}))
    web, cw = services["web"], services["cw"]
    assert web["command"][:6] == ["uvicorn", "lumina.api.app:app", "--host", "0.0.0.0", "--port", "8000"]
    assert "8765:8000" in web["ports"]
    assert cw["deploy"]["replicas"] == 6 and cw["runtime"] == "nvidia"
    assert cw["environment"]["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert cw["command"] == shlex.split("celery -A lumina.celery_app worker --loglevel=info --concurrency=2"
                                        " --queues=celery")
    for name in ("web", "cw"):
        env = services[name]["environment"]
        assert {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB",
                "CELERY_BROKER_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"} <= set(env)
    if HOST_DOC.is_file():
        text = " ".join(HOST_DOC.read_text().split())
        assert "uvicorn lumina.api.app:app --host 0.0.0.0 --port 8000" in text
        assert ("celery -A lumina.celery_app worker --loglevel=info --concurrency=2 --queues=celery" in text
                and "replicas: 6" in text and "runtime: nvidia" in text)


def normalize_all(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: normalize(svc) for name, svc in compose["services"].items()}


def test_web_serves_lumina_through_our_wrapper() -> None:
    lumina = normalize_all(interpolate(load_yaml(LUMINA_COMPOSE), {}))["web"]
    web = deployment()["services"]["web"]
    # Lumina's own command, with our wrapper in place of its app, and nothing else changed.
    assert web["command"] == [WRAPPER if arg == "lumina.api.app:app" else arg for arg in lumina["command"]]
    assert web["command"][:2] == ["uvicorn", WRAPPER]
    assert {k: v for k, v in web.items() if k not in ("command", "image", "build", "pull_policy")} == \
           {k: v for k, v in lumina.items() if k not in ("command", "image", "build", "pull_policy")}
    module, attr = WRAPPER.split(":")
    import importlib.util
    router = importlib.import_module(module)
    assert attr == "app" and callable(router.InFront)  # `app` is Lumina's app wrapped, built on first use


def test_workers_include_our_module_and_queue() -> None:
    from lumina_plugin.settings.lumina import LuminaSettings
    assert LuminaSettings().queue == QUEUE
    lumina = normalize_all(interpolate(load_yaml(LUMINA_COMPOSE), {}))["cw"]
    cw = deployment()["services"]["cw"]
    cmd = cw["command"]
    assert cmd[:4] == ["celery", "-A", "lumina.celery_app", "worker"]  # Lumina's app and tasks, as before
    queues = [a.split("=", 1)[1] for a in cmd if a.startswith("--queues=")]
    assert len(queues) == 1 and queues[0].split(",") == ["celery", QUEUE]
    assert cmd[cmd.index("--include") + 1] == WORKER_MODULE
    # Every other argument of Lumina's command is kept.
    assert [a for a in lumina["command"] if not a.startswith("--queues=")] == \
           [a for a in cmd if not a.startswith("--queues=") and a not in ("--include", WORKER_MODULE)]
    # Six GPU replicas, Lumina's settings: untouched.
    assert cw["deploy"] == lumina["deploy"] and cw["runtime"] == "nvidia"
    assert cw["environment"] == lumina["environment"]
    import importlib.util
    assert importlib.util.find_spec(WORKER_MODULE) is not None


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):  # Docker removes the escape and the newline, nothing else
            pending += line.rstrip()[:-1]
            continue
        text = pending + line
        pending = ""
        instr, _, rest = text.strip().partition(" ")
        out.append((instr.upper(), rest.strip()))
    return out


def dockerfile_args() -> dict[str, str | None]:
    args: dict[str, str | None] = {}
    for instr, rest in dockerfile():
        if instr == "ARG":
            name, eq, default = rest.partition("=")
            args[name] = default if eq else None
    return args


def test_images_have_the_plugin() -> None:
    """Both services build deploy/Dockerfile from this checkout, over Lumina's image, with the
    extras they need: the bridge for web, the bridge and a GPU extra for the workers."""
    steps = dockerfile()
    froms = [rest for instr, rest in steps if instr == "FROM"]
    assert froms == ["${LUMINA_IMAGE}"]
    copy = [rest.split() for instr, rest in steps if instr == "COPY"]
    assert copy == [[".", "${PLUGIN_SRC}"]]
    run = [rest for instr, rest in steps if instr == "RUN"]
    assert len(run) == 1 and '"${PLUGIN_SRC}[${PLUGIN_EXTRAS}]"' in run[0]
    args = dockerfile_args()
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    lumina = load_yaml(LUMINA_COMPOSE)
    services = deployment()["services"]
    for name in ("web", "cw"):
        svc = services[name]
        build = svc["build"]
        assert Path(build["context"]) == ROOT and (Path(build["context"]) / build["dockerfile"]) == DOCKERFILE
        assert set(build["args"]) <= set(args)
        # Lumina's image as its own compose file builds it: project name, then the service.
        assert build["args"]["LUMINA_IMAGE"] == f"{lumina['name']}-web"
        wanted = build["args"]["PLUGIN_EXTRAS"].split(",")
        assert "lumina" in wanted and set(wanted) <= extras, wanted
        assert svc["image"].startswith("lumina-dedup-") and svc["pull_policy"] == "build"
    assert any(e.startswith("gpu") for e in services["cw"]["build"]["args"]["PLUGIN_EXTRAS"].split(","))
    assert services["web"]["build"]["args"]["PLUGIN_EXTRAS"] == "lumina"
    # Without the checkout's path compose refuses the file, rather than build something else.
    with pytest.raises(MissingVariable, match="LUMINA_DEDUP_SRC"):
        deployment({})


# --- The build context: deploy/Dockerfile.dockerignore -------------------------------------------

def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) of each line of deploy/Dockerfile.dockerignore, in order (``*`` and ``?``
    within one path element, ``**`` across elements, as Docker matches them)."""
    out = []
    for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        out.append((negated, re.compile(rx + r"\Z")))
    return out


def excluded(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a path is left out when the last pattern matching it, or a folder above it,
    is not a ``!`` pattern."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for negated, rx in patterns:
        if any(rx.match(p) for p in prefixes):
            out = not negated
    return out


def build_context(dest: Path) -> Path:
    """Copy what Docker would send as the build context of deploy/Dockerfile into ``dest``."""
    patterns = _ignore_patterns()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = Path(dirpath).relative_to(ROOT)
        # A folder left out, with no `!` pattern below it, is not walked (.git, .venv, ...).
        dirnames[:] = [d for d in dirnames if not (excluded((rel_dir / d).as_posix(), patterns) and not any(
            neg and rx.pattern.startswith(re.escape((rel_dir / d).as_posix() + "/")) for neg, rx in patterns))]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if not excluded(rel, patterns):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_build_context_holds_what_pip_needs(tmp_path: Path) -> None:
    ctx = build_context(tmp_path / "ctx")
    files = {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}
    assert {"pyproject.toml", "README.md", "hooks/__init__.py", "hooks/py.typed", "lumina_plugin/py.typed",
            "lumina_plugin/lumina/router.py", "lumina_plugin/lumina/celery.py"} <= files
    assert any(f.startswith("lumina_plugin/catalog/") and f.endswith(".sql") for f in files)
    assert not any(f.split("/")[0] in (".git", ".venv", "tests", "sample_catalog", "benchmarks", "deploy")
                   or "__pycache__" in f for f in files)


# --- The Dockerfile's pip line, run into a Lumina-like venv -----------------------------------------

def lumina_requirements() -> list[str]:
    """Lumina's own dependencies, by name, from .ci/lumina-constraints.txt (its pyproject's list)."""
    names = []
    for line in (ROOT / ".ci" / "lumina-constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
    return sorted(set(names), key=names.index)


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a RUN step: the venv's python first on PATH, nothing of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def sh(cmd: list[str] | str, cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          shell=isinstance(cmd, str))
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def freeze(venv: Path, cwd: Path) -> dict[str, str]:
    out = sh([str(venv / "bin" / "python"), "-m", "pip", "list", "--disable-pip-version-check", "--format=freeze"],
             cwd, clean_env(venv))
    return {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in out.split() if "==" in line}


@pytest.fixture(scope="module")
def lumina_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path | None]]:
    """A venv holding Lumina's environment, made once for the module: Lumina itself where
    ``LUMINA_DEDUP_LUMINA_SRC`` names a checkout of irjudson/vam-tools (installed as
    ../shared/lumina-sandbox/start.sh does: editable, with the psycopg and packaging its code
    imports undeclared, Celery and kombu below 5.5), else Lumina's own dependencies under its pins
    (.ci/lumina-constraints.txt). Yields (venv, Lumina's source or None)."""
    base = tmp_path_factory.mktemp("lumina-venv")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    src = Path(os.environ["LUMINA_DEDUP_LUMINA_SRC"]) if os.environ.get("LUMINA_DEDUP_LUMINA_SRC") else None
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if src is not None:
        sh(pip + ["-e", str(src), "packaging", "psycopg[binary]", "celery>=5.3,<5.5", "kombu<5.5"], base, clean_env(venv))
    else:
        sh(pip + ["-c", str(ROOT / ".ci" / "lumina-constraints.txt"), *lumina_requirements()], base, clean_env(venv))
    yield venv, src


@pytest.mark.slow
@pytest.mark.parametrize("service", ["web", "cw"])
def test_dockerfile_pip_line_installs_into_lumina_env(service: str, lumina_venv: tuple[Path, Path | None],
                                                      tmp_path: Path) -> None:
    """The RUN line of deploy/Dockerfile, as written, with the build args the merged compose file
    gives this service: it installs the plugin beside Lumina's packages without changing one of
    them, and what the service's command loads imports from the installed package."""
    base_venv, lumina_src = lumina_venv
    venv = tmp_path / "venv"  # each service its own copy, as each its own image
    shutil.copytree(base_venv, venv, symlinks=True)
    _fix_venv_copy(base_venv, venv)
    work = tmp_path / "work"  # outside the checkout: nothing of it is importable from here
    work.mkdir()
    before = freeze(venv, work)
    svc = deployment()["services"][service]
    args = {name: default or "" for name, default in dockerfile_args().items()}
    args.update(svc["build"]["args"])
    args["PLUGIN_SRC"] = str(build_context(tmp_path / "context"))
    run = [rest for instr, rest in dockerfile() if instr == "RUN"][0]
    start = time.monotonic()
    sh(["/bin/sh", "-c", run], work, clean_env(venv, **args), timeout=1500)
    took = time.monotonic() - start
    after = freeze(venv, work)
    changed = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}
    assert not changed, f"the plugin changed Lumina's packages: {changed}"
    added = sorted(f"{n}=={v}" for n, v in after.items() if n not in before)
    assert "lumina-plugin==" + PYPROJECT["project"]["version"] in added
    sh([str(venv / "bin" / "python"), "-m", "pip", "check", "--disable-pip-version-check"], work, clean_env(venv))
    python = str(venv / "bin" / "python")
    where = sh([python, "-c", "import lumina_plugin.lumina.celery, lumina_plugin.lumina.router, lumina_plugin;"
                              " print(lumina_plugin.__file__)"], work, clean_env(venv)).strip()
    assert Path(where).is_relative_to(venv), where  # the installed package, not this checkout
    command = svc["command"]
    if service == "web":
        module = command[1].split(":")[0]
        probe = f"import {module} as m; app = m.app; print(type(app).__name__, type(app.inner).__module__)"
    else:
        module = command[command.index("--include") + 1]
        probe = f"import {module}, {command[command.index('-A') + 1]} as lumina_app; print(lumina_app.app.main)"
    done = subprocess.run([python, "-c", probe], cwd=work, env=clean_env(venv), capture_output=True, text=True,
                          timeout=300)
    if lumina_src is not None:
        assert done.returncode == 0, done.stderr[-3000:]
        print(f"{service}: {done.stdout.strip()}")
    else:  # Lumina's own code is not here: only its import may fail
        assert done.returncode != 0 and "No module named 'lumina'" in done.stderr, done.stderr[-3000:]
    print(f"{service}: the Dockerfile's pip line took {took:.0f} s and added {' '.join(added)}")
    if lumina_src is not None and service == "cw":
        _start_worker_command(command, venv, work)


def _fix_venv_copy(old: Path, new: Path) -> None:
    """A copied venv: its scripts' shebangs and activate files name the old path."""
    for path in (new / "bin").iterdir():
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if str(old) in text:
                path.write_text(text.replace(str(old), str(new)))


def _start_worker_command(command: list[str], venv: Path, work: Path) -> None:
    """The merged cw command itself, in the venv with Lumina, on the machine's Redis (a database
    of its own, so it takes no other test's messages): it starts, and consumes our queue."""
    from lumina_plugin.lumina import bridge
    from lumina_plugin.settings.lumina import LuminaSettings
    broker = REDIS_URL.rsplit("/", 1)[0] + "/13"
    env = clean_env(venv, CELERY_BROKER_URL=broker, REDIS_HOST="127.0.0.1", REDIS_PORT="6379", REDIS_DB="13",
                    POSTGRES_HOST="127.0.0.1", POSTGRES_USER="postgres", POSTGRES_DB="lumina_dedup_unused")
    log_path = work / "cw.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(venv / "bin" / command[0]), *command[1:]], cwd=work, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and " ready." not in log_path.read_text() and proc.poll() is None:
                time.sleep(0.5)
            text = log_path.read_text()
            assert proc.poll() is None and " ready." in text, text[-3000:]
            assert all(f". {task}" in text for task in (bridge.TASK_BATCH, bridge.TASK_SCAN, bridge.TASK_FIND)), text
            with bridge.celery_client(LuminaSettings(redis_url=broker)) as app:
                assert bridge.queue_consumers(app, QUEUE, timeout=10.0)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
