"""Notebook metadata normalisation: the same bytes no matter who ran the notebook, or where.

Kept: the kernelspec and language_info every notebook must have (fixed values, no Python version),
the course's own ``course`` block, and cell metadata that changes how a cell behaves or reads
(tags, collapsing, slideshow, editable/deletable). Dropped: widget state, papermill metadata,
execution timing, ``scrolled``/``trusted`` flags and anything else a front end adds.
"""

from __future__ import annotations

import hashlib
import re

from nbformat import NotebookNode

from ..notebook_format import CELL_METADATA_KEYS, KERNELSPEC, LANGUAGE_INFO, NOTEBOOK_METADATA_KEYS

__all__ = [
    "normalize_metadata",
    "clear_outputs",
    "ensure_cell_ids",
]

# Tags added by tools rather than authors.
_TOOL_TAGS = {"injected-parameters"}
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def normalize_metadata(nb: NotebookNode) -> NotebookNode:
    """Normalise notebook and cell metadata in place (outputs untouched) and return ``nb``.

    The ``course`` blocks are kept as they are; :func:`course_utils.notebook_format.write_lesson`
    and :func:`~course_utils.notebook_format.write_exercise` are what set them.
    """
    meta = {k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA_KEYS}
    meta["kernelspec"] = dict(KERNELSPEC)
    meta["language_info"] = dict(LANGUAGE_INFO)
    nb.metadata = NotebookNode(meta)
    nb.nbformat, nb.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 5)))
    for cell in nb.cells:
        cmeta = {k: v for k, v in cell.get("metadata", {}).items() if k in CELL_METADATA_KEYS}
        if "tags" in cmeta:
            tags = [t for t in cmeta["tags"] if t not in _TOOL_TAGS]
            if tags:
                cmeta["tags"] = tags
            else:
                del cmeta["tags"]
        cell.metadata = NotebookNode(cmeta)
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                # Output metadata holds per-run details (e.g. widget model ids, image sizes are fine).
                if "metadata" in output:
                    output.metadata = NotebookNode(
                        {k: v for k, v in output.metadata.items() if k not in ("execution", "papermill")}
                    )
        elif "attachments" in cell and not cell.attachments:
            del cell["attachments"]
    ensure_cell_ids(nb)
    return nb


def clear_outputs(nb: NotebookNode) -> NotebookNode:
    """Remove every output and execution count in place (the student's fresh notebook)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def ensure_cell_ids(nb: NotebookNode, salt: str = "") -> NotebookNode:
    """Give cells without a valid unique id a deterministic one (a hash of position and source)."""
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cid = cell.get("id")
        if not isinstance(cid, str) or not _CELL_ID.match(cid) or cid in seen:
            digest = hashlib.sha1(f"{salt}:{index}:{cell.get('source', '')}".encode()).hexdigest()[:8]
            cid = f"c{index:03d}-{digest}"
        cell["id"] = cid
        seen.add(cid)
    return nb
