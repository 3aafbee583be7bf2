import pytest

from gridworker.streams.clips import synthetic_clip


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory):
    return synthetic_clip(tmp_path_factory.mktemp("clips") / "synthetic.mp4", seconds=4, size=(320, 240), fps=10)
