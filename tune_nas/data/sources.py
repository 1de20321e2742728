"""Data sets as decoded uint8 arrays, split into train/val/test once and cached.

Every data set becomes an :class:`ArraySplits`: ``uint8`` images in ``N×C×H×W`` and ``int64``
labels for a train, a validation and a test split. Decoding happens once (in the launcher,
before Ray starts); trials receive the arrays through Ray's object store, which shares them
between all trials of a node without copying.

Data sets:

* ``digits`` — scikit-learn's 1,797 handwritten digits (8×8, grey), shipped with the package:
  the offline default.
* ``mnist``, ``fashion_mnist``, ``cifar10`` — torchvision's classes under ``--data-dir``;
  downloaded when online, a clear error naming the directory when offline and absent.
* ``imagefolder:PATH`` — a directory, ``.tar.gz`` or ``.zip`` holding ``train/<class>/*`` and
  ``test/<class>/*`` (optional ``val/<class>/*``; otherwise a seeded split of train).
  Decoded in parallel once and cached as ``.npy`` files next to the data (or in
  ``$TUNE_NAS_CACHE`` / ``~/.cache/tune_nas`` when that directory is read-only). Images of
  several sizes (or not square) are brought to one square size, grey ones to three channels
  when others are in colour (:func:`common_format`).

Regression data (inputs and outputs as numbers, :mod:`tune_nas.data.arrays`) become a
:class:`~tune_nas.data.arrays.RegressionSplits` instead:

* ``arrays:PATH`` — an ``.npz`` (``x``, ``y``) or a ``.csv`` with named columns;
* ``sim:NAME[:SAMPLES]`` — made by a built-in simulator (:mod:`tune_nas.data.simulated`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tune_nas.paths import expand_user

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "imagefolder:PATH", "arrays:PATH",
            "sim:NAME[:SAMPLES]")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
#: An image folder's split folders, by the names data sets ship them under (any letter case).
SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
SPLIT_SEED = 0  # the split never depends on the search seed: trials stay comparable
VAL_FRACTION = 0.1


class DataError(ValueError):
    """A data set that cannot be used, with a message that names it and says why."""


@dataclass(frozen=True)
class ArraySplits:
    """Decoded images (uint8, N×C×H×W) and labels (int64) of the three splits."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    #: what was done to bring the images to one format (an image folder's mixed sizes), or ""
    note: str = ""
    task = "classification"

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 N×C×H×W, got "
                                f"{x.dtype} with shape {x.shape}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {split} has {len(x)} images but {len(y)} labels")
        if not self.mean:
            mean, std = channel_stats(self.train_x)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])

    @property
    def shape_args(self) -> dict[str, int]:
        """What an image model's factory takes first (:mod:`tune_nas.models.registry`)."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "image_size": self.image_size}

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One image's shape (what FLOPs and latency are measured on)."""
        return (self.in_channels, self.image_size, self.image_size)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train_x)} train / {len(self.val_x)} val / "
                f"{len(self.test_x)} test, {self.in_channels}×{self.image_size}×"
                f"{self.image_size}{f' ({self.note})' if self.note else ''}, {self.num_classes} classes")


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..1 scale."""
    sample = images[:: max(1, len(images) // 10_000)].astype(np.float64) / 255.0
    mean = sample.mean(axis=(0, 2, 3))
    std = np.maximum(sample.std(axis=(0, 2, 3)), 1e-3)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): ``fraction`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def _with_val_split(name: str, train_x, train_y, test_x, test_y, classes,
                    fraction: float = VAL_FRACTION, note: str = "") -> ArraySplits:
    kept, held = stratified_split(train_y, fraction, SPLIT_SEED)
    return ArraySplits(name, train_x[kept], train_y[kept], train_x[held], train_y[held],
                       test_x, test_y, tuple(classes), note=note)


def _digits_file() -> Path:
    """The CSV scikit-learn ships its digits in (what ``sklearn.datasets.load_digits`` reads),
    found without importing scikit-learn (1.6 s of imports in the driver and every worker)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise DataError("dataset 'digits': scikit-learn's digits.csv.gz is not installed; rule: "
                    "digits needs scikit-learn (pip install scikit-learn)")


