"""The dashboard names an icon that the API serves, so no page load ends in a 404."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from alerts.api import STATIC


async def test_dashboard_icon_is_linked_and_served(make_api: Callable[..., Any]) -> None:
    html = (STATIC / "index.html").read_text()
    link = re.search(r'<link rel="icon" href="(/static/[^"]+)" type="image/svg\+xml">', html)
    assert link, "index.html links no icon"
    path = link.group(1)
    assert ET.fromstring((STATIC / path.removeprefix("/static/")).read_text()).tag.endswith("svg")
    api = await make_api()
    page = await api.client.get("/")
    assert page.status == 200 and path in await page.text()
    response = await api.client.get(path)
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
