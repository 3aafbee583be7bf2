"""Request bodies the routes read themselves: multipart forms with files, CSV tables.

Every body is capped as a whole by ``api/limits.py`` before a route reads it; these read it
with their own, tighter limits and answer 415 for the wrong media type, 413 for a file too
large and 422 for a malformed form or text.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from starlette.datastructures import UploadFile

__all__ = ["CSV_BODY", "csv_text", "multipart_body", "read_uploads"]

#: ``openapi_extra`` of a route whose body is a CSV table read by :func:`csv_text`.
CSV_BODY: dict[str, object] = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}}


async def csv_text(request: Request) -> str:
    """The body of a ``text/csv`` (or ``text/plain``) request as text: 415 for another media
    type, 422 when it is not UTF-8."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in ("text/csv", "text/plain"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the CSV as text/csv")
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the CSV is not UTF-8") from None


async def read_uploads(request: Request, field: str, *, max_files: int, max_bytes: int, fields: int = 12) -> tuple[dict[str, str], list[bytes]]:
    """A multipart form's text fields and the files under ``field``, each read up to
    ``max_bytes`` (413 beyond; the request body as a whole is capped by api/limits.py first)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send multipart/form-data")
    async with request.form(max_files=max_files, max_fields=fields, max_part_size=16 * 1024) as form:
        texts: dict[str, str] = {}
        files: list[bytes] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != field:
                    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unexpected file field {key[:40]!r}")
                data = await value.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"a photo is larger than {max_bytes} bytes")
                if data:
                    files.append(data)
            elif key in texts:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"field {key[:40]!r} is given twice")
            else:
                texts[key] = value
    return texts, files


def multipart_body(fields: dict[str, dict[str, object]], *, files: str, max_files: int) -> dict[str, object]:
    """The OpenAPI request body of a multipart route that reads its form itself (``read_uploads``)."""
    props: dict[str, object] = {**fields, files: {"type": "array", "maxItems": max_files, "items": {"type": "string", "format": "binary"}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}}}}
