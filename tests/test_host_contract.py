"""The host contract, end to end: a real PluginHost loads our plugin through the
``lumina`` entry point, fires its events on a real SQLite catalog with the sample
photos, and the catalog is read back with plain ``sqlite3``. Hooks answer with typed
:class:`~lumina_hooks.HookReport` objects: the tests read their counts as attributes, and
the plugin's full JSON (groups, members) from ``details``.

Nothing under test is mocked. Small recording plugins stand in for *other* plugins
only (registered with ``host.register(obj, name=...)`` as datasette and llm do).
``test_every_hook_has_a_test`` fails when a hook is added to ``lumina_hooks.specs``
without a test here.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pluggy
import pytest
from lumina_hooks import ENTRY_POINT_GROUP, FailedFile, HookReport, HostContext, MenuAction, PluginHost, hookimpl

import lumina_plugin.plugin as dedup_plugin

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_catalog"
NOT_PHOTOS = {"expected_groups.json", "SOURCES.md", "make_sample.py"}
FIND = dedup_plugin.FIND_DUPLICATES
TAG_PREFIX = "lumina-dedup:"
#: The kinds of report our plugin answers with (the engine's RunReport.kind).
OUR_KINDS = {"import", "find-duplicates", "remove", "move"}
#: The fields of a HookReport that repeat the engine's summary.
COUNTS = ("files", "hashed", "unchanged", "groups", "duplicates", "errors", "dry_run")

Groups = set[frozenset[str]]


# -- fixtures (local on purpose: tests/conftest.py belongs to another file) -----------

@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the sample photos (mtimes kept), so no run touches the repo."""
    dest = tmp_path_factory.mktemp("contract") / "photos"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(*NOT_PHOTOS))
    return dest


@pytest.fixture(scope="module")
def photos(photo_dir: Path) -> list[str]:
    found = sorted(str(p) for p in photo_dir.rglob("*") if p.is_file())
    assert len(found) == 40, "sample_catalog should hold 40 photos"
    return found


@pytest.fixture(scope="module")
def expected() -> Groups:
    data = json.loads((SAMPLE / "expected_groups.json").read_text())
    return {frozenset(g) for g in data["groups"]}


@pytest.fixture
def autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points on and nothing blocked, whatever the surrounding environment says."""
    monkeypatch.delenv("LUMINA_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("LUMINA_BLOCK_PLUGINS", raising=False)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "cat.db"


@pytest.fixture
def host(autoload: None, catalog: Path) -> PluginHost:
    return PluginHost(HostContext(name="test", catalog=str(catalog)))


# -- helpers --------------------------------------------------------------------------

def rel(path: str, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()


def report_groups(report: HookReport | dict[str, Any], base: Path) -> Groups:
    """The groups of a report's ``details`` (or of a bare ``{"groups": [...]}``), as relative paths."""
    data = report.details if isinstance(report, HookReport) else report
    return {frozenset(rel(m["path"], base) for m in g["members"]) for g in data["groups"]}


def ours(results: list[HookReport]) -> HookReport:
    """The one report in a hook's answers that came from our plugin, checked for consistency:
    its counts are those of the summary in its ``details`` (what ``--json`` prints)."""
    assert all(isinstance(r, HookReport) for r in results), results
    reports = [r for r in results if r.kind in OUR_KINDS]
    assert len(reports) == 1, results
    report = reports[0]
    summary = report.details["summary"]
    assert {k: getattr(report, k) for k in COUNTS} == {k: summary[k] for k in COUNTS}
    assert report.groups == len(report.details["groups"])
    assert [{"path": f.path, "error": f.error} for f in report.failed] == report.details["errors"]
    return report


def query(catalog: Path, sql: str, *args: Any) -> list[tuple]:
    conn = sqlite3.connect(catalog)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def image_paths(catalog: Path) -> set[str]:
    return {r[0] for r in query(catalog, "SELECT source_path FROM images")}


