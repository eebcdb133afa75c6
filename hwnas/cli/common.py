"""Options shared by every command, so the vocabulary is learnt once."""

from __future__ import annotations

from typing import Optional

import typer

SpaceOpt = typer.Option("nafnet-unet", "--space", help="Search space (see `hwnas spaces`).")
PresetOpt = typer.Option(None, "--preset", help="Preset of the space, e.g. paper or tiny.")
OptionOpt = typer.Option(None, "--option", "-o", help="Space option override KEY=VALUE (YAML value), e.g. -o width=16 -o enc_blocks=[1,1].")
ImageSizeOpt = typer.Option(256, "--image-size", help="H=W at which latency is measured and shapes are reported.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON only.")

OptionalStrList = Optional[list[str]]
