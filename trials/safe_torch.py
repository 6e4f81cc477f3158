"""Loading a torch file that may come from anyone: a checkpoint of a run directory, an exported model.

Three checks stand before `torch.load` sees the bytes:

* torch itself: from 2.10 its weights-only loader is a safety boundary (tensors and plain data, never
  code). CVE-2025-32434 (`weights_only=True` could still run code) was fixed in 2.6, and a later
  memory-corruption flaw of the weights-only unpickler in 2.10, so an older torch is refused;
* the container: a zip (what `torch.save` writes) whose every entry is stored uncompressed, as
  `torch.save` stores them, so a small file cannot inflate into gigabytes (a deflated "zip bomb");
* its size: the entries' total fits in the file (stored entries cannot overlap) and in the cap.
"""

from __future__ import annotations

import io
import re
import zipfile

TORCH_FLOOR = (2, 10)
MAX_ENTRIES = 1_000_000  # a state dict has one entry per tensor: a few thousand for the largest networks


class UnsafeFile(ValueError):
    """A file refused before (or by) torch's loader; the message says why."""


class OldTorch(RuntimeError):
    """The installed torch cannot be trusted to load files from others."""


def torch_version() -> tuple[int, int]:
    import torch

    found = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def check_torch() -> None:
    """Refuse to load anything with a torch older than `TORCH_FLOOR`."""
    import torch

    if torch_version() < TORCH_FLOOR:
        floor = ".".join(map(str, TORCH_FLOOR))
        raise OldTorch(f"torch {torch.__version__} is installed, and decaylab loads model files only with torch ≥ "
                       f"{floor}: before it, torch's weights-only loader could be made to run code or corrupt memory "
                       f"(CVE-2025-32434, fixed in 2.6; a weights-only unpickler flaw fixed in 2.10); upgrade with "
                       f"pip install 'torch>={floor}'")


def check_zip(data: bytes, cap: int) -> None:
    """Refuse bytes that are not a torch zip of stored entries whose total is at most `cap` (and the file's)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise UnsafeFile(f"not a torch file (not a zip archive: {e})") from None
    if len(entries) > MAX_ENTRIES:
        raise UnsafeFile(f"{len(entries):,} entries, more than a torch file holds ({MAX_ENTRIES:,})")
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED or e.file_size != e.compress_size]
    if packed:
        raise UnsafeFile(f"entry {packed[0][:80]!r} is compressed; torch stores every entry uncompressed (a "
                         "compressed entry could inflate far beyond the file)")
    total = sum(e.file_size for e in entries)
    if total > min(cap, len(data)):
        raise UnsafeFile(f"its entries claim {total:,} bytes, more than the file's {len(data):,} "
                         f"(or the cap of {cap:,})")


def load_bytes(data: bytes, cap: int):
    """`torch.load` of checked bytes, weights only, onto the CPU. `UnsafeFile` for anything refused (the
    loader's own refusal of code included), `OldTorch` for a torch too old to trust."""
    import pickle

    import torch

    check_torch()
    check_zip(data, cap)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # what torch raises for anything but tensors and plain data
        raise UnsafeFile(f"refused by torch's weights-only loader ({str(e).splitlines()[0][:200]})") from None