def load_digits_splits() -> ArraySplits:
    """scikit-learn's digits: 8×8 grey, 0..16 scaled to 0..255; 20 % test, then 20 % val
    (a validation set of ~290 images, so that accuracy steps are 0.35 %, not 0.7 %)."""
    table = np.loadtxt(_digits_file(), delimiter=",")  # 1797 rows: 64 pixels, then the label
    pixels = table[:, :-1].reshape(-1, 1, 8, 8)
    images = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = table[:, -1].astype(np.int64)
    train_idx, test_idx = stratified_split(labels, 0.2, SPLIT_SEED)
    return _with_val_split("digits", images[train_idx], labels[train_idx],
                           images[test_idx], labels[test_idx], [str(c) for c in range(10)],
                           fraction=0.2)


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def load_torchvision_splits(name: str, data_dir: str | os.PathLike) -> ArraySplits:
    """MNIST / FashionMNIST / CIFAR10 from ``data_dir``; downloads only when absent."""
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    root = expand_user(data_dir, "data_dir")

    def split(train: bool):
        try:
            return cls(str(root), train=train, download=False)
        except RuntimeError:
            pass
        created = _first_missing(root)
        before = set(root.iterdir()) if created is None and root.is_dir() else set()
        try:
            root.mkdir(parents=True, exist_ok=True)
            return cls(str(root), train=train, download=True)
        except Exception as exc:  # offline, read-only, corrupt
            # a failed download leaves nothing behind: the directories it made (MNIST/raw/, ...)
            made_here = [created] if created is not None else \
                sorted(set(root.iterdir()) - before) if root.is_dir() else []
            for made in made_here:
                if made.is_dir() and not made.is_symlink():
                    shutil.rmtree(made, ignore_errors=True)
                elif made.is_symlink() or made.exists():
                    made.unlink()
            raise DataError(
                f"--data-dir {root}: {name} is not there and could not be downloaded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                f"rule: put the {cls.__name__} files under that directory or run once online"
            ) from None

    def arrays(ds):
        x = np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)

    train, test = split(True), split(False)
    (train_x, train_y), (test_x, test_y) = arrays(train), arrays(test)
    return _with_val_split(name, train_x, train_y, test_x, test_y, list(train.classes))


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (what ``mkdir -p`` creates)."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


# ---------------------------------------------------------------- image folders


