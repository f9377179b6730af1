"""What this installation has: library versions, devices, and the weights files each default
needs with where they were found, so that a newcomer sees at once what is missing and where
to put it (`greitpose info`)."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from importlib import metadata

from greitpose import __version__, presets
from greitpose.detect import DEFAULT_DETECTOR
from greitpose.downloads import offline
from greitpose.errors import GreitposeError
from greitpose.estimator import DEFAULT_MODEL, default_weights_name
from greitpose.weights import cache_dir, find_weights, search_dirs, user_dir


@dataclass(frozen=True)
class Item:
    """One line of the report; `ok` False marks what stops or degrades a default command."""

    name: str
    value: str
    ok: bool = True


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def runtime_items() -> list[Item]:
    """Python, the libraries greitpose runs on, and the devices they see."""
    import torch

    items = [Item("greitpose", __version__), Item("python", platform.python_version())]
    for package in ("torch", "onnxruntime", "ultralytics", "opencv-python"):
        version = _version(package) or (_version("opencv-python-headless") if package == "opencv-python" else None)
        items.append(Item(package, version or "not installed", version is not None))
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        items.append(Item("device", f"CUDA: {', '.join(names)}"))
    else:
        items.append(Item("device", f"CPU only ({torch.get_num_threads()} threads)"))
    try:
        import onnxruntime

        items.append(Item("onnx providers", ", ".join(onnxruntime.get_available_providers())))
    except ImportError:
        pass
    from greitpose.writers import ffmpeg_exe

    ffmpeg = ffmpeg_exe()
    items.append(Item("ffmpeg", ffmpeg or "none: videos stay MPEG-4 Part 2 from OpenCV, without audio",
                      ffmpeg is not None))
    return items


def weights_items() -> list[Item]:
    """The pose weights of every preset and the default detector: found where, or missing and
    where they go."""
    items = []
    by_size: dict[tuple[int, int], list[str]] = {}
    for preset in presets.PRESETS.values():
        by_size.setdefault(preset.input_size, []).append(preset.name)
    for size, names in by_size.items():
        name = default_weights_name(DEFAULT_MODEL, size, "torch")
        items.append(_found(f"pose weights ({', '.join(names)})", name, "pose weights", "--weights PATH"))
    detector = _found("detector (default)", DEFAULT_DETECTOR, "detector weights", "--detector PATH")
    if not detector.ok and not offline():
        detector = Item(detector.name, f"{DEFAULT_DETECTOR}: not here; fetched into {user_dir()}/ on first "
                                       "use when there is a network (or put it there)", False)
    items.append(detector)
    folders = [str(d) if d.is_dir() else f"{d} (made when needed)" for d in search_dirs()
               if d.is_dir() or d == user_dir()]
    items.append(Item("weights folders", " -> ".join(folders)))
    items.append(Item("export cache", str(cache_dir())))
    items.append(Item("offline", "yes: nothing is fetched" if offline() else "no"))
    return items


def _found(label: str, name: str, what: str, option: str) -> Item:
    try:
        return Item(label, str(find_weights(name, what)))
    except GreitposeError:
        return Item(label, f"{name}: missing; put it in {user_dir()}/ or pass {option}", False)


def report() -> list[Item]:
    return runtime_items() + weights_items()


def as_dict(items: list[Item]) -> dict[str, dict[str, object]]:
    return {item.name: {k: v for k, v in asdict(item).items() if k != "name"} for item in items}
