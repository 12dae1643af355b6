"""Inputs that describe an environment, each turned into a Plan."""

from portenv.source.pixi import PixiProject, plan_pixi_project

__all__ = ["PixiProject", "plan_pixi_project"]