def tag_rows(catalog: Path) -> list[tuple]:
    """Every row of image_tags that carries one of our tags, with the tag's name and the path."""
    return sorted(query(catalog,
        "SELECT i.source_path, t.name, it.image_id, it.tag_id, it.confidence, it.source, it.created_at"
        " FROM image_tags it JOIN tags t ON t.id = it.tag_id JOIN images i ON i.id = it.image_id"
        " WHERE t.name LIKE ?", TAG_PREFIX + "%"))


def tags_by_path(catalog: Path, base: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path, name, *_ in tag_rows(catalog):
        out.setdefault(rel(path, base), set()).add(name)
    return out


def group_rows(catalog: Path) -> list[tuple]:
    return sorted(query(catalog,
        "SELECT g.id, g.primary_image_id, g.similarity_type, g.confidence, g.keeper_reason,"
        " m.image_id, m.relation, m.distance FROM duplicate_groups g"
        " JOIN duplicate_members m ON m.group_id = g.id"))


def assert_tagged_as(catalog: Path, base: Path, groups: Groups, all_photos: list[str]) -> None:
    """Members of ``groups`` carry our tags (one keeper each); every other photo none."""
    tagged = tags_by_path(catalog, base)
    members = set().union(*groups) if groups else set()
    assert set(tagged) == members
    for group in groups:
        keepers = [p for p in group if TAG_PREFIX + "keeper" in tagged[p]]
        assert len(keepers) == 1, (group, tagged)
        for path in group:
            assert TAG_PREFIX + "duplicate" in tagged[path]
            roles = tagged[path] & {TAG_PREFIX + r for r in ("keeper", "exact-copy", "derivative", "edit",
                                                              "raw-jpeg", "burst-sibling")}
            assert len(roles) == 1, (path, tagged[path])
    for path in all_photos:
        if rel(path, base) not in members:
            assert rel(path, base) not in tagged


class Recorder:
    """Another plugin: records the lifecycle hooks it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def lumina_startup(self, host: HostContext) -> None:
        self.calls.append(("startup", host.name))

    @hookimpl
    def lumina_shutdown(self, host: HostContext) -> None:
        self.calls.append(("shutdown", host.name))


# -- loading ---------------------------------------------------------------------------

def test_entry_point_loads_dedup(host: PluginHost) -> None:
    assert ENTRY_POINT_GROUP == "lumina"
    listed = {p["name"]: p for p in host.plugins()}
    assert "dedup" in listed
    info = listed["dedup"]
    assert info["distribution"].startswith("lumina-plugin ")
    assert info["hooks"] == sorted([
        "lumina_images_imported", "lumina_images_moved", "lumina_images_removed", "lumina_menu_actions",
        "lumina_run_action", "lumina_scan_finished"])
    # The entry point names the module itself: the same object the test imports.
    assert host.pm.get_plugin("dedup") is dedup_plugin


def test_autoload_disabled_by_env(monkeypatch: pytest.MonkeyPatch, catalog: Path) -> None:
    monkeypatch.setenv("LUMINA_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost(HostContext(name="test", catalog=str(catalog)))
    assert "dedup" not in {p["name"] for p in host.plugins()}
    assert host.menu_actions() == []
    # The plugin still works when a host registers it by hand.
    host.register(dedup_plugin, name="dedup")
    assert [p["name"] for p in host.plugins()] == ["dedup"]
    assert [p["distribution"] for p in host.plugins()] == [None]


def test_blocked_plugin_is_not_loaded(autoload: None, monkeypatch: pytest.MonkeyPatch,
                                      catalog: Path) -> None:
    monkeypatch.setenv("LUMINA_BLOCK_PLUGINS", "someone-else, dedup")
    host = PluginHost(HostContext(name="test", catalog=str(catalog)))
    assert host.pm.is_blocked("dedup") and host.pm.get_plugin("dedup") is None
    assert not any(p["hooks"] or p["distribution"] for p in host.plugins())
    assert host.menu_actions() == []
    with pytest.raises(ValueError, match="blocked or already registered"):
        host.register(dedup_plugin, name="dedup")


def test_blocked_plugin_is_not_listed(autoload: None, monkeypatch: pytest.MonkeyPatch,
                                      catalog: Path) -> None:
    monkeypatch.setenv("LUMINA_BLOCK_PLUGINS", "dedup")
    host = PluginHost(HostContext(name="test", catalog=str(catalog)))
    assert "dedup" not in {p["name"] for p in host.plugins()}


# -- validation --------------------------------------------------------------------------

def test_unknown_hook_fails_check_pending(host: PluginHost) -> None:
    class Misspelt:
        @hookimpl
        def lumina_no_such_hook(self, host: HostContext) -> None: ...

    with pytest.raises(pluggy.PluginValidationError, match="lumina_no_such_hook"):
        host.register(Misspelt(), name="misspelt")


def test_failed_registration_leaves_host_usable(host: PluginHost) -> None:
    class Misspelt:
        @hookimpl
        def lumina_no_such_hook(self, host: HostContext) -> None: ...

    with pytest.raises(pluggy.PluginValidationError):
        host.register(Misspelt(), name="misspelt")
    assert "misspelt" not in {p["name"] for p in host.plugins()}
    host.register(Recorder(), name="recorder")  # raises today: the bad plugin is still pending


def test_optional_unknown_hook_is_accepted(host: PluginHost) -> None:
    class FromTheFuture:
        @hookimpl(optionalhook=True)
        def lumina_hook_of_a_later_host(self, host: HostContext) -> None: ...

    assert host.register(FromTheFuture(), name="future") == "future"


def test_hook_lumina_images_imported_subset_of_arguments(host: PluginHost, photos: list[str]) -> None:
    """An implementation may name only ``host``: pluggy passes what it asks for."""
    class HostOnly:
        @hookimpl
        def lumina_images_imported(self, host: HostContext) -> HookReport:
            return HookReport(kind="seen", details={"seen_by": host.name})

    host.register(HostOnly(), name="host-only")
    results = host.images_imported(photos[:2])
    assert results[0] == HookReport(kind="seen", details={"seen_by": "test"})  # LIFO: registered last, called first
    assert ours(results).files == 2


# -- lifecycle ------------------------------------------------------------------------------

def test_hook_lumina_startup_is_historic(host: PluginHost) -> None:
    early = Recorder()
    host.register(early, name="early")
    host.startup()
    late = Recorder()
    host.register(late, name="late")  # after startup: the call is replayed to it
    assert early.calls == [("startup", "test")]
    assert late.calls == [("startup", "test")]


def test_hook_lumina_shutdown_on_context_exit(host: PluginHost) -> None:
    rec = Recorder()
    host.register(rec, name="recorder")
    with host as entered:
        assert entered is host
        assert rec.calls == [("startup", "test")]
    assert rec.calls == [("startup", "test"), ("shutdown", "test")]
    host.shutdown()  # already stopped: not fired again
    assert rec.calls[-1] == ("shutdown", "test") and len(rec.calls) == 2


def test_hook_lumina_shutdown_fires_when_the_block_raises(host: PluginHost) -> None:
    rec = Recorder()
    host.register(rec, name="recorder")
    with pytest.raises(RuntimeError):
        with host:
            raise RuntimeError("host crashed")
    assert rec.calls == [("startup", "test"), ("shutdown", "test")]


# -- menu actions -----------------------------------------------------------------------------

def test_hook_lumina_menu_actions(host: PluginHost) -> None:
    actions = host.menu_actions()
    assert all(isinstance(a, MenuAction) for a in actions)
    mine = [a for a in actions if a.label == "Find Duplicates"]
    assert len(mine) == 1
    assert mine[0].id == FIND and mine[0].plugin == "dedup" and mine[0].description


def test_hook_lumina_run_action_find_duplicates(host: PluginHost, photos: list[str], photo_dir: Path,
                                                expected: Groups, catalog: Path) -> None:
    host.images_imported(photos)
    before = tag_rows(catalog)
    action = next(a for a in host.menu_actions() if a.label == "Find Duplicates")
    report = ours([host.run_action(action.id)])
    assert report.kind == "find-duplicates" and report.dry_run is False
    assert report_groups(report, photo_dir) == expected
    assert report.groups == len(expected) and report.duplicates == sum(len(g) - 1 for g in expected)
    assert report.errors == 0 and report.failed == ()
    # The imports had tagged everything already: the action confirms, it changes nothing.
    assert report.details["summary"]["tags_added"] == report.details["summary"]["tags_removed"] == 0
    assert tag_rows(catalog) == before


def test_hook_lumina_run_action_dry_run_writes_nothing(host: PluginHost, photo_dir: Path,
                                                      expected: Groups, catalog: Path) -> None:
    report = ours([host.run_action(FIND, paths=[str(photo_dir)], dry_run=True)])
    assert report.dry_run is True and report.files == 40
    assert report_groups(report, photo_dir) == expected
    assert not catalog.exists()  # a dry run makes no catalog: it writes nothing anywhere (issue 18, item 6)


def test_run_action_unknown_id_raises_key_error(host: PluginHost) -> None:
    with pytest.raises(KeyError, match="no-such-action"):
        host.run_action("no-such-action")


# -- events on a real catalog ---------------------------------------------------------------------

def test_hook_lumina_images_imported_tags_the_catalog(autoload: None, catalog: Path, photos: list[str],
                                                      photo_dir: Path, expected: Groups) -> None:
    seen: list[tuple[str, int, int]] = []
    host = PluginHost(HostContext(name="test", catalog=str(catalog),
                                  progress=lambda phase, done, total: seen.append((phase, done, total))))
    results = host.images_imported(photos, source="watch", job_id="job-1")
    assert isinstance(results, list) and len(results) == 1
    report = ours(results)
    assert report.kind == "import"
    assert report.files == report.hashed == 40 and report.unchanged == 0
    assert report.errors == 0 and report.failed == ()
    assert report.groups == len(expected)
    assert report_groups(report, photo_dir) == expected
    assert ("hashing", 40, 40) in seen  # the host's progress callback reached the engine

    assert image_paths(catalog) == set(photos)
    assert_tagged_as(catalog, photo_dir, expected, photos)
    assert {r[5] for r in tag_rows(catalog)} == {"lumina-dedup"}  # image_tags.source
    assert len({r[0] for r in query(catalog, "SELECT id FROM duplicate_groups")}) == len(expected)
    # The run record names the host's job it belongs to.
    (run,) = query(catalog, "SELECT report FROM dedup_runs")
    assert json.loads(run[0])["job_id"] == "job-1"


def test_images_imported_twice_changes_nothing(host: PluginHost, catalog: Path, photos: list[str],
                                               photo_dir: Path, expected: Groups) -> None:
    host.images_imported(photos)
    tags, groups = tag_rows(catalog), group_rows(catalog)
    images = sorted(query(catalog, "SELECT * FROM images"))
    assert tags and groups

    again = ours(host.images_imported(photos))
    assert again.hashed == 0 and again.unchanged == 40
    assert again.details["summary"]["tags_added"] == again.details["summary"]["tags_removed"] == 0
    assert report_groups(again, photo_dir) == expected
    assert tag_rows(catalog) == tags
    assert group_rows(catalog) == groups
    assert sorted(query(catalog, "SELECT * FROM images")) == images


def test_hook_lumina_scan_finished_regroups_across_batches(host: PluginHost, catalog: Path,
                                                           photos: list[str], photo_dir: Path,
                                                           expected: Groups) -> None:
    # Two batches, every second file each: most groups are split between them.
    host.images_imported(photos[::2])
    host.images_imported(photos[1::2])
    tags = tag_rows(catalog)
    report = ours(host.scan_finished(roots=[str(photo_dir)], job_id="scan-1"))
    assert report.kind == "find-duplicates" and report.groups == len(expected)
    assert report_groups(report, photo_dir) == expected
    assert_tagged_as(catalog, photo_dir, expected, photos)
    assert tag_rows(catalog) == tags  # each batch was already searched against the index


def _group_with(groups: Groups, member: str) -> frozenset[str]:
    return next(g for g in groups if member in g)


def test_hook_lumina_images_removed_copy_of_a_pair(host: PluginHost, catalog: Path, photos: list[str],
                                                   photo_dir: Path, expected: Groups) -> None:
    host.images_imported(photos)
    gone, other = "downloads/astronaut_collins (1).jpg", "downloads/astronaut_collins.jpg"
    pair = _group_with(expected, gone)
    assert pair == {gone, other}
    gone_id = query(catalog, "SELECT id FROM images WHERE source_path=?", str(photo_dir / gone))[0][0]

    report = ours(host.images_removed([str(photo_dir / gone)]))
    assert report.kind == "remove" and report.files == 1
    assert report_groups(report, photo_dir) == expected - {pair}  # a group of 2 is no group

    assert str(photo_dir / gone) not in image_paths(catalog)
    assert query(catalog, "SELECT * FROM image_tags WHERE image_id=?", gone_id) == []
    assert query(catalog, "SELECT * FROM duplicate_members WHERE image_id=?", gone_id) == []
    assert query(catalog, "SELECT * FROM duplicate_pairs WHERE ? IN (image_1, image_2)", gone_id) == []
    remaining = [p for p in photos if rel(p, photo_dir) != gone]
    assert_tagged_as(catalog, photo_dir, expected - {pair}, remaining)  # `other` lost its tags too

    # Importing it again restores the group (its old index id is never reused).
    back = ours(host.images_imported([str(photo_dir / gone)]))
    assert report_groups(back, photo_dir) == expected
    assert_tagged_as(catalog, photo_dir, expected, photos)


def test_images_removed_keeper_regroups_like_a_fresh_import(autoload: None, tmp_path: Path,
                                                             photos: list[str], photo_dir: Path,
                                                             expected: Groups) -> None:
    host = PluginHost(HostContext(name="test", catalog=str(tmp_path / "a.db")))
    first = ours(host.images_imported(photos))
    big = _group_with(expected, "2015/2015-10-29/IMG_8812.jpg")
    keeper = next(g["keeper"] for g in first.details["groups"]
                  if report_groups({"groups": [g]}, photo_dir) == {big})

    report = ours(host.images_removed([keeper]))
    smaller = big - {rel(keeper, photo_dir)}
    assert report_groups(report, photo_dir) == (expected - {big}) | {smaller}
    remaining = [p for p in photos if p != keeper]
    assert_tagged_as(tmp_path / "a.db", photo_dir, (expected - {big}) | {smaller}, remaining)

    # Removing a photo leaves the catalog as if it had never been imported.
    fresh = PluginHost(HostContext(name="test", catalog=str(tmp_path / "b.db")))
    never = ours(fresh.images_imported(remaining))
    assert report_groups(never, photo_dir) == report_groups(report, photo_dir)
    assert tags_by_path(tmp_path / "a.db", photo_dir) == tags_by_path(tmp_path / "b.db", photo_dir)
    assert {g["keeper"] for g in never.details["groups"]} == {g["keeper"] for g in report.details["groups"]}


def test_images_removed_accepts_unnormalised_paths(host: PluginHost, catalog: Path, photos: list[str],
                                                   photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host.images_imported(photos)
    monkeypatch.chdir(photo_dir.parent)
    target = os.path.join(photo_dir.name, "..", photo_dir.name, "downloads", "astronaut_collins.jpg")
    report = ours(host.images_removed([target]))
    assert report.files == 1
    assert str(photo_dir / "downloads" / "astronaut_collins.jpg") not in image_paths(catalog)


# -- typed answers -----------------------------------------------------------------------------------

def test_report_names_the_files_that_failed(host: PluginHost, tmp_path: Path, photos: list[str]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    report = ours(host.images_imported([photos[0], str(broken)]))
    assert report.files == 2 and report.hashed == 1 and report.errors == 1
    (failed,) = report.failed
    assert isinstance(failed, FailedFile) and failed.path == str(broken) and failed.error


def test_report_round_trips_through_json(host: PluginHost, photos: list[str]) -> None:
    """What crosses a process boundary (a Celery result, a queue) comes back equal."""
    report = ours(host.images_imported(photos[:3]))
    text = json.dumps(report.as_json())
    assert HookReport.from_json(json.loads(text)) == report
    assert json.loads(text)["details"] == report.details
    failed = HookReport(kind="import", files=1, errors=1, failed=(FailedFile("/a.jpg", "truncated"),))
    assert HookReport.from_json(failed.as_json()) == failed
    with pytest.raises(dataclasses.FrozenInstanceError):  # a host cannot change what a plugin said
        cast(Any, failed).errors = 0


def test_answers_that_are_not_reports(host: PluginHost, photos: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """A plugin still on the old contract (a dict) is wrapped, not passed on raw; other answers
    are dropped: hosts always get HookReports."""
    class OldStyle:
        @hookimpl
        def lumina_images_imported(self) -> dict[str, Any]:
            return {"summary": {"files": 9}}

        @hookimpl
        def lumina_images_removed(self) -> str:
            return "done"

    host.register(OldStyle(), name="old-style")
    results = host.images_imported(photos[:1])
    assert results[0] == HookReport(kind="lumina_images_imported", details={"summary": {"files": 9}})
    assert ours(results).files == 1
    assert [r.kind for r in host.images_removed(["/nowhere.jpg"])] == ["remove"]
    assert "not a HookReport" in caplog.text


def test_host_package_imports_no_plugin() -> None:
    """lumina_hooks is the host contract alone: pluggy and the standard library."""
    code = ("import sys, lumina_hooks, lumina_hooks.host, lumina_hooks.lumina; "
            "print(sorted(m for m in sys.modules if m.startswith('lumina_plugin')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["bridge", "celery", "listener", "router", "tasks", "worker"])
def test_old_bridge_paths_are_deprecated_aliases(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--include lumina_hooks.lumina.celery`` and the other old paths still work for one
    release: they warn and give the plugin's own module (not a second copy of it)."""
    pytest.importorskip("celery")
    pytest.importorskip("fastapi")
    old, new = f"lumina_hooks.lumina.{name}", f"lumina_plugin.lumina.{name}"
    monkeypatch.delitem(sys.modules, old, raising=False)  # a cached alias would not warn again
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new) is sys.modules[old]
    assert module.__name__ == new


