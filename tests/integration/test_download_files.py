"""The download service writing its files against the real database: rows reach the disk as the
summaries stream, and a failed write leaves neither a file nor a row. Through HTTP:
tests/e2e/test_downloads.py."""

import os

import pytest
import sqlalchemy as sa

from helpers import download_rows, files_in
from viewer_service.adapters.db.tables import download_file
from viewer_service.services import downloads as dl
from viewer_service.services.downloads import DownloadService




class Source:
    """A summary source that checks the file grows while it is still being iterated."""

    def __init__(self, directory, n, fail_at=None):
        self.directory, self.n, self.fail_at = directory, n, fail_at
        self.part_sizes = []

    async def iter_summaries(self, user_id):
        for i in range(self.n):
            if i == self.fail_at:
                raise RuntimeError("the source failed")
            if i and i % 100 == 0:
                parts = [f for f in os.listdir(self.directory) if f.endswith(".part")]
                self.part_sizes.append(os.path.getsize(os.path.join(self.directory, parts[0])))
            yield {"userId": user_id, "collectionId": f"c{i}", "contextId": f"c{i}", "contentStatus": {"x": 2},
                   "collection": {"name": "n" * 100}}


async def test_rows_reach_the_disk_before_the_source_ends(app, tmp_path, user, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK_BYTES", 4096)
    own = tmp_path / "own"
    src = Source(own, 500)
    svc = DownloadService(app.state.app.views.engine, src, directory=str(own), expiry_seconds=60)
    url = await svc.create(user, "csv")
    assert len(src.part_sizes) == 4 and 0 < src.part_sizes[0] < src.part_sizes[-1]
    path, _ = await svc.open(user, url.rsplit("/", 1)[1])
    assert len(download_rows(open(path, newline="").read())) == 500 and files_in(own) == [os.path.basename(path)]


async def test_a_failed_write_leaves_no_file_and_no_row(app, tmp_path, user):
    own = tmp_path / "own"
    svc = DownloadService(app.state.app.views.engine, Source(own, 500, fail_at=250), directory=str(own),
                          expiry_seconds=60)
    with pytest.raises(RuntimeError):
        await svc.create(user, "json")
    assert files_in(own) == []
    async with svc.engine.connect() as conn:
        assert (await conn.execute(sa.select(download_file).where(download_file.c.user_id == user))).first() is None
