"""Cache records: one human-readable JSON file per artifact, written after the artifact.

A record says which node key produced the artifact, from which code, parameters and inputs,
and what the artifact's bytes were. It is written atomically and only once the artifact is
saved whole, so a crash leaves either no record or an old one that no longer matches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mape_unlearn.atomic import atomic_write_file
from mape_unlearn.caching.fingerprint import artifact_digest, stat_signature

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CacheManifest:
    """The directory of cache records."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _file(self, dataset: str) -> Path:
        return self.directory / f"{_SAFE.sub('_', dataset)}.json"

    def read(self, dataset: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._file(dataset).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(
        self,
        dataset: str,
        record: dict[str, Any],
        artifact: Path | None,
        digest: str | None = None,
    ) -> None:
        """Record ``dataset`` as produced now, with the digest of its artifact on disk
        (``digest`` when the caller has just computed it)."""
        if artifact is not None and artifact.exists():
            record = {
                **record,
                "digest": digest or artifact_digest(artifact),
                "files": stat_signature(artifact),
            }
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        atomic_write_file(self._file(dataset), lambda tmp: tmp.write_text(text))

    @staticmethod
    def matches_disk(record: dict[str, Any], artifact: Path | None) -> bool:
        """Whether the artifact on disk is the one recorded (stat first, bytes if needed)."""
        if artifact is None or "digest" not in record:
            return True
        if not artifact.exists():
            return False
        if stat_signature(artifact) == record.get("files"):
            return True
        return artifact_digest(artifact) == record["digest"]

    def external_digest(self, dataset: str, artifact: Path, record: dict[str, Any] | None) -> str:
        """The content digest of an input no node makes (a user's file or model directory),
        read again only when its stat signature (sizes, mtimes) differs from its record's."""
        files = stat_signature(artifact)
        if record is not None and record.get("files") == files and "digest" in record:
            return record["digest"]
        digest = artifact_digest(artifact)
        if record is None or record.get("digest") != digest or record.get("files") != files:
            entry = {"dataset": dataset, "external": True, "key": f"content:{digest}"}
            self.write(dataset, entry, artifact, digest=digest)
        return digest
