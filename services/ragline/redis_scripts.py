"""The Lua scripts ragline runs in Redis, kept as .lua files beside the code that calls them
(`ragline/jobs/lua/`, `ragline/broker/lua/`), each naming its KEYS and ARGV at its top, and read
once per process."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def lua_script(package: str, name: str) -> str:
    """The text of `ragline/<package>/lua/<name>.lua`."""
    return resources.files(f"ragline.{package}").joinpath("lua", f"{name}.lua").read_text()
