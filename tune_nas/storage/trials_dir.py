"""A trials directory on object storage: ``--trials-dir s3://bucket/trials`` (or ``gs://``,
``hdfs://``, any URI pyarrow's filesystems accept).

On a cluster of several nodes the trial results must land where every node can write. With
a URI, Ray's trials (their results and checkpoints) go straight to the storage, through
pyarrow, from the node each trial runs on; the driver keeps its own files (the SQLite study,
``curves.csv``, ``trials.json``, TensorBoard events, the reports) in a local mirror,
``./trials/<name>/``, and copies them to ``<URI>/<name>/`` as trials end (at most once a
minute) and when the search ends or is interrupted. ``--resume`` on another machine fetches
them back first. Credentials come from the environment (``AWS_ACCESS_KEY_ID`` …,
``GOOGLE_APPLICATION_CREDENTIALS``), never from the URI: one written into it is refused, as
it would end up in Ray's experiment state.

Query options of the URI go to pyarrow, e.g. a MinIO or other S3-compatible server:
``s3://bucket/trials?endpoint_override=minio.internal:9000&scheme=http``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tune_nas.layout import DRIVER_LOCK
from tune_nas.record.formatting import first_line as _first_line
from tune_nas.storage.masking import mask_url

#: Where the driver's own files of an experiment on object storage live on the driver.
LOCAL_MIRROR = Path("trials")
#: What Ray writes to the storage itself (trial directories with their checkpoints, the
#: experiment and searcher state): never part of the mirror, so that a mirror copied up can
#: never overwrite Ray's newer state with an older copy.
RAY_OWN = re.compile(r"trial_.*|experiment_state-.*|search_gen_state-.*|searcher-state-.*|"
                     r"basic-variant-state-.*|tuner\.pkl|trainable\.pkl|\.validate_storage_marker")
#: Files of the driver's mirror that are never copied to the storage: Ray's own and the
#: running driver's lock (which only means something on the machine that holds it).
NOT_MIRRORED = re.compile(f"{RAY_OWN.pattern}|{re.escape(DRIVER_LOCK)}")

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class TrialsDirError(ValueError):
    """An unusable ``--trials-dir`` URI; the message is one line naming it and the rule."""


def is_uri(text: str) -> bool:
    return bool(_URI.match(text))


@dataclass
class RemoteTrialsDir:
    """``--trials-dir`` as a pyarrow filesystem and a path on it (``bucket/prefix``)."""

    uri: str
    filesystem: object  # pyarrow.fs.FileSystem
    path: str
    #: (size, mtime) of each local file as last uploaded by this process: unchanged files
    #: (most TensorBoard event files of a long search) are not sent again
    uploaded: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "uploaded": {}}  # another process re-uploads once

    @classmethod
    def parse(cls, uri: str) -> RemoteTrialsDir:
        import pyarrow.fs

        masked = mask_url(uri, hide_user=True)  # any user info (or password parameter) is a credential
        if masked != uri:
            raise TrialsDirError(
                f"--trials-dir {masked}: holds credentials; rule: give them in the "
                "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "GOOGLE_APPLICATION_CREDENTIALS, ...), never in the URI")
        try:
            filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
        except (ValueError, OSError, TypeError) as exc:
            raise TrialsDirError(
                f"--trials-dir {uri}: not a filesystem URI pyarrow can open "
                f"({_first_line(exc)}); rule: a local directory or s3://, gs://, hdfs://... "
                "URI") from None
        path = path.rstrip("/")
        if not path:
            raise TrialsDirError(f"--trials-dir {uri}: no bucket or directory in it; rule: "
                                 "scheme://bucket[/prefix]")
        return cls(uri, filesystem, path)

    def experiment_path(self, name: str) -> str:
        return f"{self.path}/{name}"

    def experiment_uri(self, name: str) -> str:
        """``<URI>/<name>``, query options kept."""
        parts = urlsplit(self.uri)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))

    def display(self, name: str | None = None) -> str:
        """The URI without its query options (endpoint and the like), for reports."""
        parts = urlsplit(self.experiment_uri(name) if name else self.uri)
        return urlunsplit(parts._replace(query=""))

    def check(self) -> None:
        """The bucket (first component of the path) must exist and answer."""
        from pyarrow.fs import FileType

        bucket = self.path.split("/", 1)[0]
        try:
            info = self.filesystem.get_file_info(bucket)
        except OSError as exc:
            raise TrialsDirError(f"--trials-dir {self.display()}: cannot be reached "
                                 f"({_first_line(exc)}); rule: storage the driver and every "
                                 "node can write to") from None
        if info.type == FileType.NotFound:
            raise TrialsDirError(f"--trials-dir {self.display()}: bucket {bucket!r} does not "
                                 "exist; rule: create it first (tune_nas never creates buckets)")

    def exists(self, name: str) -> bool:
        from pyarrow.fs import FileType

        info = self.filesystem.get_file_info(f"{self.experiment_path(name)}/experiment.json")
        return info.type != FileType.NotFound

    def upload(self, local_dir: Path, name: str) -> int:
        """Copy the driver's files of experiment ``name`` that changed since this process last
        uploaded them to the storage; returns how many were copied."""
        return _copy_tree(_local_fs(), str(local_dir.resolve()), self.filesystem,
                          self.experiment_path(name), skip_unchanged=self.uploaded)

    def download(self, name: str, local_dir: Path) -> int:
        """Fetch the driver's files of experiment ``name`` (not Ray's own)."""
        return _copy_tree(self.filesystem, self.experiment_path(name), _local_fs(),
                          str(local_dir.resolve()))


class ThrottledUpload:
    """Upload a mirror at most every ``every_s`` seconds (and always when forced)."""

    def __init__(self, remote: RemoteTrialsDir, local_dir: Path, name: str,
                 every_s: float = 60.0) -> None:
        self.remote, self.local_dir, self.name, self.every_s = remote, local_dir, name, every_s
        self.last = time.monotonic()

    def __call__(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.every_s:
            self.remote.upload(self.local_dir, self.name)
            self.last = time.monotonic()


def _copy_tree(src_fs, src: str, dst_fs, dst: str,
               skip_unchanged: dict[str, tuple[int, int]] | None = None) -> int:
    """Copy the files under ``src`` to ``dst``, skipping Ray's and the driver lock (:data:`NOT_MIRRORED`) and,
    with ``skip_unchanged`` (path → (size, mtime) copied before; updated here), files whose
    size and modification time are those already copied."""
    from pyarrow.fs import FileSelector, FileType

    selector = FileSelector(src, recursive=True, allow_not_found=True)
    copied = 0
    for info in src_fs.get_file_info(selector):
        relative = info.path[len(src.rstrip("/")) + 1:]
        if info.type != FileType.File or any(NOT_MIRRORED.fullmatch(part) for part in relative.split("/")):
            continue
        stamp = (info.size, info.mtime_ns or 0)
        if skip_unchanged is not None and skip_unchanged.get(info.path) == stamp:
            continue
        target = f"{dst}/{relative}"
        dst_fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with src_fs.open_input_stream(info.path) as reader, \
                dst_fs.open_output_stream(target) as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)
        if skip_unchanged is not None:
            skip_unchanged[info.path] = stamp  # only once it is there
        copied += 1
    return copied


def _local_fs():
    from pyarrow.fs import LocalFileSystem

    return LocalFileSystem()


