"""Search-space contracts: choice positions, the `SearchSpace` factory, `Architecture`.

A search space is an ordinary `nn.Module` whose only NAS-specific parts are
`ChoiceBlock`s (named alternatives at one position). The engine never needs to know
what the candidates are: it finds the `ChoiceBlock`s, mixes or samples them during the
search (`hwnas.nas.supernet`), and `freeze` replaces each with the chosen candidate.

Contract a space plugin keeps: a candidate is determined by (candidate name, input
shape) -- two positions that feed the same shape to the same candidate name hold
identical modules -- so a latency table keyed that way can share measurements
between positions (the paper preset's 12 middle blocks share one row per candidate).
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from hwnas.contracts.errors import HwnasError, Setting, naming

if TYPE_CHECKING:
    from hwnas.contracts.layout import Layout

Shape = tuple[int, ...]

OUTPUTS = ("image", "scores")  # what a space's networks return (`SearchSpace.output`) and a task trains on
DEFAULT_MULTIPLE = 64  # input alignment of a space that declares none: safe for U-Nets up to 6 levels


class ChoiceBlock(nn.Module):
    """One choice position: a stable label and named candidate modules.

    On its own it cannot run (there is nothing chosen yet): the search engine wraps it
    (`hwnas.nas.supernet.MixedChoice`) and `freeze` replaces it with one candidate.
    """

    def __init__(self, label: str, candidates: Mapping[str, nn.Module]):
        super().__init__()
        if not label:
            raise ValueError("a ChoiceBlock needs a non-empty label")
        if len(candidates) < 1:
            raise ValueError(f"ChoiceBlock {label!r} needs at least one candidate")
        self.label = label
        self.candidates = nn.ModuleDict(dict(candidates))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.candidates.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            f"ChoiceBlock {self.label!r} has no chosen candidate: run it through "
            "hwnas.nas.supernet.SuperNet (search) or hwnas.freeze (a derived network)."
        )

    def extra_repr(self) -> str:
        return f"label={self.label!r}, candidates={list(self.names)}"


def choice_blocks(net: nn.Module) -> dict[str, tuple[str, ChoiceBlock]]:
    """label -> (module path, block), in forward-definition order; labels must be unique."""
    found: dict[str, tuple[str, ChoiceBlock]] = {}
    for path, module in net.named_modules():
        if isinstance(module, ChoiceBlock):
            if module.label in found:
                raise ValueError(f"two ChoiceBlocks share the label {module.label!r}")
            found[module.label] = (path, module)
    return found


@dataclass(frozen=True)
class Position:
    """A choice position as the latency side sees it."""

    label: str
    path: str
    candidates: tuple[str, ...]
    input_shape: Shape


@dataclass(frozen=True)
class Unit:
    """A measurable piece of a network: a candidate at an input shape, or a fixed part.

    `name` is the candidate name (for candidates) or the fixed part's name; together
    with `input_shape` it is the latency-table key.
    """

    name: str
    input_shape: Shape
    module: nn.Module
    kind: str = "candidate"  # or "fixed"
    path: str | None = None  # module path in the network (fixed parts), for per-layer attribution


class Architecture(BaseModel):
    """A derived architecture: the chosen candidate per position (data, not code).

    Serialised deterministically (no paths, times or run ids), so equal searches give
    equal bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: str
    choices: dict[str, str]

    @classmethod
    def uniform(cls, space: str, positions: Mapping[str, Sequence[str]], candidate: str) -> "Architecture":
        for label, names in positions.items():
            if candidate not in names:
                raise HwnasError(
                    f"candidate {candidate!r} is not offered at position {label!r}; "
                    f"choose one of {', '.join(names)}."
                )
        return cls(space=space, choices={label: candidate for label in positions})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "architecture") -> "Architecture":
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "top level"
            raise HwnasError(
                f"{source} is not an hwnas architecture ({where}: {first['msg']}); "
                "pass the arch.json written by `hwnas search`."
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> "Architecture":
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise HwnasError(f"cannot read architecture file {path} ({err.__class__.__name__}); check the path.") from None
        return cls.from_json(text, source=str(path))

    def save(self, path: str | Path) -> None:
        from hwnas.runs.io import atomic_write_text

        atomic_write_text(Path(path), self.to_json())

    def check(self, space: str, positions: Mapping[str, Sequence[str]]) -> None:
        """Raise a one-line `HwnasError` unless this architecture fits the given positions."""
        if self.space != space:
            raise naming(f"the architecture is for space {self.space!r}, not {space!r}; "
                         f"pass {{space}} or an architecture searched in {space!r}.", space=self.space)
        unknown = [label for label in self.choices if label not in positions]
        missing = [label for label in positions if label not in self.choices]
        if unknown or missing:
            detail = f"unknown positions {unknown[:3]}" if unknown else f"missing positions {missing[:3]}"
            raise naming(f"the architecture does not fit this {space} network ({detail}; it has "
                         f"{len(self.choices)} positions, the network {len(positions)}); check {{preset}} and block counts.",
                         preset=Setting("the space's preset", "--preset"))
        for label, name in self.choices.items():
            if name not in positions[label]:
                raise HwnasError(
                    f"position {label!r} has no candidate {name!r}; choose one of {', '.join(positions[label])}."
                )


def position_names(net: nn.Module) -> dict[str, tuple[str, ...]]:
    """label -> candidate names, in position order."""
    return {label: block.names for label, (_, block) in choice_blocks(net).items()}


def freeze(space_or_net: "SearchSpace | nn.Module", arch: Architecture) -> nn.Module:
    """A plain network with every choice replaced by its chosen candidate.

    Given a `SearchSpace`, a fresh network is built; given a network (e.g. a trained
    super-net), a deep copy is frozen so the chosen candidates keep their weights.
    The chosen candidate takes the `ChoiceBlock`'s module path, so exported node
    names stay traceable to positions.
    """
    if isinstance(space_or_net, SearchSpace):
        net, space_name = space_or_net.build(), space_or_net.name
    else:
        net, space_name = copy.deepcopy(space_or_net), arch.space
    blocks = choice_blocks(net)
    arch.check(space_name, {label: block.names for label, (_, block) in blocks.items()})
    for label, (path, block) in blocks.items():
        replace_module(net, path, block.candidates[arch.choices[label]])
    return net


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put `new` at the dotted module `path` inside `root` (the path keeps its name)."""
    parent_path, _, child = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, child, new)


class SearchSpace(ABC):
    """A named factory for a super-net and its measurable fixed parts.

    Subclasses set `name`, `Config` (a pydantic model of its options), `presets`
    (name -> options) and `default_task` (the registry name of the task it trains on
    unless told otherwise, see `hwnas.contracts.task`), and implement `build` and `fixed_units`.

    Output scale: a network's output is `scale` times its input in height and width
    (1: image to image; 2: x2 super-resolution). `scales` lists those the space can
    build; a space offering more than 1 has a `scale` option in its `Config` (default
    1) and builds the upsampling ending itself -- it is network structure, measured as
    a fixed unit and exported with the network. The engine sets that option from the
    task's `scale`.

    Input and output are declared, so export, inference and the contract tests follow
    the space instead of assuming an image:

    - `multiple`: the input alignment -- the network pads H and W to a multiple of it
      (a U-Net: 2^levels) and tiles start on it; undeclared, `DEFAULT_MULTIPLE`.
    - `output`: "image" (N x C x sH x sW; each output pixel depends on an input region,
      so inputs may be tiled) or "scores" (N x K: one vector of scores per input, e.g.
      a classifier's logits, whatever the input size; never tiled, `scale` is 1).
    """

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    presets: ClassVar[dict[str, dict]] = {}
    default_preset: ClassVar[str | None] = None
    small_preset: ClassVar[str | None] = None  # small enough for tests and quick starts
    default_task: ClassVar[str | None] = None
    scales: ClassVar[tuple[int, ...]] = (1,)
    train_crops: ClassVar[dict[str, int]] = {}  # preset -> a training crop side (input pixels) it is sized for
    in_channels: ClassVar[int] = 3
    output: ClassVar[str] = "image"  # or "scores" (`OUTPUTS`, see above)
    preset: str | None = None  # the preset it was made from, if any (for sidecars and run configs)

    def __init__(self, config: BaseModel):
        self.config = config
        self._layouts: dict[int, Layout] = {}  # by image size; the config is frozen, so layouts are too
        self._fingerprint: str | None = None

    @classmethod
    def from_options(cls, preset: str | None = None, **overrides) -> "SearchSpace":
        """Validate a preset plus explicit overrides (None means 'not given') once."""
        preset = preset or cls.default_preset
        if preset is not None and preset not in cls.presets:
            raise HwnasError(
                f"space {cls.name!r} has no preset {preset!r}; choose one of {', '.join(cls.presets)}."
            )
        options = dict(cls.presets.get(preset, {})) if preset else {}
        options.update({k: v for k, v in overrides.items() if v is not None})
        scale = options.get("scale", 1)
        if scale not in cls.scales:
            raise HwnasError(f"space {cls.name!r} cannot build a network whose output is {scale}x its input (it builds "
                             f"scale {', '.join(map(str, cls.scales))}); choose another task or space.")
        try:
            config = cls.Config(**options)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            where = f"option {field}" if field else "options"
            message = first["msg"].removeprefix("Value error, ")
            raise HwnasError(f"invalid {cls.name} {where}: {message}.") from None
        space = cls(config)
        space.preset = preset
        return space

    @abstractmethod
    def build(self) -> nn.Module:
        """The super-net: a plain module whose choices are `ChoiceBlock`s."""

    def fixed_units(self, image_size: int) -> list[Unit]:
        """Parts outside the choice positions (stem, resampling, head), measurable alone."""
        return []

    @property
    def multiple(self) -> int:
        """Input alignment: H and W are padded to a multiple of this (a property: it may follow the config)."""
        return DEFAULT_MULTIPLE

    @property
    def scale(self) -> int:
        """Output size / input size of the networks built (the `scale` option; 1 without one)."""
        return int(getattr(self.config, "scale", 1))

    @property
    def train_crop(self) -> int | None:
        """A training crop side (input pixels) the preset is sized for, or None: the task's own default."""
        return self.train_crops.get(self.preset or "")

    def example_input(self, image_size: int) -> torch.Tensor:
        return torch.zeros(1, self.in_channels, image_size, image_size)

    def layout(self, image_size: int) -> "Layout":
        """Positions, fixed parts, units and their fingerprints at `image_size` (`hwnas.contracts.layout`),
        traced once per image size: the config is frozen, so the layout is too."""
        from hwnas.contracts.layout import compute_layout

        if image_size not in self._layouts:
            self._layouts[image_size] = compute_layout(self, image_size)
        return self._layouts[image_size]

    def positions(self, image_size: int) -> list[Position]:
        """Each position's label, candidates and the input shape its candidates see.

        Traced on the meta device (no memory, no compute) with the rest of the layout,
        once per image size (`hwnas.contracts.layout.trace_positions`).
        """
        return list(self.layout(image_size).positions)

    def candidate_units(self, image_size: int, net: nn.Module | None = None) -> list[Unit]:
        """One unit per distinct (candidate, input shape), modules taken from `net`."""
        return units_at(self.positions(image_size), net if net is not None else self.build())

    def fingerprint(self) -> str:
        """Changes when the space's definition (name, options, candidates) changes (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        with torch.device("meta"):
            net = self.build()
        config = self.config.model_dump(mode="json")
        if config.get("scale") == 1:  # scale 1 is what every space built before it had the option: old tables stay valid
            del config["scale"]
        if "level_widths" in config and config["level_widths"] is None:  # likewise: the published doubling per level
            del config["level_widths"]
        payload = {
            "space": self.name,
            "config": config,
            "positions": {label: list(names) for label, names in position_names(net).items()},
            "modules": hashlib.sha256(repr(net).encode()).hexdigest(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@runtime_checkable
class Scalable(Protocol):
    """An optional capability of a space: scaled versions of its networks, as options (issue 22).

    `scaled_variants()` names each way of making a network smaller (or, as "wider",
    larger: `hwnas.nas.baselines.GROWING`) and lists its variants, each as the space
    options that make it, e.g. {"narrower": [{"width": 28}, {"width": 24}],
    "shallower": [{"middle_blocks": 8}], "wider": [{"width": 36}]}. A variant is the
    space built with these options on top of its own
    (`from_options(preset, **options, **variant)`). A space without the method has no
    narrowed or widened networks (`hwnas sweep --baselines` says so).
    """

    def scaled_variants(self) -> dict[str, list[dict[str, Any]]]: ...


def units_at(positions: Sequence[Position], net: nn.Module) -> list[Unit]:
    """One unit per distinct (candidate, input shape) of `positions`, modules taken from `net`."""
    blocks = choice_blocks(net)
    units: dict[tuple[str, Shape], Unit] = {}
    for pos in positions:
        block = blocks[pos.label][1]
        for name in pos.candidates:
            units.setdefault((name, pos.input_shape), Unit(name, pos.input_shape, block.candidates[name]))
    return list(units.values())