def _decode(data: bytes, source: str) -> np.ndarray:
    """The pixels of one image file; :class:`DataError` naming ``source`` if it is none."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode.startswith("I"):  # 16-bit grey (PNG, PGM, TIFF): the top 8 bits, not clipped
                pixels = np.asarray(img, np.float64)
                if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):  # 32-bit integers
                    raise DataError(f"{source}: a {img.mode} image with values from {pixels.min():g} to "
                                    f"{pixels.max():g}; rule: integer grey images hold 0..65535 (16 bits: "
                                    "scaled to 8), or float images in [0, 1] or [0, 255]")
                return np.rint(pixels / 257).astype(np.uint8)
            if img.mode == "F":  # 32-bit float grey (TIFF): scaled with the folder's others
                return _finite_float_grey(np.asarray(img, np.float32), source)
            if img.mode in ("1", "LA", "La"):  # grey: one channel (the alpha dropped)
                img = img.convert("L")
            if img.mode not in ("L", "RGB"):  # palette, RGBA, CMYK, YCbCr, ...
                img = img.convert("RGB")
            return np.asarray(img)
    except DataError:
        raise  # says what is wrong with the pixels already
    except Image.DecompressionBombError as exc:
        raise DataError(f"{source}: {' '.join(str(exc).split()[:8])} (PIL's limit against decompression bombs); "
                        "rule: images of at most Image.MAX_IMAGE_PIXELS pixels (scale such scans down "
                        "before)") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's "cannot identify", truncated files
        reason = str(exc).split(" <")[0] or type(exc).__name__  # without the in-memory file's repr
        raise DataError(f"{source}: not a readable image ({reason}); rule: image files PIL can "
                        f"open ({', '.join(IMAGE_SUFFIXES)})") from None


def _finite_float_grey(pixels: np.ndarray, source: str) -> np.ndarray:
    """A float image's pixels as they are (the folder's float images are scaled together, by
    :func:`_scale_float_images`); :class:`DataError` for a NaN or infinite pixel."""
    if not np.isfinite(pixels).all():
        raise DataError(f"{source}: a float image with NaN or infinite pixels; rule: float images "
                        "hold finite values in [0, 1] or [0, 255]")
    return pixels


def _scale_float_images(splits: Sequence[tuple[list[np.ndarray], list[str]]]) -> str:
    """Bring the float images of an image folder's splits (each: its images, where each came
    from) to 8-bit grey, in place, on **one** scale for the folder: ×255 when every float image
    holds values in [0, 1], else rounded when every one holds values in [0, 255] — judged over
    the folder, so that a dark image keeps its intensity relative to the others; any other range
    is refused naming the file that breaks it, since rescaling images one by one would change
    what they show side by side. Returns what was done, for the data set's note ("" without
    float images)."""
    floats = [(images, i, where[i]) for images, where in splits for i, image in enumerate(images)
              if image.dtype.kind == "f"]
    if not floats:
        return ""
    ranges = [(float(images[i].min()), float(images[i].max())) for images, i, _ in floats]
    low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if low < 0 or high > 255:
        k = next(k for k, r in enumerate(ranges) if r[0] == low) if low < 0 else \
            next(k for k, r in enumerate(ranges) if r[1] == high)
        raise DataError(f"{floats[k][2]}: a float image with values from {ranges[k][0]:g} to {ranges[k][1]:g}; "
                        "rule: the folder's float images hold values in [0, 1] or [0, 255] (scale them alike before)")
    unit = high <= 1
    for images, i, _ in floats:
        images[i] = np.rint(images[i] * 255 if unit else images[i]).astype(np.uint8)
    if unit:
        return f"{len(floats)} float images in [0, 1] scaled by 255"
    dark = sum(r[1] <= 1 for r in ranges)
    return (f"{len(floats)} float images in [0, 255] rounded"
            + (f" ({dark} of them hold values <= 1 only: near-black on that scale)" if dark else ""))


def split_of(folder: str) -> str | None:
    """The split (``train``, ``val``, ``test``) a top folder of an image folder holds, or None."""
    return next((split for split, names in SPLIT_FOLDERS.items() if folder.lower() in names), None)


def _walk(top: Path):
    """(folder, file names) of ``top`` and every folder below it, sorted, following links (as
    torchvision's ImageFolder does) but not hidden folders (``.ipynb_checkpoints``), nor a link
    back to a folder it is in (``cat/all -> ..``), nor a folder already read through another
    name (``a/to_b -> ../b`` beside ``b/to_a -> ../a``): either would read the same images again
    and again until the system's link limit."""
    seen = {os.path.realpath(top)}
    for folder, dirs, files in os.walk(top, followlinks=True):
        here = os.path.realpath(folder)
        kept = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(folder, d))
            if not d.startswith(".") and not _is_within(here, os.path.join(folder, d)) and real not in seen:
                seen.add(real)
                kept.append(d)
        dirs[:] = kept
        yield folder, files


def _image_files(folder: str, files: list[str], top: Path) -> list[tuple[str, os.stat_result]]:
    """(name, status) of the names among ``files`` (in ``folder``, below the image folder
    ``top``) that an image is read from, sorted, each stat-ed once (links followed);
    :class:`DataError` for one that is no regular file: a link to nothing (it could not be read)
    or a pipe or device (reading it could wait forever)."""
    out = []
    for name in sorted(f for f in files if _is_image_name(f)):
        path = os.path.join(folder, name)
        try:
            status = os.stat(path)
        except FileNotFoundError:
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            what = f"a link to {os.readlink(path)}, which does not exist" if status is None else "not a regular file"
            raise DataError(f"imagefolder:{top}: {os.path.relpath(path, top)}: {what}; rule: image files "
                            "(or links to image files) only")
        out.append((name, status))
    return out


def _is_within(here: str, link: str) -> bool:
    """Whether the folder ``link`` leads to is ``here`` or a folder that holds it."""
    target = os.path.realpath(link)
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)


