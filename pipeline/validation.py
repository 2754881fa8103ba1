"""params.yaml checked whole (`cmkd check-params`, and every params tree a test or the benchmark builds): each
section by its validator, the owned ones by their owners (imported here, the one module that needs them all), the
dataset source by the reader registry of pipeline/prepare, and what sections say together. Every problem of the
file comes back in one ParamsError, each naming its key."""
from __future__ import annotations

from . import (
    models,  # noqa: F401  (each owner registers its section's validator on import)
    prepare,
)
from .data import augment  # noqa: F401
from .errors import ParamsError
from .settings import SECTIONS, Settings, problem_lines, raise_problems
from .training import teaching  # noqa: F401


def check_all(settings: Settings) -> Settings:
    """Every section of `settings` validated now; every problem in one ParamsError."""
    problems = []
    for name in [*SECTIONS, *(f"models.{k}" for k in settings.models.keys())]:
        try:
            if name.startswith("models."):
                settings.models[name.split(".", 1)[1]]
            elif name != "models":
                getattr(settings, name)
            if name == "data":
                problems += prepare.source_problems(settings.data.source)
        except ParamsError as e:
            problems += [line for line in problem_lines(e) if line not in problems]
    if not problems and settings.distill.online and settings.dump.cross_fit:
        problems.append("distill.online runs the full teacher in the loop; dump.cross_fit needs the cache")
    if not problems:
        try:
            models.check_frontends(settings.frontends, {a: settings.models[a].name for a in settings.architectures})
        except ParamsError as e:
            problems += problem_lines(e)
    raise_problems(problems, settings.where)
    return settings


def settings_from(raw: dict, where: str = "params") -> Settings:
    """A params tree (as params.yaml holds it) validated whole: every problem at once in one ParamsError."""
    return check_all(Settings(raw, where))
