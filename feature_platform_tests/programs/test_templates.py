"""Program templates: every error with its path, all-or-nothing publishing, immutable
fingerprinted versions, diff, and the `programs` commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from feature_platform import Settings
from feature_platform.cli import main
from feature_platform.commands.init import scaffold
from feature_platform.defs.location import build_definitions
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.audit import AuditLog
from feature_platform.programs.project import (
    ProgramDefinition,
    load_project,
    template_registry,
    validate_project,
)
from feature_platform.programs.template import ProgramTemplate, TemplateValidationError


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return scaffold(tmp_path / "proj", "wine")[0].parent


def _edit(project: Path, change) -> Path:  # noqa: ANN001
    path = project / "programs" / "wine.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))
    return path


def _bad(document: dict) -> None:
    document["strategy"]["name"] = "margn"
    document["source"]["entity"] = "sample_key"
    document["labels"]["classes"] = ["class_0", "class_1"]
    document["model"]["estimator"] = "sklearn.linear_model:NoSuchModel"
    document["batch_size"] = 0


def test_a_valid_template_makes_the_core_program(project: Path) -> None:
    (definition,) = load_project(project)
    program = definition.program
    assert program.name == "wine" and program.feature_set == "wine@training"
    assert program.classes == ("class_0", "class_1", "class_2")
    assert program.holdout_source == "wine_raw_holdout_labels"
    assert definition.model_name == "wine-classifier"
    assert validate_project(project) == {str(project / "programs" / "wine.yaml"): []}
    assert type(program.build_estimator()).__name__ == "LogisticRegression"


def test_a_bad_template_reports_every_error_with_its_path(project: Path) -> None:
    path = _edit(project, _bad)
    errors = ProgramTemplate.from_file(path).validate()
    paths = {e.path for e in errors}
    assert {"strategy.name", "model.estimator", "batch_size"} <= paths
    assert "source.entity" in paths or any(e.path.startswith("features[") for e in errors)
    assert any("Did you mean 'margin'" in e.message for e in errors)
    # The source is read only when the structure is right: fix the entity, see the label set.
    _edit(project, lambda d: d["source"].update(entity="sample_id"))
    errors = ProgramTemplate.from_file(path).validate()
    assert [e.path for e in errors if e.path == "labels.classes"] == ["labels.classes"]
    assert "class_2" in next(e.message for e in errors if e.path == "labels.classes")


def test_a_missing_column_is_named_with_its_path(project: Path) -> None:
    _edit(project, lambda d: d["source"].update(event_time="received_at", ground_truth="y"))
    errors = ProgramTemplate.from_file(project / "programs" / "wine.yaml").validate()
    assert {(e.path, e.message) for e in errors} == {
        ("source.event_time", "column 'received_at' is not in the source"),
        ("source.ground_truth", "column 'y' is not in the source"),
    }


def test_publish_is_all_or_nothing_and_versions_are_immutable(project: Path, tmp_path) -> None:
    registry = template_registry(Settings.under(tmp_path / "fp"))
    good = ProgramTemplate.from_file(project / "programs" / "wine.yaml")
    # A second program of the same name in one publish: refused, nothing written.
    with pytest.raises(TemplateValidationError, match="duplicate program name 'wine'"):
        registry.publish_many([good, good])
    assert registry.names() == []
    first, new = registry.publish(good)
    assert (first.id, new) == ("wine@v1", True)
    again, new = registry.publish(good)
    assert (again.id, new, again.fingerprint) == ("wine@v1", False, first.fingerprint)
    changed = ProgramTemplate({**good.document, "batch_size": 5}, good.base_dir)
    bad = ProgramTemplate({**good.document, "strategy": {"name": "nope"}}, good.base_dir)
    with pytest.raises(TemplateValidationError) as refused:
        registry.publish_many([changed, bad])
    assert "wine:strategy.name" in str(refused.value)
    assert [v.version for v in registry.versions("wine")] == ["v1"]  # not half-registered
    second, new = registry.publish(changed)
    assert (second.id, new) == ("wine@v2", True)
    assert registry.diff("wine@v1", "wine@v2") == ["batch_size: 10 -> 5"]
    assert registry.get("wine", "v1").document["batch_size"] == 10  # v1 unchanged
    # The program runs its current version, the one published last (here v2, not the file's
    # v1); publishing the file's content again makes v1 current again, with no new version.
    assert registry.current("wine") == "v2"
    program = load_project(project, registry=registry)[0].program
    assert (program.template_version, program.batch_size) == ("wine@v2", 5)
    assert registry.publish(good) == (registry.get("wine", "v1"), False)
    program = load_project(project, registry=registry)[0].program
    assert (program.template_version, program.batch_size) == ("wine@v1", 10)


def test_programs_commands(project: Path, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    for name in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["programs", "validate", str(project)]) == 0
    _edit(
        project, lambda d: d.update(annotators={"pool": ["ana", "bo"], "roles": {"bo": "reviewer"}})
    )
    # Publishing needs `manage_programs`: nobody registered may not, nor may an annotator.
    monkeypatch.setenv("FP_USER", "lou")
    assert main(["programs", "publish", str(project)]) != 0
    assert "'lou' (via FP_USER) may not manage_programs" in capsys.readouterr().err
    # The first admin registers themselves (as the README says), then adds an annotator.
    assert main(["annotators", "add", "lou", "--role", "admin"]) == 0
    assert main(["annotators", "add", "cy", "--role", "annotator"]) == 0
    monkeypatch.setenv("FP_USER", "cy")
    assert main(["programs", "publish", str(project)]) != 0
    assert "'cy' may not manage_programs: their role is 'annotator'" in capsys.readouterr().err
    assert main(["programs", "list"]) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("FP_USER", "lou")
    assert main(["programs", "publish", str(project)]) == 0
    out = capsys.readouterr().out
    assert "wine@v1: published" in out and "feature set wine@v1: active" in out
    assert "ana: annotator" in out and "bo: reviewer" in out
    assert main(["--program", "wine", "annotators", "list"]) == 0
    listed = capsys.readouterr().out
    assert "reviewer" in listed and "lou" in listed  # the publisher manages the program
    platform = Settings.from_env(scoped=False)
    engine = sa.create_engine(platform.database_url)
    published = AuditLog(engine).entries(action="program_template.publish")
    assert published[["actor", "target"]].values.tolist() == [["lou", "wine@v1"]]
    engine.dispose()
    assert main(["--program", "wine", "features", "list"]) == 0
    assert "wine@v2" in capsys.readouterr().out
    assert "FP_PROGRAM" not in os.environ  # `--program` scoped that one command
    _edit(project, _bad)
    assert main(["programs", "validate", str(project)]) == 2
    err = capsys.readouterr().err
    assert "strategy.name: unknown strategy 'margn'" in err and "model.estimator" in err
    assert main(["programs", "publish", str(project)]) == 2
    assert "nothing was published" in capsys.readouterr().err
    assert main(["programs", "list"]) == 0
    assert capsys.readouterr().out.startswith("wine: v1 (current v1")
    assert main(["programs", "show", "wine@v1"]) == 0
    assert "estimator: sklearn.linear_model:LogisticRegression" in capsys.readouterr().out


def test_a_duplicate_program_name_in_a_project_fails_validation(project: Path) -> None:
    text = (project / "programs" / "wine.yaml").read_text()
    (project / "programs" / "wine_copy.yaml").write_text(text)
    found = validate_project(project)
    assert found[str(project / "programs" / "wine.yaml")] == []
    (error,) = found[str(project / "programs" / "wine_copy.yaml")]
    assert error.path == "name" and "duplicate program name 'wine'" in error.message
    with pytest.raises(TemplateValidationError, match="wine_copy.yaml:name"):
        load_project(project)


def test_a_template_that_could_not_run_is_refused_before_anything_is_published(
    project: Path, tmp_path
) -> None:
    # No true labels: every round's held-out evaluation would fail at its first retrain.
    path = _edit(project, lambda d: d["source"].pop("ground_truth"))
    errors = ProgramTemplate.from_file(path).validate()
    assert [e.path for e in errors] == ["source.ground_truth"]
    # A role given to a name the people registry would refuse; an empty pool is no pool.
    _edit(project, lambda d: d["source"].update(ground_truth="label"))
    path = _edit(project, lambda d: d.update(annotators={"pool": None, "roles": {"x y": "lead"}}))
    template = ProgramTemplate.from_file(path)
    assert {e.path for e in template.validate()} == {"annotators.roles.x y"}
    assert template.resolved["annotators"]["pool"] == []
    registry = template_registry(Settings.under(tmp_path / "fp"))
    with pytest.raises(TemplateValidationError):
        registry.publish(template)
    assert registry.names() == []


def test_two_programs_whose_names_fold_alike_are_refused_in_one_location(
    project: Path, tmp_path
) -> None:
    (wine,) = load_project(project)
    twin = ProgramDefinition(
        ProgramTemplate({**wine.template.document, "name": "wine.2"}, wine.template.base_dir)
    )
    other = ProgramDefinition(
        ProgramTemplate({**wine.template.document, "name": "wine_2"}, wine.template.base_dir)
    )
    with pytest.raises(FeaturePlatformError, match="would share asset keys"):
        build_definitions(Settings.under(tmp_path / "fp"), [twin, other])
