"""Tokenizer files: embedded in single-file payloads (allow-listed names only), restored, and checked in folders."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from common.cli import UserError

log = logging.getLogger(__name__)

# The only names a .pt payload may carry as tokenizer files: the names come from the payload, so anything
# else (a path, "..") could make the loader write outside its temporary folder.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "added_tokens.json")
# A folder's tokenizer needs one of these; without them transformers builds an empty vocabulary
# (every word [UNK]) and the model silently scores at chance.
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt")


def tokenizer_files(tokenizer) -> dict[str, str]:
    """The tokenizer's files as strings, to embed in a single-file payload (allow-listed names only)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        names = sorted(name for name in os.listdir(tmp) if Path(tmp, name).is_file())
        skipped = [name for name in names if name not in TOKENIZER_FILES]
        if skipped:
            log.warning("tokenizer files %s are not embedded (not in TOKENIZER_FILES)", skipped)
        return {name: Path(tmp, name).read_text() for name in names if name not in skipped}


def tokenizer_from_files(files: dict[str, str], source: str | os.PathLike = "the payload"):
    """A tokenizer from embedded files; names outside :data:`TOKENIZER_FILES` are refused before
    anything is written."""
    from transformers import AutoTokenizer

    if not isinstance(files, dict) or not files:
        raise UserError(f"{source} has no tokenizer files; rebuild it with this toolkit.")
    bad = [name for name in files if not isinstance(name, str) or name not in TOKENIZER_FILES]
    if bad:
        raise UserError(f"{source} names tokenizer files {[str(n)[:60] for n in bad[:3]]}, which are not among the "
                        f"allowed names {list(TOKENIZER_FILES)}; refusing to load it - rebuild it with this toolkit.")
    if not any(isinstance(files[name], str) for name in TOKENIZER_VOCAB_FILES if name in files):
        raise UserError(f"{source} has none of the tokenizer files {list(TOKENIZER_VOCAB_FILES)}; rebuild it.")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            if not isinstance(text, str):
                raise UserError(f"{source}: tokenizer file {name} is not text; rebuild it with this toolkit.")
            Path(tmp, name).write_text(text)
        return AutoTokenizer.from_pretrained(tmp)


def check_tokenizer_folder(folder: str | os.PathLike, what: str | None = None) -> None:
    """Refuse a folder without tokenizer vocabulary files (transformers would build an empty one)."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_VOCAB_FILES):
        raise UserError(f"{what or folder} has no tokenizer: none of {' or '.join(TOKENIZER_VOCAB_FILES)} in "
                        f"{folder}; copy the tokenizer files back or rebuild the folder.")