def _folder_members(path: Path) -> dict[str, list[tuple[str, str, Path, os.stat_result]]]:
    """{split folder: [(class, path below the class folder, file, its status)]}: every image of
    each class folder, in its subfolders too (as torchvision's ImageFolder reads them), of the
    directory ``path`` or of its only subfolder that holds a training split. A folder not named
    like a split is not read (it may be anything, a link to ``/`` even); it is listed, empty,
    when it holds split folders itself (a second data set beside the first: the caller's
    message names it). :class:`DataError` for a folder that cannot be read."""

    def holds_train(folder: Path) -> bool:
        return any(p.is_dir() and split_of(p.name) == "train" for p in folder.iterdir())

    members: dict[str, list[tuple[str, str, Path, os.stat_result]]] = {}
    try:
        root = path
        if not holds_train(root):
            subdirs = [p for p in root.iterdir() if p.is_dir() and holds_train(p)]
            if len(subdirs) == 1:
                root = subdirs[0]
        for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if split_of(split_dir.name) is None:
                if any(p.is_dir() and split_of(p.name) for p in split_dir.iterdir()):
                    members[split_dir.name] = []
                continue
            for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for folder, files in _walk(class_dir):
                    for file, status in _image_files(folder, files, root):
                        file_path = Path(folder, file)
                        members.setdefault(split_dir.name, []).append(
                            (class_dir.name, file_path.relative_to(class_dir).as_posix(), file_path, status))
    except OSError as exc:
        raise DataError(f"imagefolder:{path}: cannot be read ({exc.strerror or type(exc).__name__}: "
                        f"{exc.filename}); rule: a directory of readable image files") from None
    return members


def _find_split_root(names: list[str], where: str) -> str:
    """The prefix under which the training split's folder lives (``""``, ``cifar10/``, ...): the
    shallowest folder named like the training split that holds ``<class>/<image>``; a class
    named ``train`` (``test/train/0.png``) or a ``training/`` folder of other files is none."""
    found = []
    for n in names:
        parts = n.split("/")
        if not _is_image_name(parts[-1]):
            continue
        train = next((i for i, part in enumerate(parts[:-2]) if split_of(part) == "train"), None)
        if train is not None:
            found.append((train, "/".join(parts[:train])))
    if not found:
        return ""
    depth = min(found)[0]
    prefixes = sorted({prefix for d, prefix in found if d == depth})
    if len(prefixes) > 1:  # as a directory holding two such folders is refused
        raise DataError(f"{where}: found a training split under each of {', '.join(p + '/' for p in prefixes)}; rule: one "
                        "data set per archive: train/<class>/<image> and test/<class>/<image> under one folder")
    return prefixes[0]


