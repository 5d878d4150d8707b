"""requirements.txt, environment.yml and pyproject.toml declare the same dependencies."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def test_environment_yml_lists_the_same_set_as_requirements_txt():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    assert len(pip_sections) == 1
    assert sorted(pip_sections[0]) == _requirements()
    assert "pip" in environment["dependencies"]


def test_pyproject_declares_the_same_set():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    assert sorted(declared) == _requirements()


def test_tensorflow_is_a_range_that_colab_satisfies():
    tensorflow = [line for line in _requirements() if line.startswith("tensorflow")]
    assert tensorflow == ["tensorflow>=2.16"]  # A lower bound only: never reinstalls Colab's.
