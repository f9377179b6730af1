"""Named speed/accuracy settings for `infer` (`--preset`), each a bundle of options a user could
also set one by one; what each costs in accuracy and gains in speed is measured in
docs/benchmarks.md (coco-tiny AP, frames/s against yolo11n-pose on a 2-core CPU)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from greitpose.errors import GreitposeError


@dataclass(frozen=True)
class Preset:
    name: str
    input_size: tuple[int, int]  # pose model input (its weights file is chosen by it)
    flip: bool  # flip-test averaging: two crops per person
    det_size: int  # detector input size
    det_every: int  # video: detector every N frames, pose-guided tracking in between
    summary: str

    def settings(self) -> dict[str, object]:
        """Keyword arguments for PoseEstimator."""
        values = asdict(self)
        del values["name"], values["summary"]
        return values


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("accurate", (256, 192), True, 640, 1, "256x192 pose with flip test, detector at 640 on every frame"),
    Preset("balanced", (256, 192), False, 416, 1, "256x192 pose without flip test, detector at 416"),
    Preset("fast", (128, 96), True, 416, 1, "128x96 pose with flip test, detector at 416"),
)}
#: Images are few and worth the time; videos default to a real-time trade (docs/benchmarks.md).
IMAGE_DEFAULT = "accurate"
VIDEO_DEFAULT = "fast"


def get(name: str | None, is_video: bool) -> Preset:
    """The preset called `name`, or the default for the source kind."""
    name = name or (VIDEO_DEFAULT if is_video else IMAGE_DEFAULT)
    if name not in PRESETS:
        raise GreitposeError(f"unknown preset '{name}' ({', '.join(PRESETS)})")
    return PRESETS[name]


def resolve(name: str | None, is_video: bool, has_detector: bool = True, input_size: tuple[int, int] | None = None,
            flip: bool | None = None, det_size: int | None = None, det_every: int | None = None) -> dict[str, object]:
    """PoseEstimator settings: the preset's (by name, or the source kind's default), where the
    user gave no value of their own. Images never skip detection; without a detector there is
    nothing to fall back on, so the preset's pose-guided tracking is left out."""
    preset = get(name, is_video)
    if not is_video:
        det_every = 1
    elif det_every is None:
        det_every = preset.det_every if has_detector else 1
    return {"input_size": input_size or preset.input_size, "flip": preset.flip if flip is None else flip,
            "det_size": det_size or preset.det_size, "det_every": det_every}