def _read_image_tree(path: Path, members: dict | None
                     ) -> tuple[dict[str, tuple[list[np.ndarray], list[str]]], dict[str, list[str]]]:
    """{split folder: (images, class names)} decoded from a directory (its
    :func:`_folder_members`, ``members``) or an archive (``members`` None), in sorted order
    (float images still float: :func:`_scale_float_images` scales them), and {split folder: where
    each image came from, for messages}; :class:`DataError` for an archive that is not one or a
    file that is not an image."""
    raw: dict[str, list[tuple[str, str, bytes]]] = {}
    if members is not None:
        try:
            for split, items in members.items():
                raw[split] = [(c, n, f.read_bytes()) for c, n, f, _ in items]
        except OSError as exc:
            raise DataError(f"imagefolder:{path}: cannot be read ({exc.strerror or type(exc).__name__}: "
                            f"{exc.filename}); rule: a directory of readable image files") from None
    else:
        raw = _read_archive(path)
    out, wheres = {}, {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for split, items in raw.items():
            items.sort(key=lambda t: (t[0], t[1]))
            wheres[split] = [f"imagefolder:{path}: {split}/{c}/{n}" for c, n, _ in items]
            images = list(pool.map(_decode, [b for _, _, b in items], wheres[split], chunksize=256))
            out[split] = (images, [c for c, _, _ in items])
    return out, wheres


def _is_image_name(name: str) -> bool:
    """An image file's name, not the metadata macOS leaves beside it in archives and copies
    (``._name.png``, ``__MACOSX/``) or another hidden file."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def _read_archive(path: Path) -> dict[str, list[tuple[str, str, bytes]]]:
    """{split: [(class, file name, bytes)]} of the images in a tar archive (any compression)
    or a zip archive."""
    raw: dict[str, list[tuple[str, str, bytes]]] = {}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                # names with backslashes: zips made by Windows tools that wrote its separator
                files = [(info.filename.replace("\\", "/"), info) for info in archive.infolist()
                         if not info.is_dir() and not info.filename.startswith("__MACOSX/")]
                raw = _archive_images(files, archive.read, path)
        else:
            with tarfile.open(path, "r:*") as tar:
                # hard links (GNU tar stores a second name of a file so) and links to files
                # inside the archive are read as the directory they were made from reads them
                files = [(m.name, m) for m in tar.getmembers() if m.isfile() or m.islnk() or m.issym()]
                raw = _archive_images(files, lambda m: _tar_member_bytes(tar, m, path), path)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"imagefolder:{path}: not a readable archive ({reason[:200]}); rule: "
                        "imagefolder:PATH is a directory or a .tar/.tar.gz/.zip archive holding "
                        "train/<class>/<image> and test/<class>/<image>") from None
    return raw


def _tar_member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    """The bytes of a file, hard link or symbolic link of ``tar``; :class:`DataError` for a link
    whose target the archive does not hold."""
    try:
        handle = tar.extractfile(member)
    except KeyError:
        handle = None
    if handle is None:
        raise DataError(f"imagefolder:{path}: {member.name}: a link to {member.linkname}, which the archive does "
                        "not hold; rule: image files (or links to image files in the archive) only")
    return handle.read()


def _archive_images(files: list[tuple[str, Any]], read: Callable[[Any], bytes],
                    path: Path) -> dict[str, list[tuple[str, str, bytes]]]:
    """{split: [(class, file name, bytes)]} of an archive's ``(name, member)`` files under the
    directory that holds ``train/``."""
    raw: dict[str, list[tuple[str, str, bytes]]] = {}
    prefix = _find_split_root([name for name, _ in files], f"imagefolder:{path}")
    for name, member in files:
        if prefix and not name.startswith(prefix + "/"):
            continue
        rel = name[len(prefix):].lstrip("/").split("/") if prefix else name.split("/")
        if len(rel) < 3 or not _is_image_name(rel[-1]) or any(part.startswith(".") for part in rel[1:-1]):
            continue  # not split/class/.../image, or in a hidden folder
        split, cls, below = rel[0], rel[1], "/".join(rel[2:])
        raw.setdefault(split, []).append((cls, below, read(member)))
    return raw


def common_format(tree: dict[str, tuple[list[np.ndarray], list[str]]]) -> tuple[int, bool, str]:
    """The one format every image of an image folder is brought to: (side, colour, note).

    Images that already share one square size keep it. Otherwise (sizes differ, or they are not
    square) the side is the median of the training images' shorter sides, and every image is
    resized to it (shorter side) and centre-cropped to a square — the evaluation transform of
    ImageNet classifiers; ``image_size`` resizes further for a search. When any image is in
    colour, grey ones are given three equal channels. ``note`` says what was done ("" if
    nothing)."""
    images = [im for split_images, _ in tree.values() for im in split_images]
    colour = any(im.ndim == 3 for im in images)
    sizes = {im.shape[:2] for im in images}
    notes = []
    if len(sizes) == 1 and (size := next(iter(sizes)))[0] == size[1]:
        side = size[0]
    else:
        side = int(np.median([min(im.shape[:2]) for im in tree["train"][0]]))
        heights, widths = [h for h, _ in sizes], [w for _, w in sizes]
        notes.append(f"resized to {side} px (shorter side) and centre-cropped: the images are "
                     f"{min(heights)}-{max(heights)} × {min(widths)}-{max(widths)} px")
    if colour and any(im.ndim == 2 for im in images):
        notes.append("grey images given three channels")
    return side, colour, "; ".join(notes)


def conform(image: np.ndarray, side: int, colour: bool) -> np.ndarray:
    """``image`` (H×W or H×W×3) as a ``side``×``side`` square (shorter side resized with
    antialiasing, then the centre cut out), with three channels when ``colour``."""
    height, width = image.shape[:2]
    if (height, width) != (side, side):
        from PIL import Image

        scale = side / min(height, width)
        new_h, new_w = max(side, round(height * scale)), max(side, round(width * scale))
        resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
        top, left = (new_h - side) // 2, (new_w - side) // 2
        image = resized[top:top + side, left:left + side]
    if colour and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """N×C×H×W from images of one shape (H×W or H×W×C)."""
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def _fingerprint(source: Path, members: dict | None) -> str:
    """What the decoded images depend on: an archive's size and time (``members`` None); a
    directory's every image file that is read (its :func:`_folder_members`: relative path, size,
    time), since adding, changing or moving an image inside a class folder leaves the top
    directory's own time as it was."""
    if members is None:
        status = source.stat()
        return f"{status.st_size}|{status.st_mtime_ns}"
    digest = hashlib.sha1()
    for split, items in members.items():
        digest.update(f"{split}/\n".encode())
        for cls, below, _, status in items:
            digest.update(f"{split}/{cls}/{below}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


#: Bumped whenever what an image folder decodes to changes (a cache of an older rule is not read).
_CACHE_FORMAT = 5


def _cache_dir(source: Path, members: dict | None) -> Path:
    key = hashlib.sha1(f"{source.resolve()}|{_fingerprint(source, members)}|{_CACHE_FORMAT}".encode()).hexdigest()[:12]
    beside = source.parent / f".{source.name.split('.')[0]}.tune_nas-cache-{key}"
    if os.access(source.parent, os.W_OK):
        return beside
    base = Path(os.environ.get("TUNE_NAS_CACHE", Path.home() / ".cache" / "tune_nas"))
    return base / f"{source.name.split('.')[0]}-{key}"


_ARRAY_NAMES = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


def _missing_imagefolder(path: str | os.PathLike) -> Path:
    source = expand_user(path, "imagefolder:")
    if not source.exists():
        raise DataError(f"imagefolder:{path}: no such directory or file; rule: imagefolder:PATH needs an "
                        "existing directory, .tar.gz or .zip with train/<class>/ and test/<class>/")
    return source


def load_imagefolder_splits(path: str | os.PathLike) -> ArraySplits:
    """An ImageFolder tree (directory, tar.gz or zip), decoded once and cached as .npy files."""
    source = _missing_imagefolder(path)
    name = f"imagefolder:{path}"
    members = _folder_members(source) if source.is_dir() else None  # walked once: fingerprint, then read
    cache = _cache_dir(source, members)
    if (cache / "classes.txt").exists():
        try:
            arrays = {k: np.load(cache / f"{k}.npy", mmap_mode="r") for k in _ARRAY_NAMES}
            classes = json.loads((cache / "classes.txt").read_text())  # a class name may hold a newline
            note = (cache / "note.txt").read_text() if (cache / "note.txt").exists() else ""
            return ArraySplits(name, **arrays, classes=tuple(classes), note=note)
        except (OSError, ValueError):
            pass  # a cache cut short (a full disk, a killed run): decoded again below
    found, wheres = _read_image_tree(source, members)
    tree: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    folder_of: dict[str, str] = {}  # split -> the folder it was read from (for messages)
    for folder in sorted(found):
        split = split_of(folder)
        if split in tree:
            twice = sorted(f for f in found if split_of(f) == split)
            raise DataError(f"{name}: {' and '.join(f + '/' for f in twice)} both hold the {split} split; "
                            f"rule: one folder per split (its names: {', '.join(SPLIT_FOLDERS[split])})")
        if split is not None:
            tree[split], folder_of[split] = found[folder], folder
    if "train" not in tree or "test" not in tree:
        inside = split_of(source.name.split(".")[0]) if source.is_dir() else None
        hint = f" ({source.name}/ is itself a {inside} split folder: name the folder above it)" if inside else ""
        raise DataError(f"{name}: found splits {sorted(found) or 'none'}{hint}; rule: the folder must "
                        "hold train/<class>/<image> and test/<class>/<image> (val/<class>/<image> "
                        "optional; also named training, testing, valid, validation, in any letter case)")
    classes = sorted(set(tree["train"][1]))
    index = {c: i for i, c in enumerate(classes)}
    tree = {split: tree[split] for split in ("train", "val", "test") if split in tree}
    scaled = _scale_float_images([(tree[split][0], wheres[folder_of[split]]) for split in tree])
    side, colour, reformatted = common_format(tree)
    note = "; ".join(n for n in (scaled, reformatted) if n)

    def xy(split):
        images, names = tree[split]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(f"{name}: {folder_of[split]}/ has classes {unknown} that {folder_of['train']}/ "
                            f"lacks; rule: every class must appear in {folder_of['train']}/")
        if reformatted:  # else every image has the format already
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                images = list(pool.map(conform, images, [side] * len(images), [colour] * len(images)))
        return _stack(images), np.array([index[c] for c in names], np.int64)

    if len(classes) < 2:
        raise DataError(f"{name}: train/ holds {len(classes)} class folder with images ({', '.join(classes)}); "
                        "rule: a classifier needs two or more classes, train/<class>/ for each")
    train_x, train_y = xy("train")
    test_x, test_y = xy("test")
    if "val" in tree:
        val_x, val_y = xy("val")
        splits = ArraySplits(name, train_x, train_y, val_x, val_y, test_x, test_y, tuple(classes), note=note)
    else:
        splits = _with_val_split(name, train_x, train_y, test_x, test_y, classes, note=note)
        if not len(splits.val_y):
            raise DataError(f"{name}: no validation images: {VAL_FRACTION:.0%} of each class of train/ "
                            f"({len(train_y)} images) rounds to none; rule: a val/<class>/ folder, or "
                            f"at least {int(0.5 / VAL_FRACTION) + 1} training images in a class")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for k in _ARRAY_NAMES:
            np.save(cache / f"{k}.npy", getattr(splits, k))
        (cache / "note.txt").write_text(note)
        (cache / "classes.txt").write_text(json.dumps(list(classes)))
    except OSError:
        pass  # a cache we cannot write only costs time next run
    return splits


def load_splits(dataset: str, data_dir: str | os.PathLike = "data", inputs=(), outputs=()):
    """Load ``dataset`` (one of :data:`DATASETS`), raising :class:`DataError` on bad input: an
    :class:`ArraySplits` of images, or a :class:`~tune_nas.data.arrays.RegressionSplits` for
    ``arrays:`` and ``sim:`` data (``inputs``/``outputs`` name a CSV's columns)."""
    if dataset.startswith("arrays:") and len(dataset) > len("arrays:"):
        from tune_nas.data.arrays import load_array_file

        return load_array_file(dataset.split(":", 1)[1], inputs, outputs)
    if dataset.startswith("sim:"):
        from tune_nas.data.simulated import load_simulated

        return load_simulated(dataset, data_dir)
    if dataset == "digits":
        return load_digits_splits()
    if dataset in _TORCHVISION:
        return load_torchvision_splits(dataset, data_dir)
    if dataset.startswith("imagefolder:"):
        return load_imagefolder_splits(dataset.split(":", 1)[1])
    raise DataError(f"--dataset {dataset!r}: unknown data set; rule: one of {', '.join(DATASETS)}")


def check_dataset_name(dataset: str) -> None:
    """Raise :class:`DataError` unless ``dataset`` names a known data set (no I/O)."""
    if dataset in ("digits", *_TORCHVISION) or any(
        dataset.startswith(prefix) and len(dataset) > len(prefix) for prefix in ("imagefolder:", "arrays:")
    ):
        return
    if dataset.startswith("sim:"):
        from tune_nas.data.simulated import parse_simulated

        parse_simulated(dataset)
        return
    raise DataError(f"--dataset {dataset!r}: unknown data set; rule: one of {', '.join(DATASETS)}")


def check_dataset_exists(dataset: str) -> None:
    """Raise :class:`DataError` when ``dataset`` names a file or directory (``arrays:PATH``,
    ``imagefolder:PATH``) that does not exist: the first thing wrong, before any rule that
    follows from the data (a regression model for arrays, ...)."""
    if dataset.startswith("arrays:"):
        from tune_nas.data.arrays import missing_array_file

        missing_array_file(dataset[len("arrays:"):])
    elif dataset.startswith("imagefolder:"):
        _missing_imagefolder(dataset[len("imagefolder:"):])


# ---------------------------------------------------------------- low fidelity


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux's MemAvailable; physical memory where
    that cannot be read)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # without psutil: Linux's own estimate, else the pages the OS reports free
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _check_resized_size(splits: ArraySplits, train_images: int, image_size: int) -> None:
    """A DataError when ``splits`` resized to ``image_size`` px would not fit in memory: the
    resized images (bytes) and the largest split as float32 while it is resized."""
    channels = splits.train_x.shape[1]
    counts = (train_images, len(splits.val_x), len(splits.test_x))
    pixels = channels * image_size * image_size
    needed = sum(counts) * pixels + max(counts) * pixels * 4
    available = available_memory()
    if needed > available // 2:
        raise DataError(f"image_size={image_size}: {splits.name} resized to {image_size} px needs "
                        f"{needed / 2**30:,.1f} GiB of memory ({sum(counts)} images × {channels} × "
                        f"{image_size}²), this machine has {available / 2**30:,.1f} GiB available; rule: a "
                        "size whose images fit in half of it")


