"""The configuration of a training run: everything about it that is not in the recipe
(:class:`RunConfig`), checked where it enters, and the command that continues it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from igc import checks
from igc.errors import IGCError
from igc.train.recipe import Recipe, validate


@dataclass
class RunConfig:
    """Everything about a run that is not in the recipe."""

    model: str
    data: str
    recipe: Recipe
    out: Path
    data_dir: str | None = None
    device: str = "auto"
    resume: bool = False
    force: bool = False
    quiet: bool = False
    download: bool = True
    num_workers: int = 0
    overrides: list = field(default_factory=list)  # applied on top of a resumed recipe
    command: str = ""

    def check(self) -> RunConfig:
        """``self`` with every field range-checked (the API accepts what the CLI does)."""
        checks.check_name(self.model, "model")
        checks.check_name(self.data, "data set")
        if not isinstance(self.recipe, Recipe):
            raise IGCError(f"recipe must be a Recipe (see igc.train.load_recipe), got "
                           f"{type(self.recipe).__name__}")
        validate(self.recipe)
        self.out = checks.check_path(self.out, "--out")
        if self.data_dir is not None:  # stored absolute: a resume from elsewhere finds it
            self.data_dir = str(checks.check_existing(self.data_dir, "--data-dir",
                                                      "dir").absolute())
        checks.check_name(self.device, "device", 40)
        checks.check_int(self.num_workers, "--workers", 0, checks.MAX_WORKERS)
        if len(self.command) > 100_000:
            raise IGCError("the command line recorded for the run is over 100,000 characters")
        return self

    def resume_command(self) -> str:
        """The ``igc train`` command that continues this run (every option it needs)."""
        parts = ["igc", "train", "--model", self.model, "--data", self.data, "--out",
                 str(self.out)]
        if self.data_dir is not None:
            parts += ["--data-dir", str(self.data_dir)]
        if self.device not in ("auto", ""):
            parts += ["--device", self.device]
        if self.num_workers:
            parts += ["--workers", str(self.num_workers)]
        if not self.download:
            parts.append("--no-download")
        return " ".join(shlex.quote(p) for p in [*parts, "--resume"])


__all__ = ["RunConfig"]
