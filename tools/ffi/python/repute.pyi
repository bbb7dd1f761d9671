"""Type stubs for repute, the Python bindings of the repute reputation engine."""

from os import PathLike
from typing import Any, Iterable, Iterator, Literal, Optional, Sequence, TypedDict, Union

__version__: str

class Hit(TypedDict):
    query: Union[str, bytes]
    type: Literal["md5", "sha1", "sha256", "url", "domain"]
    verdict: Literal["malicious", "suspicious", "trusted", "known"]
    name: Optional[str]
    category: Optional[str]
    source: Optional[str]
    matched: str
    first_seen: Optional[int]
    last_seen: Optional[int]
    confidence: Optional[int]

class ScannedFile(TypedDict, total=False):
    event: Literal["file", "error", "skipped"]
    path: str
    size: int
    md5: str
    sha1: str
    sha256: str
    verdict: Literal["malicious", "suspicious", "trusted", "known", "unknown"]
    name: Optional[str]
    category: Optional[str]
    source: Optional[str]
    matched: Optional[Literal["md5", "sha1", "sha256"]]
    error: str
    reason: str

_Path = Union[str, "PathLike[str]"]

class Snapshot:
    """A memory-mapped snapshot file. See help(repute.Snapshot)."""

    def __init__(self, path: _Path, *, mmap: bool = True, verify: bool = False) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def record_count(self) -> int: ...
    def verify(self) -> None: ...
    def lookup(self, query: Union[str, bytes]) -> Optional[Hit]: ...
    def lookup_many(
        self,
        queries: Union[Iterable[str], bytes, bytearray],
        *,
        kind: Literal["md5", "sha1", "sha256"] = "sha256",
    ) -> list[Optional[Hit]]: ...
    def scan(
        self,
        paths: Union[_Path, Sequence[_Path]],
        *,
        threads: int = 0,
        exclude: Optional[Sequence[str]] = None,
        max_file_size: Optional[int] = None,
        follow_symlinks: bool = False,
        one_file_system: bool = False,
        events: bool = False,
    ) -> ScanIterator: ...

class ScanIterator(Iterator[ScannedFile]):
    def __iter__(self) -> ScanIterator: ...
    def __next__(self) -> ScannedFile: ...

def scan(
    path: Union[_Path, Sequence[_Path]],
    snapshot: Snapshot,
    *,
    threads: int = 0,
    exclude: Optional[Sequence[str]] = None,
    max_file_size: Optional[int] = None,
    follow_symlinks: bool = False,
    one_file_system: bool = False,
    events: bool = False,
) -> ScanIterator: ...

class ReputeError(Exception): ...
class IoError(ReputeError): ...
class MagicError(ReputeError): ...
class TruncatedError(ReputeError): ...
class VersionError(ReputeError): ...
class RequiredFeaturesError(ReputeError): ...
class ChecksumError(ReputeError): ...
class MalformedError(ReputeError): ...
class FeedError(ReputeError): ...
class QueryError(ReputeError): ...
class BuildError(ReputeError): ...