def check_reduced_fidelity(splits, train_fraction: float = 1.0, image_size: int = 0,
                           seed: int = SPLIT_SEED) -> np.ndarray | None:
    """:class:`DataError` when :func:`reduce_fidelity` would refuse ``train_fraction`` or
    ``image_size`` for ``splits`` (without resizing anything: a command checks its settings so
    before it starts); else the indices of the training images kept (None: all)."""
    if not 0 < train_fraction <= 1:
        raise DataError(f"train_fraction={train_fraction}: rule: 0 < train_fraction <= 1")
    if getattr(splits, "task", "classification") == "regression":
        if image_size:
            raise DataError(f"image_size={image_size}: {splits.name} is no image data set; rule: 0")
        return None
    if image_size < 0:
        raise DataError(f"image_size={image_size}: rule: 0 (native) or a positive size in px")
    keep = None
    if train_fraction < 1:
        _, keep = stratified_split(splits.train_y, train_fraction, seed)
        counts, kept = np.bincount(splits.train_y, minlength=splits.num_classes), np.bincount(
            splits.train_y[keep], minlength=splits.num_classes)
        if ((counts > 0) & (kept == 0)).any():
            smallest = int(counts[counts > 0].min())
            raise DataError(f"train_fraction={train_fraction:g}: keeps no training image of a class of "
                            f"{splits.name} (the smallest has {smallest}); rule: a fraction that keeps one "
                            f"image of every class, above {0.5 / smallest:.2g}")
    if image_size not in (0, splits.image_size):
        _check_resized_size(splits, len(splits.train_y) if keep is None else len(keep), image_size)
    return keep


