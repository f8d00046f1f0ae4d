"""The hot routes skip Starlette's route search and FastAPI's dependency solving (api/hot.py):
each of them must still be found, or it silently falls back to the slow path."""

from viewer_service.api.app import create_app
from viewer_service.api.hot import HOT, HotRoutes
from viewer_service.config import Settings


def test_every_hot_route_goes_straight_to_its_endpoint(tmp_path):
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    hot = HotRoutes(app)
    hot._build(app)
    assert set(hot._routes) == HOT
    for (method, path), route in hot._routes.items():
        assert route.path == path and method in route.methods