# -- meta ---------------------------------------------------------------------------------------------

def _hook_names() -> list[str]:
    pm = PluginHost(HostContext(name="meta", catalog=":unused:"), load_entrypoints=False).pm
    return sorted(name for name in dir(pm.hook) if name.startswith("lumina_"))


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_test(hook: str) -> None:
    """In the style of datasette's ``test_plugin_hooks_have_tests``: a new hook needs a test here."""
    source = Path(__file__).read_text()
    assert hook in source, f"{hook} is not mentioned in {Path(__file__).name}"
    tests = [name for name, obj in inspect.getmembers(sys.modules[__name__], inspect.isfunction)
             if name.startswith("test_hook_" + hook)]
    assert tests, f"no test named test_hook_{hook}* in {Path(__file__).name}"


def test_meta_test_sees_the_hooks() -> None:
    # Guards the meta-test above: an empty parametrization would only be skipped.
    assert "lumina_startup" in _hook_names() and len(_hook_names()) >= 7


def test_hook_lumina_images_moved_keeps_tags_without_rehashing(host: PluginHost, tmp_path: Path,
                                                               photo_dir: Path) -> None:
    lib = tmp_path / "moving"
    lib.mkdir()
    for name in ("astronaut_collins.jpg", "astronaut_collins (1).jpg"):
        shutil.copy2(photo_dir / "downloads" / name, lib / name)
    catalog = Path(host.context.catalog)
    host.images_imported([str(p) for p in sorted(lib.iterdir())])
    old, new = lib / "astronaut_collins (1).jpg", lib / "sub" / "renamed.jpg"
    new.parent.mkdir()
    old.rename(new)
    report = ours(host.images_moved([(str(old), str(new))]))
    assert report.kind == "move" and report.files == 1
    rows = query(catalog, "SELECT i.source_path, t.name FROM image_tags it JOIN images i ON i.id = it.image_id"
                          " JOIN tags t ON t.id = it.tag_id WHERE i.source_path = ?", str(new))
    assert {r[1] for r in rows} & {"lumina-dedup:derivative", "lumina-dedup:keeper"}
    again = ours(host.images_imported([str(new)]))
    assert again.hashed == 0 and again.unchanged == 1