def reduce_fidelity(splits: ArraySplits, train_fraction: float = 1.0, image_size: int = 0,
                    seed: int = SPLIT_SEED) -> ArraySplits:
    """A cheaper proxy of ``splits`` for search: a stratified ``train_fraction`` of the training
    images and/or every split resized to ``image_size`` px (0 keeps the native size).

    Validation and test keep all their images, so that proxy scores stay comparable across
    trials; they are resized too, since the model sees one resolution.
    """
    if getattr(splits, "task", "classification") == "regression":
        check_reduced_fidelity(splits, train_fraction, image_size, seed)
        return splits.reduced(train_fraction, seed)
    keep = check_reduced_fidelity(splits, train_fraction, image_size, seed)
    if keep is None and image_size in (0, splits.image_size):
        return splits
    train_x, train_y = (splits.train_x, splits.train_y) if keep is None else (splits.train_x[keep], splits.train_y[keep])

    def resize(x: np.ndarray) -> np.ndarray:
        if image_size in (0, x.shape[2]):
            return np.ascontiguousarray(x)
        import torch
        import torch.nn.functional as F

        out = F.interpolate(torch.from_numpy(np.array(x, copy=True)).float(),  # x may be read-only
                            size=(image_size, image_size), mode="bilinear", antialias=True,
                            align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8).numpy()

    tag = []
    if train_fraction < 1:
        tag.append(f"{train_fraction:g} of train")
    if image_size not in (0, splits.image_size):
        tag.append(f"{image_size}px")
    return ArraySplits(f"{splits.name} [{', '.join(tag)}]", resize(train_x), train_y,
                       resize(splits.val_x), splits.val_y, resize(splits.test_x), splits.test_y,
                       splits.classes, note=splits.note)
