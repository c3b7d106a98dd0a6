"""The framework catalogue as users see it: each entry with the commands its recipe runs."""
import dataclasses
from dataclasses import dataclass

from backend.deploy.recipes import describe
from backend.frameworks import FRAMEWORKS


@dataclass(frozen=True)
class CatalogueEntry:
    """A framework and what a deploy of a typical repository of it runs."""

    key: str
    display_name: str
    language: str
    default_port: int
    description: str
    build_command: str | None
    start_command: str


def catalogue():
    """Every framework the platform builds and runs, in the catalogue's order."""
    return [CatalogueEntry(**dataclasses.asdict(framework), **describe(framework.key))
            for framework in FRAMEWORKS.values()]
